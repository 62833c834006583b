package main

import (
	"context"
	"fmt"
	"io"
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

// The removed server's grace in the demo: long enough to see it drain,
// short enough to see it go (the default, 70 s, fits kube-apiserver's
// shutdown delay on OpenShift).
const (
	removalGrace  = 3 * time.Second
	removalSpread = time.Second
)

// Step is one change and how haproxy took it.
type Step struct {
	Name string
	// Took is from right before the write (API or template file) to
	// haproxy's runtime API showing the new servers.
	Took time.Duration
	// Reloads is how many reloads the reloader received meanwhile: 0 for a
	// change through the runtime API.
	Reloads int
}

// Report is what a run measured.
type Report struct {
	Steps []Step
	// Drained is from the Node's deletion to the server in drain, Removed
	// to the server gone from haproxy.
	Drained, Removed time.Duration
	// Load ran through the load balancer during every change.
	Load load.Result
}

type demo struct {
	out     io.Writer
	client  kubernetes.Interface
	hap     *harness.HAProxy
	lastCfg string
	report  Report
}

// Run sets everything up, makes the changes and tears everything down.
func Run(ctx context.Context, out io.Writer) (*Report, error) {
	dir, err := os.MkdirTemp("", "hapm-demo")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	d := &demo{out: out}
	say := func(f string, a ...any) { fmt.Fprintf(out, "  "+f+"\n", a...) }

	hosts := []string{"127.0.0.1", "127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14", "127.0.0.15"}
	port, err := harness.FreePort(hosts...)
	if err != nil {
		return nil, err
	}
	d.step("starting etcd and kube-apiserver")
	cp, err := harness.StartControlPlane(ctx, filepath.Join(dir, "cp"), harness.ControlPlaneOptions{APIPort: port, Logf: say})
	if err != nil {
		return nil, err
	}
	defer cp.Stop()
	if d.client, err = cp.Client(); err != nil {
		return nil, err
	}

	d.step("starting fake masters (TLS servers answering /readyz) on 127.0.0.11-15")
	names := []string{"master-0", "master-1", "master-2", "master-3", "master-2"}
	for i, h := range hosts[1:] {
		m, err := harness.StartFakeMaster(cp.CA, names[i], h, port)
		if err != nil {
			return nil, err
		}
		defer m.Close()
	}
	for i, h := range hosts[1:4] {
		if err := harness.CreateNode(ctx, d.client, harness.NodeObject(names[i], harness.MasterLabel, h)); err != nil {
			return nil, err
		}
	}
	say("Nodes master-0, master-1, master-2 created with label %s", harness.MasterLabel)

	d.step("starting haproxy with the reloader from manifests/haproxy.yaml (no configuration yet)")
	if d.hap, err = harness.PrepareHAProxy(filepath.Join(dir, "haproxy")); err != nil {
		return nil, err
	}
	if err := d.hap.Start(); err != nil {
		return nil, err
	}
	defer d.hap.Stop()
	say("cfg %s, lb-port %d, reload socket %s", d.hap.CfgPath, d.hap.LBPort, d.hap.MasterSock)

	d.step("starting the monitor")
	bin, err := harness.MonitorBinary(dir)
	if err != nil {
		return nil, err
	}
	// As deployed: the kubelet's identity for master-0, with the grant of
	// manifests/rbac.yaml applied once.
	if err := harness.ApplyRBAC(ctx, d.client); err != nil {
		return nil, err
	}
	kc := filepath.Join(dir, "kubeconfig")
	if err := cp.WriteNodeKubeconfig(kc, cp.APIServers[0].URL, "master-0"); err != nil {
		return nil, err
	}
	say("identity system:node:master-0 (client certificate), manifests/rbac.yaml applied")
	args := harness.MonitorArgs{Kubeconfig: kc, HAProxy: d.hap, APIPort: port, VIPs: "127.0.0.100",
		Extra: []string{"--removal-grace", removalGrace.String(), "--removal-spread", removalSpread.String()}}
	say("monitor %s --removal-grace %v (default 70s)", strings.Join(args.Argv()[:3], " "), removalGrace)
	var mon *harness.Process
	defer func() {
		if mon != nil {
			mon.Stop(5 * time.Second)
		}
	}()
	failed := func(err error) (*Report, error) {
		if mon != nil {
			err = fmt.Errorf("%w\nmonitor log:\n%s", err, mon.Tail(30))
		}
		return nil, fmt.Errorf("%w\nreloader log:\n%s", err, d.hap.Log())
	}
	if err := d.change("initial configuration (haproxy started from it)", true, func() (err error) {
		mon, err = harness.StartMonitor(bin, filepath.Join(dir, "monitor.log"), args)
		return err
	}, "master-0", "master-1", "master-2"); err != nil {
		return failed(err)
	}
	url := "https://127.0.0.1:" + strconv.Itoa(d.hap.LBPort) + "/version"
	lctx, stopLoad := context.WithCancel(ctx)
	loaded := make(chan load.Result, 1)
	loadStart := time.Now()
	go func() {
		loaded <- load.Run(lctx, load.Options{URL: url, Workers: 2, Pause: 20 * time.Millisecond, Duration: 2 * time.Minute})
	}()
	defer stopLoad()
	say("load: 2 workers sending GET %s, a new connection each, through every change below", url)

	d.step("adding master-3 (a Node with InternalIP 127.0.0.14)")
	if err := d.change("master-3 added", false, func() error {
		return harness.CreateNode(ctx, d.client, harness.NodeObject("master-3", harness.MasterLabel, hosts[4]))
	}, "master-0", "master-1", "master-2", "master-3"); err != nil {
		return failed(err)
	}

	d.step("moving master-2 to 127.0.0.15 (its InternalIP changed)")
	moveFrom := time.Since(loadStart)
	if err := d.change("master-2 moved", false, func() error {
		return harness.SetInternalIP(ctx, d.client, "master-2", hosts[5])
	}, "master-0", "master-1", "master-2@"+hosts[5], "master-3"); err != nil {
		return failed(err)
	}
	moveTo := time.Since(loadStart)

	d.step("deleting master-1's Node")
	if err := d.remove(ctx, "master-1"); err != nil {
		return failed(err)
	}

	d.step("changing the template (timeout queue 1m → 2m): more than server lines, so a reload")
	if err := d.change("template changed", true, func() error {
		return d.hap.RewriteTemplate("timeout queue        1m", "timeout queue        2m")
	}, "master-0", "master-2@"+hosts[5], "master-3"); err != nil {
		return failed(err)
	}

	stopLoad()
	d.report.Load = <-loaded
	r := d.report.Load
	say("")
	say("load during the changes: %d requests, %d failed, by backend %v", r.Sent, r.Failed, r.ByBackend)
	// A moved server's connections to its old address are shut (that
	// address is gone on a real cluster): a request in flight there, one
	// per worker at most, fails. Nothing else may.
	if cut := cutByMove(r, moveFrom, moveTo+500*time.Millisecond); r.Failed > cut || cut > 2 {
		return failed(fmt.Errorf("%d of %d requests through the load balancer failed (%d of them in flight on master-2 as it moved): %v", r.Failed, r.Sent, cut, r.Errors))
	} else if cut > 0 {
		say("  %d in flight on master-2's old address when it moved, shut with it by design; none other", cut)
	}

	d.step("summary")
	for _, s := range d.report.Steps {
		how := "runtime API, no reload"
		if s.Reloads > 0 {
			how = fmt.Sprintf("%d reload", s.Reloads)
		}
		say("%-50s %8v  %s", s.Name, s.Took.Round(time.Millisecond), how)
	}
	say("%-50s %8v", "master-1 in drain after its Node's deletion", d.report.Drained.Round(time.Millisecond))
	say("%-50s %8v", "master-1 deleted from haproxy after", d.report.Removed.Round(time.Millisecond))
	d.step("tearing down")
	return &d.report, nil
}

func (d *demo) step(s string) { fmt.Fprintf(d.out, "\n==> %s\n", s) }

// quiet leaves a second without changes before the next, as between
// changes on a real cluster: the monitor renders the first change after a
// quiet period (--debounce, 150 ms, without a change or a render) at once,
// and one that follows a render closely only once the debounce has passed.
func quiet() { time.Sleep(time.Second) }

// change makes a write and waits until haproxy serves exactly want (each
// "name" or "name@address", all UP, none draining), from a new haproxy
// process if reload is set; it records the time from the write and the
// reloads it took, and shows the rendered change.
func (d *demo) change(name string, reload bool, write func() error, want ...string) error {
	quiet()
	reloads := d.hap.ReloadsReceived()
	pid, _ := d.hap.Info("Pid")
	start := time.Now()
	if err := write(); err != nil {
		return err
	}
	if !harness.Poll(30*time.Second, 2*time.Millisecond, func() bool {
		if reload {
			if now, err := d.hap.Info("Pid"); err != nil || now == pid {
				return false
			}
		}
		return d.hap.ServersReady(want...)
	}) {
		got, err := d.hap.Servers()
		return fmt.Errorf("%s: haproxy does not serve %v: %v %v", name, want, got, err)
	}
	s := Step{Name: name, Took: time.Since(start), Reloads: d.hap.ReloadsReceived() - reloads}
	d.report.Steps = append(d.report.Steps, s)
	how := "through the runtime API, no reload"
	if s.Reloads > 0 {
		how = fmt.Sprintf("by %d reload", s.Reloads)
	}
	fmt.Fprintf(d.out, "  %s: haproxy serves it %v after the write, %s\n", name, s.Took.Round(time.Millisecond), how)
	return d.show()
}

// remove deletes a master's Node and follows its server: in drain at once
// (no new connections, existing ones go on), deleted after the grace.
func (d *demo) remove(ctx context.Context, name string) error {
	quiet()
	reloads := d.hap.ReloadsReceived()
	start := time.Now()
	if err := d.client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return err
	}
	if !harness.Poll(30*time.Second, 2*time.Millisecond, func() bool {
		s, err := d.hap.Servers()
		return err == nil && s[name].Draining()
	}) {
		got, err := d.hap.Servers()
		return fmt.Errorf("%s not in drain: %v %v", name, got, err)
	}
	d.report.Drained = time.Since(start)
	fmt.Fprintf(d.out, "  %s in drain %v after the deletion (the file no longer has it)\n", name, d.report.Drained.Round(time.Millisecond))
	if err := d.show(); err != nil {
		return err
	}
	if !harness.Poll(removalGrace+removalSpread+30*time.Second, 10*time.Millisecond, func() bool {
		s, err := d.hap.Servers()
		_, there := s[name]
		return err == nil && !there
	}) {
		got, err := d.hap.Servers()
		return fmt.Errorf("%s still in haproxy after its grace: %v %v", name, got, err)
	}
	d.report.Removed = time.Since(start)
	n := d.hap.ReloadsReceived() - reloads
	d.report.Steps = append(d.report.Steps, Step{Name: name + " removed (drained, then deleted)", Took: d.report.Removed, Reloads: n})
	fmt.Fprintf(d.out, "  %s deleted from haproxy %v after the deletion (grace %v, spread %v), %d reloads\n",
		name, d.report.Removed.Round(time.Millisecond), removalGrace, removalSpread, n)
	return d.servers()
}

// show prints the lines that changed in the file and haproxy's own view of
// its servers. After a runtime change the file follows haproxy within the
// time haproxy -c takes: it waits for that.
func (d *demo) show() error {
	var cur string
	if !harness.Poll(10*time.Second, 5*time.Millisecond, func() bool {
		b, err := os.ReadFile(d.hap.CfgPath)
		cur = string(b)
		return err == nil && cur != d.lastCfg
	}) {
		return fmt.Errorf("%s unchanged after the change", d.hap.CfgPath)
	}
	for _, l := range diffLines(d.lastCfg, cur) {
		fmt.Fprintln(d.out, "    "+l)
	}
	d.lastCfg = cur
	return d.servers()
}

// servers prints haproxy's own view of its servers.
func (d *demo) servers() error {
	servers, err := d.hap.Servers()
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(servers))
	for k := range servers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(d.out, "  haproxy (show servers state masters):")
	for _, k := range keys {
		state := "DOWN"
		if servers[k].Up {
			state = "UP"
		}
		if servers[k].Draining() {
			state += ", drain"
		}
		fmt.Fprintf(d.out, "    %-9s %-12s %s\n", k, servers[k].Addr, state)
	}
	return nil
}

// diffLines shows the server lines removed and added between two configs (the
// section and server lines the first time).
func diffLines(old, cur string) []string {
	has := func(text string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(text, "\n") {
			m[l] = true
		}
		return m
	}
	was, is := has(old), has(cur)
	var out []string
	for _, l := range strings.Split(old, "\n") {
		if strings.TrimSpace(l) != "" && !is[l] {
			out = append(out, "- "+strings.TrimSpace(l))
		}
	}
	for _, l := range strings.Split(cur, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case old == "" && (strings.HasPrefix(t, "server ") || strings.HasPrefix(l, "frontend") || strings.HasPrefix(l, "backend")):
			out = append(out, "  "+l)
		case old != "" && t != "" && !was[l]:
			out = append(out, "+ "+t)
		}
	}
	return out
}

// cutByMove counts the failures the load reports between from and to
// (seconds into the load, "at 2.149s: ...").
func cutByMove(r load.Result, from, to time.Duration) int64 {
	var n int64
	for _, e := range r.Errors {
		var sec float64
		if _, err := fmt.Sscanf(e, "at %fs:", &sec); err != nil {
			continue
		}
		if at := time.Duration(sec * float64(time.Second)); at >= from && at <= to {
			n++
		}
	}
	return n
}
