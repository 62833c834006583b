package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
	"github.com/haproxy-monitor/haproxy-monitor/test/load"
)

// runLoad sends HTTPS requests through the load balancer, a new TCP
// connection each, from 4 workers until stop or the time limit.
func runLoad(hap *harness.HAProxy, stop <-chan struct{}, limit time.Duration) load.Result {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return load.Run(ctx, load.Options{URL: "https://127.0.0.1:" + strconv.Itoa(hap.LBPort) + "/version",
		Workers: 4, Duration: limit, Timeout: 5 * time.Second})
}

// haproxySide: monitor-driven reloads of a real haproxy under load, with our
// template and with the same template without socket handover (the seed's
// template has none).
func (b *bench) haproxySide() error {
	ctx := context.Background()
	if err := b.resetNodes(ctx); err != nil {
		return err
	}
	for i := 1; i <= 4; i++ {
		m, err := harness.StartFakeMaster(b.cp.CA, fmt.Sprintf("m%d", i), fmt.Sprintf("127.0.0.%d", 10+i), b.apiPort)
		if err != nil {
			return err
		}
		defer m.Close()
	}
	type outcome struct {
		variant     string
		load        load.Result
		writeToServ []float64
		reloadToSrv float64 // mean seconds, from the monitor's histogram
	}
	var outs []outcome
	for _, variant := range []string{"our template", "without expose-fd"} {
		b.seq++
		hap, err := harness.PrepareHAProxy(filepath.Join(b.dir, fmt.Sprintf("haproxy-%d", b.seq)))
		if err != nil {
			return err
		}
		if variant != "our template" {
			if err := hap.RewriteTemplate(" expose-fd listeners", ""); err != nil {
				return err
			}
		}
		if err := hap.Start(); err != nil {
			return err
		}
		port, err := harness.FreePort()
		if err != nil {
			return err
		}
		// Every change reloads here: this phase measures haproxy's side of
		// reloads (the runtime phase measures changes without them).
		args := harness.MonitorArgs{Kubeconfig: b.kubeconfig, HAProxy: hap, APIPort: b.apiPort, VIPs: "127.0.0.100", HealthPort: port,
			Extra: []string{"--haproxy-admin-socket", ""}}
		mon, err := harness.StartMonitor(b.oursBin, filepath.Join(hap.Dir, "monitor.log"), args)
		if err != nil {
			hap.Stop()
			return err
		}
		out := outcome{variant: variant}
		err = func() error {
			if !harness.Poll(30*time.Second, 20*time.Millisecond, func() bool { return hap.ServersUp("m1", "m2", "m3") }) {
				return fmt.Errorf("haproxy not serving m1-m3")
			}
			stop := make(chan struct{})
			res := make(chan load.Result, 1)
			go func() { res <- runLoad(hap, stop, 10*time.Minute) }()
			for i := 0; i < b.cfg.reloads; i++ {
				want := []string{"m1", "m2", "m3"}
				start := time.Now()
				if i%2 == 0 {
					err = harness.CreateNode(ctx, b.client, harness.NodeObject("m4", harness.MasterLabel, "127.0.0.14"))
					want = append(want, "m4")
				} else {
					err = b.client.CoreV1().Nodes().Delete(ctx, "m4", metav1.DeleteOptions{})
				}
				if err != nil {
					close(stop)
					return err
				}
				if !harness.Poll(30*time.Second, 5*time.Millisecond, func() bool { return hap.ServersUp(want...) }) {
					close(stop)
					return fmt.Errorf("change %d not served", i)
				}
				out.writeToServ = append(out.writeToServ, ms(time.Since(start)))
				b.sample(fmt.Sprintf("WriteToServing/template=%s", strings.ReplaceAll(variant, " ", "-")), ms(time.Since(start)), "ms")
			}
			close(stop)
			out.load = <-res
			out.reloadToSrv = histogramMean(port, "haproxy_monitor_reload_to_serving_seconds")
			return nil
		}()
		mon.Stop(10 * time.Second)
		hap.Stop()
		if err != nil {
			return fmt.Errorf("%s: %w", variant, err)
		}
		// Leave m4 absent for the next variant.
		_ = b.client.CoreV1().Nodes().Delete(ctx, "m4", metav1.DeleteOptions{})
		b.sample(fmt.Sprintf("FailedRequests%dReloads/template=%s", b.cfg.reloads, strings.ReplaceAll(variant, " ", "-")), float64(out.load.Failed), "requests")
		fmt.Printf("   %-18s %d reloads: %d requests, %d failed; reload→serving mean %.1f ms\n",
			variant, b.cfg.reloads, out.load.Sent, out.load.Failed, out.reloadToSrv*1000)
		outs = append(outs, out)
	}
	b.printf("\n## 5. haproxy under monitor-driven reloads\n\n")
	b.printf("Real haproxy with the reloader from `manifests/haproxy.yaml`; %d reloads driven by adding and removing a master\n", b.cfg.reloads)
	b.printf("through the API, while 4 clients send HTTPS requests through the load balancer, each on a new TCP connection.\n")
	b.printf("The comparison drops `expose-fd listeners` from our template: without it, as with the seed article's\n")
	b.printf("template, the new haproxy cannot take over the listening sockets. Goal: 0 failed requests with our template.\n\n")
	b.printf("| template | requests | failed | API write → serving min / median / p99 | reload → serving (mean) |\n|---|---|---|---|---|\n")
	for _, o := range outs {
		s := summarize(o.writeToServ)
		b.printf("| %s | %d | %d | %.0f / %.0f / %.0f ms | %.1f ms |\n", o.variant, o.load.Sent, o.load.Failed, s.Min, s.Median, s.P99, o.reloadToSrv*1000)
	}
	b.printf("\nOn Linux the old and new haproxy overlap on SO_REUSEPORT listeners, so a zero for the variant without\n")
	b.printf("`expose-fd` is possible: this run measures what our template guarantees, not a failure of the other.\n")
	b.printf("Both variants run with `--haproxy-admin-socket=\"\"`, so every change reloads; API write → serving includes\n")
	b.printf("`haproxy -c` and the new haproxy's start.\n")
	return nil
}

// histogramMean reads <name>_sum / <name>_count from the monitor's metrics.
func histogramMean(port int, name string) float64 {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum, count float64
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case name + "_sum":
			sum = v
		case name + "_count":
			count = v
		}
	}
	if count == 0 {
		return 0
	}
	return sum / count
}
