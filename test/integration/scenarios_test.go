package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
	"github.com/haproxy-monitor/haproxy-monitor/test/load"
)

// 1. Three masters exist → cfg rendered, haproxy reloaded, all UP, traffic flows.
func TestStartup(t *testing.T) {
	s := newSite(t)
	s.node("m1", harness.MasterLabel, 11)
	s.node("m2", harness.ControlPlaneLabel, 12)
	s.node("m3", harness.MasterLabel, 13)
	s.startHAProxy()
	s.startMonitor()
	d := s.waitServing(30*time.Second, "m1", "m2", "m3")
	t.Logf("monitor start to three servers UP: %v", d.Round(time.Millisecond))
	if n := s.hap.ReloadsReceived(); n != 1 {
		t.Errorf("%d reloads at start-up, want 1", n)
	}
	by, failed := s.traffic(30)
	if failed != 0 || len(by) != 3 {
		t.Fatalf("30 requests: %d failed, served by %v; want 0 failed over 3 backends", failed, by)
	}
	if d := s.stopMonitor(); d > time.Second {
		t.Errorf("monitor took %v to stop after SIGTERM", d)
	} else {
		t.Logf("monitor stopped %v after SIGTERM", d.Round(time.Millisecond))
	}
}

// 2. Membership changes reach haproxy; the time from API write to haproxy
// serving the new set is logged for each.
func TestMembershipChanges(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	s.node("m1", harness.MasterLabel, 11)
	s.node("m2", harness.MasterLabel, 12)
	s.node("m3", harness.MasterLabel, 13)
	s.startHAProxy()
	s.startMonitor()
	s.waitServing(30*time.Second, "m1", "m2", "m3")

	var report []string
	last := time.Now()
	step := func(name string, write func() error, want ...string) {
		t.Helper()
		// Each change on its own, as on a cluster: past the debounce's
		// quiet period after the last one, so the time below is the
		// change's own, not the wait a burst would get.
		time.Sleep(time.Until(last.Add(300 * time.Millisecond)))
		start := time.Now()
		if err := write(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s.waitServing(20*time.Second, want...)
		report = append(report, fmt.Sprintf("%-34s %v", name, time.Since(start).Round(time.Millisecond)))
		last = time.Now()
	}
	s.master("m4", 14)
	step("add master m4", func() error {
		return harness.CreateNode(ctx, client, harness.NodeObject("m4", harness.MasterLabel, hostIP(14)))
	}, "m1", "m2", "m3", "m4")
	// As a kubelet may register: the Node first, its addresses in a second
	// write. The first renders nothing new and must not delay the second.
	addr5 := s.master("m5", 17)
	step("add master m5 in two writes", func() error {
		if err := harness.CreateNode(ctx, client, harness.NodeObject("m5", harness.MasterLabel)); err != nil {
			return err
		}
		return harness.SetInternalIP(ctx, client, "m5", addr5)
	}, "m1", "m2", "m3", "m4", "m5")
	step("delete master m5", func() error {
		return client.CoreV1().Nodes().Delete(ctx, "m5", metav1.DeleteOptions{})
	}, "m1", "m2", "m3", "m4")
	step("delete master m2", func() error {
		return client.CoreV1().Nodes().Delete(ctx, "m2", metav1.DeleteOptions{})
	}, "m1", "m3", "m4")
	s.node("w1", "", 15)
	step("relabel worker w1 to control-plane", func() error {
		return harness.UpdateNode(ctx, client, "w1", func(n *corev1.Node) { n.Labels[harness.ControlPlaneLabel] = "" })
	}, "m1", "m3", "m4", "w1")
	newAddr := s.master("m1", 16)
	step("change m1's InternalIP", func() error { return harness.SetInternalIP(ctx, client, "m1", newAddr) },
		"m1@"+newAddr, "m3", "m4", "w1")
	s.waitCfg("server m1 " + newAddr + ":")
	// Traffic reaches the new address of m1.
	before := s.masters[newAddr].Hits.Load()
	if _, failed := s.traffic(12); failed != 0 {
		t.Fatalf("%d requests failed after the changes", failed)
	}
	if s.masters[newAddr].Hits.Load() == before {
		t.Fatal("no request reached m1 at its new address")
	}
	t.Logf("API write → haproxy serving the new set:\n  %s", strings.Join(report, "\n  "))
}

// 3. Node status heartbeats every 100 ms for 10 s cause zero reloads.
func TestHeartbeatsCauseNoReload(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	s.node("m1", harness.MasterLabel, 11)
	s.node("m2", harness.MasterLabel, 12)
	s.startHAProxy()
	s.startMonitor()
	s.waitServing(30*time.Second, "m1", "m2")
	changes := s.changes()

	beats := 0
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); beats++ {
		for _, n := range []string{"m1", "m2"} {
			if err := harness.Heartbeat(ctx, client, n); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(100 * time.Millisecond) // the kubelet's pace, not synchronisation
	}
	// A real change after the heartbeats: once it is served, every heartbeat
	// before it has been through the monitor.
	s.node("m3", harness.MasterLabel, 13)
	s.waitServing(20*time.Second, "m1", "m2", "m3")
	if got := s.waitChanges(changes, 1); got != 1 {
		t.Fatalf("%d heartbeat rounds then one real change gave %d changes, want 1", beats, got)
	}
	t.Logf("%d heartbeat rounds on 2 nodes: no change", beats)
}

// 4. The apiserver stops for 30 s: cfg untouched, haproxy keeps serving; the
// monitor reconnects and applies a change made right after the API returns.
func TestAPIServerOutage(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	api, before, reloads := s.servingThenAPIDown()
	r := load.Run(ctx, load.Options{URL: s.lbURL("/version"), Workers: 1, Pause: 100 * time.Millisecond, Duration: 30 * time.Second})
	sent, failed := r.Sent, r.Failed
	if !harness.FileUnchanged(s.hap.CfgPath, before) || s.hap.ReloadsReceived() != reloads {
		t.Fatal("cfg changed or haproxy reloaded while the API was down")
	}
	if failed != 0 {
		t.Fatalf("%d of %d requests through haproxy failed while the API was down", failed, sent)
	}
	if s.mon.Exited() {
		t.Fatal("monitor exited during the outage")
	}
	if err := cp.StartAPIServer(ctx, api); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.node("m3", harness.MasterLabel, 13)
	s.waitServing(60*time.Second, "m1", "m2", "m3")
	t.Logf("outage 30 s: %d requests, 0 failed; change made after the API returned served in %v", sent, time.Since(start).Round(time.Millisecond))
}

// 5. A monitor restarted while the API is down leaves the cfg alone.
func TestMonitorRestartWhileAPIDown(t *testing.T) {
	s := newSite(t)
	port := s.health()
	api, before, reloads := s.servingThenAPIDown()
	s.stopMonitor()
	s.startMonitor()
	// Wait until the new monitor has tried the API and failed.
	s.waitLog(30*time.Second, "API unreachable on every endpoint")
	// Ready, and saying why: haproxy serves the last-known-good configuration.
	if code, body := harness.Readyz(port); code != 200 || !strings.Contains(body, "last-known-good") {
		t.Errorf("/readyz during the outage = %d %q, want 200 with last-known-good", code, body)
	}
	if !harness.FileUnchanged(s.hap.CfgPath, before) || s.hap.ReloadsReceived() != reloads {
		t.Fatal("restarted monitor touched the cfg or reloaded while the API was down")
	}
	if by, failed := s.traffic(10); failed != 0 {
		t.Fatalf("haproxy stopped serving: %d failed, %v", failed, by)
	}
	// Back: it syncs, finds the same config and does not reload.
	if err := cp.StartAPIServer(context.Background(), api); err != nil {
		t.Fatal(err)
	}
	if body, ok := harness.WaitReadyz(port, 60*time.Second, func(code int, body string) bool { return code == 200 && body == "ok\n" }); !ok {
		t.Fatalf("monitor not ready after the API returned: %s", body)
	}
	if s.hap.ReloadsReceived() != reloads {
		t.Fatal("monitor reloaded an unchanged config after the API returned")
	}
}

// 6. The reloader socket is absent at start and appears later: the pending
// reload is delivered (the original monitor exits here).
func TestReloaderAppearsLater(t *testing.T) {
	s := newSite(t)
	s.node("m1", harness.MasterLabel, 11)
	s.startMonitor()
	s.waitLog(30*time.Second, "reload not delivered")
	if !strings.Contains(string(s.cfg()), "server m1 ") {
		t.Fatalf("cfg not written while the socket was missing:\n%s", s.cfg())
	}
	s.startHAProxy()
	if !harness.Poll(20*time.Second, 20*time.Millisecond, func() bool { return s.hap.ReloadsReceived() >= 1 }) {
		t.Fatal("pending reload never delivered")
	}
	s.waitServing(20*time.Second, "m1")
	if s.mon.Exited() {
		t.Fatal("monitor exited")
	}
}

// 7. Bad input: a clear error and nothing on disk changed.
func TestBadInputLeavesDiskAlone(t *testing.T) {
	s := newSite(t)
	const precious = "# precious, must survive\n"
	writeFile(t, s.hap.CfgPath, []byte(precious), 0o644)
	s.node("m1", harness.MasterLabel, 11)
	brokenTmpl := filepath.Join(s.dir, "broken.tmpl")
	writeFile(t, brokenTmpl, []byte("{{ range .LBConfig.Backends }}"), 0o644)
	garbageKC := filepath.Join(s.dir, "garbage.kubeconfig")
	writeFile(t, garbageKC, []byte("this: [is not a kubeconfig"), 0o644)

	cases := []struct {
		name, want string
		argv       []string
	}{
		{"broken template", "parsing template", []string{s.args.Kubeconfig, brokenTmpl, s.hap.CfgPath}},
		{"garbage kubeconfig", "loading kubeconfig", []string{garbageKC, s.hap.TemplatePath, s.hap.CfgPath}},
		{"missing kubeconfig", "loading kubeconfig", []string{filepath.Join(s.dir, "nope"), s.hap.TemplatePath, s.hap.CfgPath, "--kubeconfig-wait", "0"}},
		// Waited for (the kubelet's TLS bootstrap writes it), then refused.
		{"missing kubeconfig after the wait", "waited 1s for the kubelet's TLS bootstrap",
			[]string{filepath.Join(s.dir, "nope"), s.hap.TemplatePath, s.hap.CfgPath, "--kubeconfig-wait", "1s"}},
		{"two arguments", "accepts 3 arg(s)", []string{s.args.Kubeconfig, s.hap.TemplatePath}},
		{"bad VIP", "invalid argument", []string{s.args.Kubeconfig, s.hap.TemplatePath, s.hap.CfgPath, "--api-vips", "300.1.1.1"}},
		{"missing config directory", "config directory", []string{s.args.Kubeconfig, s.hap.TemplatePath, filepath.Join(s.dir, "nope", "haproxy.cfg")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := harness.StartProcess("monitor", filepath.Join(s.dir, strings.ReplaceAll(tc.name, " ", "-")+".log"), nil,
				append([]string{monitorBin, "--reload-socket", s.hap.MasterSock, "--health-bind-address", ""}, tc.argv...)...)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.Wait(ctx); err == nil || ctx.Err() != nil {
				t.Fatalf("monitor did not fail: %v\n%s", err, p.Log())
			}
			if !strings.Contains(p.Log(), tc.want) {
				t.Errorf("error output lacks %q:\n%s", tc.want, p.Log())
			}
			if !harness.FileUnchanged(s.hap.CfgPath, []byte(precious)) {
				t.Fatal("cfg changed")
			}
		})
	}
}

// 7b. A read-only cfg directory: the monitor keeps running, reports the error,
// the cfg and haproxy stay as they were.
func TestReadOnlyConfigDir(t *testing.T) {
	s := newSite(t)
	s.startWithM1()
	s.stopMonitor()
	before := s.cfg()
	reloads := s.hap.ReloadsReceived()
	s.node("m2", harness.MasterLabel, 12) // the next render differs from disk

	// A private mount namespace makes the cfg directory read-only for the
	// monitor alone (root ignores permission bits).
	dir := filepath.Dir(s.hap.CfgPath)
	script := fmt.Sprintf("mount --bind %[1]q %[1]q && mount -o remount,ro,bind %[1]q %[1]q && exec \"$0\" \"$@\"", dir)
	argv := append([]string{"unshare", "-m", "--propagation", "private", "sh", "-c", script, monitorBin}, s.args.Argv()...)
	p, err := harness.StartProcess("monitor-ro", filepath.Join(s.dir, "monitor-ro.log"), nil, argv...)
	if err != nil {
		t.Fatal(err)
	}
	s.mon = p
	s.waitLog(30*time.Second, "configuration not applied")
	if !strings.Contains(p.Log(), "read-only file system") {
		t.Errorf("error does not say why:\n%s", p.Tail(10))
	}
	if !harness.FileUnchanged(s.hap.CfgPath, before) || s.hap.ReloadsReceived() != reloads {
		t.Fatal("cfg changed or haproxy reloaded")
	}
	if _, failed := s.traffic(5); failed != 0 || p.Exited() {
		t.Fatalf("haproxy serving: %d failed; monitor exited: %v", failed, p.Exited())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file %s left in the cfg dir", e.Name())
		}
	}
}

// 8. A burst of 50 node changes in about a second: few reloads, right end state.
func TestBurstIsDebounced(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	s.node("m1", harness.MasterLabel, 11)
	for i := 20; i < 30; i++ {
		s.master("m2", i)
	}
	if err := harness.CreateNode(ctx, client, harness.NodeObject("m2", harness.MasterLabel, hostIP(20))); err != nil {
		t.Fatal(err)
	}
	s.startHAProxy()
	s.startMonitor()
	s.waitServing(30*time.Second, "m1", "m2")
	changes := s.changes()

	start := time.Now()
	// m2 starts on .20 and moves through .21-.29, ending on .26: a burst that
	// ends where it began would rightly cause no reload at all.
	for i := 1; i <= 50; i++ {
		if err := harness.SetInternalIP(ctx, client, "m2", hostIP(21+i%9)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(15 * time.Millisecond) // spread the 50 writes over about a second
	}
	burst := time.Since(start)
	final := hostIP(21 + 50%9)
	if !harness.Poll(20*time.Second, 10*time.Millisecond, func() bool {
		return s.hap.ServersUp("m1", "m2@"+final)
	}) {
		t.Fatalf("final address %s not served:\n%s", final, s.cfg())
	}
	s.waitCfg("server m2 " + final + ":")
	got := s.waitChanges(changes, 1)
	t.Logf("50 changes in %v: %d applied (the first at once, then the end state)", burst.Round(time.Millisecond), got)
	// The debouncer's promise: the first change at once, the end state once
	// the burst is over, and while changes keep coming one render per
	// --max-debounce (1 s) at most.
	if limit := 2 + int(burst/time.Second); got < 1 || got > limit {
		t.Fatalf("50 changes in %v gave %d applied, want 1 to %d", burst.Round(time.Millisecond), got, limit)
	}
}

// 5b. A monitor that died between writing the file and delivering the reload
// leaves haproxy serving an old set with the right file on disk. The next
// monitor finds the file current, sees in haproxy's runtime API that haproxy
// serves something else, and reloads.
func TestRestartAfterLostReload(t *testing.T) {
	s := newSite(t)
	s.startWithM1()
	s.stopMonitor()
	// A monitor whose reload cannot be delivered writes the new file.
	s.node("m2", harness.MasterLabel, 12)
	good := s.args
	s.args.Extra = append(append([]string{}, s.args.Extra...), "--reload-socket", filepath.Join(s.dir, "nobody-listens.sock"),
		"--haproxy-admin-socket", "")
	s.startMonitor()
	s.waitLog(30*time.Second, "reload not delivered")
	if !strings.Contains(string(s.cfg()), "server m2 ") {
		t.Fatalf("file not written:\n%s", s.cfg())
	}
	s.stopMonitor()
	if !s.hap.ServersUp("m1") {
		t.Fatal("haproxy should still serve the old set")
	}
	reloads := s.hap.ReloadsReceived()
	s.args = good
	s.startMonitor()
	s.waitServing(30*time.Second, "m1", "m2")
	s.waitLog(10*time.Second, "haproxy serves other servers than the configuration on disk")
	if got := s.hap.ReloadsReceived() - reloads; got != 1 {
		t.Fatalf("%d reloads, want 1", got)
	}
}
