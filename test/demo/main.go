// Command demo runs the monitor's main job on a self-contained local setup:
// etcd and kube-apiserver, three fake masters, haproxy with the static pod's
// reloader, and the monitor. It adds and removes a master, shows each rendered
// change and haproxy's view of its servers, sends requests through the load
// balancer, then tears everything down.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
	"github.com/haproxy-monitor/haproxy-monitor/test/load"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
	fmt.Println("\ndemo finished: everything stopped and removed")
}

type demo struct {
	client  kubernetes.Interface
	hap     *harness.HAProxy
	lastCfg string
}

func run() error {
	dir, err := os.MkdirTemp("", "hapm-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	hosts := []string{"127.0.0.1", "127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"}
	port, err := harness.FreePort(hosts...)
	if err != nil {
		return err
	}
	step("starting etcd and kube-apiserver")
	cp, err := harness.StartControlPlane(ctx, filepath.Join(dir, "cp"), harness.ControlPlaneOptions{
		APIPort: port, Logf: func(f string, a ...any) { fmt.Printf("  "+f+"\n", a...) },
	})
	if err != nil {
		return err
	}
	defer cp.Stop()
	client, err := cp.Client()
	if err != nil {
		return err
	}

	step("starting four fake masters (TLS servers answering /readyz) on 127.0.0.11-14")
	for i, h := range hosts[1:] {
		m, err := harness.StartFakeMaster(cp.CA, fmt.Sprintf("master-%d", i), h, port)
		if err != nil {
			return err
		}
		defer m.Close()
	}
	for i, h := range hosts[1:4] {
		if err := harness.CreateNode(ctx, client, harness.NodeObject(fmt.Sprintf("master-%d", i), harness.MasterLabel, h)); err != nil {
			return err
		}
	}
	fmt.Println("  Nodes master-0, master-1, master-2 created with label", harness.MasterLabel)

	step("starting haproxy with the reloader from manifests/haproxy.yaml")
	hap, err := harness.PrepareHAProxy(filepath.Join(dir, "haproxy"))
	if err != nil {
		return err
	}
	if err := hap.Start(); err != nil {
		return err
	}
	defer hap.Stop()
	fmt.Printf("  cfg %s, lb-port %d, reload socket %s\n", hap.CfgPath, hap.LBPort, hap.MasterSock)

	step("starting the monitor")
	bin, err := harness.MonitorBinary(dir)
	if err != nil {
		return err
	}
	// As deployed: the kubelet's identity for master-0, with the grant of
	// manifests/rbac.yaml applied once.
	if err := harness.ApplyRBAC(ctx, client); err != nil {
		return err
	}
	kc := filepath.Join(dir, "kubeconfig")
	if err := cp.WriteNodeKubeconfig(kc, cp.APIServers[0].URL, "master-0"); err != nil {
		return err
	}
	fmt.Println("  identity system:node:master-0 (client certificate), manifests/rbac.yaml applied")
	args := harness.MonitorArgs{Kubeconfig: kc, HAProxy: hap, APIPort: port, VIPs: "127.0.0.100"}
	fmt.Printf("  monitor %s\n", strings.Join(args.Argv()[:3], " "))
	mon, err := harness.StartMonitor(bin, filepath.Join(dir, "monitor.log"), args)
	if err != nil {
		return err
	}
	defer mon.Stop(5 * time.Second)

	d := &demo{client: client, hap: hap}
	if err := d.expect("initial members", "master-0", "master-1", "master-2"); err != nil {
		return err
	}
	if err := d.traffic(9); err != nil {
		return err
	}

	step("adding master-3 (Node with InternalIP 127.0.0.14)")
	if err := harness.CreateNode(ctx, client, harness.NodeObject("master-3", harness.MasterLabel, hosts[4])); err != nil {
		return err
	}
	if err := d.expect("after adding master-3 (API write to haproxy serving: %s)", "master-0", "master-1", "master-2", "master-3"); err != nil {
		return err
	}

	step("deleting master-1")
	if err := client.CoreV1().Nodes().Delete(ctx, "master-1", metav1.DeleteOptions{}); err != nil {
		return err
	}
	if err := d.expect("after deleting master-1 (API write to haproxy serving: %s)", "master-0", "master-2", "master-3"); err != nil {
		return err
	}
	if err := d.traffic(9); err != nil {
		return err
	}

	step("monitor log")
	for _, line := range strings.Split(strings.TrimSpace(mon.Log()), "\n") {
		if strings.Contains(line, "msg=") {
			fmt.Println("  " + line)
		}
	}
	fmt.Printf("  haproxy reloads received: %d\n", hap.ReloadsReceived())
	step("tearing down")
	return nil
}

func step(s string) { fmt.Printf("\n==> %s\n", s) }

// expect waits until haproxy serves exactly names, then prints the change to
// the rendered file and haproxy's view. A %s in what is replaced by the wait.
func (d *demo) expect(what string, names ...string) error {
	start := time.Now()
	if !harness.Poll(30*time.Second, 10*time.Millisecond, func() bool { return d.hap.ServersUp(names...) }) {
		got, err := d.hap.Servers()
		return fmt.Errorf("haproxy does not serve %v: %v %v", names, got, err)
	}
	if strings.Contains(what, "%s") {
		what = fmt.Sprintf(what, time.Since(start).Round(time.Millisecond))
	}
	fmt.Printf("  rendered change %s:\n", what)
	b, err := os.ReadFile(d.hap.CfgPath)
	if err != nil {
		return err
	}
	cur := string(b)
	for _, l := range diffLines(d.lastCfg, cur) {
		fmt.Println("    " + l)
	}
	d.lastCfg = cur
	servers, err := d.hap.Servers()
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(servers))
	for k := range servers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Println("  haproxy (show servers state masters):")
	for _, k := range keys {
		state := "DOWN"
		if servers[k].Up {
			state = "UP"
		}
		fmt.Printf("    %-9s %-12s %s\n", k, servers[k].Addr, state)
	}
	return nil
}

func (d *demo) traffic(n int) error {
	url := "https://127.0.0.1:" + strconv.Itoa(d.hap.LBPort) + "/version"
	r := load.Run(context.Background(), load.Options{URL: url, Workers: 1, Requests: n, Duration: time.Minute})
	if r.Failed != 0 {
		return fmt.Errorf("requests through the load balancer: %d of %d failed: %v", r.Failed, r.Sent, r.Errors)
	}
	fmt.Printf("  %d requests through %s: %v, 0 failed\n", r.Sent, url, r.ByBackend)
	return nil
}

// diffLines shows the server lines removed and added between two configs (the
// whole file the first time).
func diffLines(old, cur string) []string {
	in := func(text, line string) bool {
		for _, l := range strings.Split(text, "\n") {
			if l == line {
				return true
			}
		}
		return false
	}
	var out []string
	for _, l := range strings.Split(old, "\n") {
		if strings.TrimSpace(l) != "" && !in(cur, l) {
			out = append(out, "- "+strings.TrimSpace(l))
		}
	}
	for _, l := range strings.Split(cur, "\n") {
		if old == "" {
			if strings.HasPrefix(strings.TrimSpace(l), "server ") || strings.HasPrefix(l, "frontend") || strings.HasPrefix(l, "backend") {
				out = append(out, "  "+l)
			}
			continue
		}
		if strings.TrimSpace(l) != "" && !in(old, l) {
			out = append(out, "+ "+strings.TrimSpace(l))
		}
	}
	return out
}
