package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-monitor/haproxy-monitor/test/chart"
	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
	"github.com/haproxy-monitor/haproxy-monitor/test/load"
)

// path is one way haproxy takes membership changes.
type path struct {
	name  string
	extra []string // monitor flags
	tmpl  func(*harness.HAProxy) error
}

var (
	reloadPath  = path{name: "reload path", extra: []string{"--haproxy-admin-socket", ""}}
	runtimePath = path{name: "runtime path"}
)

// site is a haproxy with the manifest's reloader (its default 120 s before
// old processes are killed) and a monitor, over fake masters m1-m5.
type site struct {
	hap *harness.HAProxy
	mon *harness.Process
}

func (b *bench) startSite(p path, extra ...string) (*site, error) {
	b.seq++
	hap, err := harness.PrepareHAProxy(filepath.Join(b.dir, fmt.Sprintf("haproxy-%d", b.seq)))
	if err != nil {
		return nil, err
	}
	if p.tmpl != nil {
		if err := p.tmpl(hap); err != nil {
			return nil, err
		}
	}
	if err := hap.Start(); err != nil {
		return nil, err
	}
	args := harness.MonitorArgs{Kubeconfig: b.kubeconfig, HAProxy: hap, APIPort: b.apiPort, VIPs: "127.0.0.100",
		Extra: append(append([]string{}, p.extra...), extra...)}
	mon, err := harness.StartMonitor(b.oursBin, filepath.Join(hap.Dir, "monitor.log"), args)
	if err != nil {
		hap.Stop()
		return nil, err
	}
	s := &site{hap: hap, mon: mon}
	if !harness.Poll(30*time.Second, 20*time.Millisecond, func() bool { return hap.ServersUp("m1", "m2", "m3") }) {
		s.stop()
		return nil, fmt.Errorf("%s: haproxy not serving m1-m3", p.name)
	}
	return s, nil
}

func (s *site) stop() {
	s.mon.Stop(10 * time.Second)
	s.hap.Stop()
}

// runtimePhase measures the runtime path against the reload path: the
// latency of an isolated change, the long-lived connections a change cuts,
// and requests failed right after a reload while an apiserver is dead, with
// and without the server-state file.
func (b *bench) runtimePhase() error {
	ctx := context.Background()
	fakes := map[int]*harness.FakeMaster{}
	for i := 1; i <= 5; i++ {
		m, err := harness.StartFakeMaster(b.cp.CA, fmt.Sprintf("m%d", i), fmt.Sprintf("127.0.0.%d", 10+i), b.apiPort)
		if err != nil {
			return err
		}
		fakes[i] = m
		defer m.Close()
	}
	latency := map[string][]float64{}
	cuts := map[string]string{}
	for _, p := range []path{reloadPath, runtimePath} {
		if err := b.resetNodes(ctx); err != nil {
			return err
		}
		lat, err := b.isolatedChanges(ctx, p)
		if err != nil {
			return err
		}
		latency[p.name] = lat
		if cuts[p.name], err = b.connectionCuts(ctx, p); err != nil {
			return err
		}
	}
	failed := map[string]int64{}
	noState := path{name: "reload path without the state file", extra: reloadPath.extra, tmpl: func(h *harness.HAProxy) error {
		return h.RewriteTemplate("  load-server-state-from-file global\n", "")
	}}
	for _, p := range []path{noState, reloadPath} {
		n, err := b.afterReloadWithDeadServer(ctx, p, fakes[1])
		if err != nil {
			return err
		}
		failed[p.name] = n
		b.sample("FailedAfterReloadDeadServer/"+p.name, float64(n), "requests")
	}

	b.printf("\n## 6. Changes without a reload: the runtime path\n\n")
	b.printf("Real haproxy with the reloader from `manifests/haproxy.yaml` at its default `OLD_HAPROXY_PS_FORCE_DEL_TIMEOUT` of\n")
	b.printf("120 s, fake masters on 127.0.0.11-15. The reload path is the monitor with `--haproxy-admin-socket=\"\"`.\n\n")
	b.printf("| measure | reload path | runtime path | goal |\n|---|---|---|---|\n")
	rl, rt := summarize(latency[reloadPath.name]), summarize(latency[runtimePath.name])
	b.printf("| API write → haproxy serving the new set, isolated change (add or move a master), min / median / p99 | %.0f / %.0f / %.0f ms | %.0f / %.0f / %.0f ms (%.1f× faster at p99) | ≤ 50 ms p99 |\n",
		rl.Min, rl.Median, rl.P99, rt.Min, rt.Median, rt.P99, rl.P99/rt.P99)
	b.printf("| of 200 long-lived connections (m1-m3), cut within 130 s of: adding m4, moving m3, removing m2 | %s | %s | only the moved and the removed server's |\n",
		cuts[reloadPath.name], cuts[runtimePath.name])
	b.printf("| failed requests (new connection each, 4 workers, 2 s timeout) in the 10 s after a reload while one apiserver hangs | %d without the state file, %d with it | (no reload) | 0 with the state file |\n\n",
		failed[noState.name], failed[reloadPath.name])
	b.printf("A kube-apiserver shutting down gracefully under load is drained through the runtime API; that is measured with\n")
	b.printf("real apiservers in the HA lab (LAB.md, scenario 10: 0 failed requests).\n")
	return b.picture("runtime.png", "API write → haproxy serving an isolated change, every trial", "ms",
		chart.Series{Name: "runtime path", Samples: latency[runtimePath.name]}, chart.Series{Name: "reload path", Samples: latency[reloadPath.name]})
}

// isolatedChanges adds m4, then moves it, ten times each, and returns how
// long each took from the API write to haproxy serving the new set.
func (b *bench) isolatedChanges(ctx context.Context, p path) ([]float64, error) {
	s, err := b.startSite(p, "--removal-grace", "0s")
	if err != nil {
		return nil, err
	}
	defer s.stop()
	var out []float64
	for i := 0; i < 20; i++ {
		time.Sleep(300 * time.Millisecond) // isolated: past the debounce's quiet time since the last render
		start := time.Now()
		want := []string{"m1", "m2", "m3", "m4@127.0.0.14"}
		if i%2 == 0 {
			err = harness.CreateNode(ctx, b.client, harness.NodeObject("m4", harness.MasterLabel, "127.0.0.14"))
		} else {
			err = harness.SetInternalIP(ctx, b.client, "m4", "127.0.0.15")
			want[3] = "m4@127.0.0.15"
		}
		if err != nil {
			return nil, err
		}
		if !harness.Poll(30*time.Second, time.Millisecond, func() bool { return s.hap.ServersUp(want...) }) {
			return nil, fmt.Errorf("%s: change %d not served", p.name, i)
		}
		d := ms(time.Since(start))
		out = append(out, d)
		b.sample("WriteToServing/"+p.name, d, "ms")
		if i%2 == 1 { // quiet, then the next trial adds m4 again
			if err := b.client.CoreV1().Nodes().Delete(ctx, "m4", metav1.DeleteOptions{}); err != nil {
				return nil, err
			}
			if !harness.Poll(30*time.Second, 5*time.Millisecond, func() bool { return s.hap.ServersUp("m1", "m2", "m3") }) {
				return nil, fmt.Errorf("%s: m4 not removed", p.name)
			}
		}
	}
	fmt.Printf("   %-13s write→serving: %v\n", p.name, summarize(out))
	return out, nil
}

// connectionCuts holds 200 connections, makes three changes, waits 130 s
// and reports how many were cut, by the server that served them.
func (b *bench) connectionCuts(ctx context.Context, p path) (string, error) {
	if err := b.resetNodes(ctx); err != nil {
		return "", err
	}
	s, err := b.startSite(p)
	if err != nil {
		return "", err
	}
	defer s.stop()
	held, err := load.Hold(net.JoinHostPort("127.0.0.1", strconv.Itoa(s.hap.LBPort)), 200)
	if err != nil {
		return "", err
	}
	defer held.Close()
	per := held.Backends()
	steps := []func() error{
		func() error {
			return harness.CreateNode(ctx, b.client, harness.NodeObject("m4", harness.MasterLabel, "127.0.0.14"))
		},
		func() error { return harness.SetInternalIP(ctx, b.client, "m3", "127.0.0.15") },
		func() error { return b.client.CoreV1().Nodes().Delete(ctx, "m2", metav1.DeleteOptions{}) },
	}
	for _, st := range steps {
		if err := st(); err != nil {
			return "", err
		}
		time.Sleep(time.Second) // one change at a time
	}
	time.Sleep(130 * time.Second) // the reloader kills old haproxy processes after 120 s
	cut, by := held.Check()
	b.sample("ConnectionsCut/"+p.name, float64(cut), "connections")
	res := fmt.Sprintf("%d (m1 %d of %d, m2 %d of %d, m3 %d of %d)", cut, by["m1"], per["m1"], by["m2"], per["m2"], by["m3"], per["m3"])
	fmt.Printf("   %-13s cut: %s\n", p.name, res)
	return res, nil
}

// afterReloadWithDeadServer hangs m1's apiserver (it accepts connections and
// never answers), waits until haproxy marks it DOWN, forces a reload (the
// reload path and a new master), and counts failed requests in the 10 s that
// follow: a server that counts as UP in the new haproxy until its first check
// fails takes requests that then time out.
func (b *bench) afterReloadWithDeadServer(ctx context.Context, p path, m1 *harness.FakeMaster) (int64, error) {
	if err := b.resetNodes(ctx); err != nil {
		return 0, err
	}
	s, err := b.startSite(p)
	if err != nil {
		return 0, err
	}
	defer s.stop()
	m1.SetHung(true)
	defer m1.SetHung(false)
	if !harness.Poll(30*time.Second, 20*time.Millisecond, func() bool {
		sv, err := s.hap.Servers()
		return err == nil && !sv["m1"].Up
	}) {
		return 0, fmt.Errorf("haproxy never marked the hung m1 DOWN")
	}
	reloads := s.hap.ReloadsReceived()
	if err := harness.CreateNode(ctx, b.client, harness.NodeObject("m4", harness.MasterLabel, "127.0.0.14")); err != nil {
		return 0, err
	}
	if !harness.Poll(30*time.Second, time.Millisecond, func() bool { return s.hap.ReloadsReceived() > reloads }) {
		return 0, fmt.Errorf("no reload")
	}
	r := load.Run(ctx, load.Options{URL: "https://127.0.0.1:" + strconv.Itoa(s.hap.LBPort) + "/version", Workers: 4, Duration: 10 * time.Second})
	fmt.Printf("   %-38s %d of %d failed after the reload\n", p.name, r.Failed, r.Sent)
	return r.Failed, nil
}
