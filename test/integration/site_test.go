package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
	"github.com/haproxy-monitor/haproxy-monitor/test/load"
)

// site is one control-plane node's load balancer: haproxy with the
// reloader, the monitor, and fake masters for the backends.
type site struct {
	t       *testing.T
	dir     string
	hap     *harness.HAProxy
	mon     *harness.Process
	args    harness.MonitorArgs
	masters map[string]*harness.FakeMaster // by address
	starts  int
}

// newSite cleans the cluster's Nodes and prepares an haproxy instance. Neither
// haproxy nor the monitor runs yet.
func newSite(t *testing.T) *site {
	t.Helper()
	ctx := context.Background()
	if err := harness.DeleteAllNodes(ctx, client); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "hapm-site")
	if err != nil {
		t.Fatal(err)
	}
	hap, err := harness.PrepareHAProxy(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The monitor runs as the kubelet of master m1 would: its own node
	// identity, never the tests' admin.
	kc := filepath.Join(dir, "kubeconfig")
	if err := cp.WriteNodeKubeconfig(kc, cp.APIServers[0].URL, "m1"); err != nil {
		t.Fatal(err)
	}
	s := &site{t: t, dir: dir, hap: hap, masters: map[string]*harness.FakeMaster{},
		args: harness.MonitorArgs{Kubeconfig: kc, HAProxy: hap, APIPort: apiPort, VIPs: "127.0.0.100",
			// A removed server drains for half a second here, not the
			// production 70 s.
			Extra: []string{"--debounce", "100ms", "--removal-grace", "500ms", "--removal-spread", "100ms"}}}
	t.Cleanup(func() {
		s.stopMonitor()
		hap.Stop()
		for _, m := range s.masters {
			m.Close()
		}
		if t.Failed() {
			t.Logf("site files kept in %s", dir)
			if s.mon != nil {
				t.Logf("monitor log tail:\n%s", s.mon.Tail(40))
			}
			t.Logf("reloader log tail:\n%s", tail(hap.Log(), 40))
			return
		}
		os.RemoveAll(dir)
	})
	return s
}

// writeFile writes a test input, failing t if it cannot.
func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// startWithM1 registers master m1, starts haproxy and the monitor, and waits
// until haproxy serves m1: most scenarios' starting point.
func (s *site) startWithM1() {
	s.t.Helper()
	s.node("m1", harness.MasterLabel, 11)
	s.startHAProxy()
	s.startMonitor()
	s.waitServing(30*time.Second, "m1")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// master starts a fake apiserver at host index i.
func (s *site) master(name string, i int) string {
	s.t.Helper()
	addr := hostIP(i)
	m, err := harness.StartFakeMaster(cp.CA, name, addr, apiPort)
	if err != nil {
		s.t.Fatal(err)
	}
	s.masters[addr] = m
	return addr
}

// node creates a Node whose InternalIP is a fake master at host index i.
func (s *site) node(name, label string, i int) {
	s.t.Helper()
	addr := s.master(name, i)
	if err := harness.CreateNode(context.Background(), client, harness.NodeObject(name, label, addr)); err != nil {
		s.t.Fatal(err)
	}
}

// health has the monitor serve /healthz, /readyz and /metrics on a free
// port, and returns it.
func (s *site) health() int {
	s.t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		s.t.Fatal(err)
	}
	s.args.HealthPort = port
	return port
}

func (s *site) startHAProxy() {
	s.t.Helper()
	if err := s.hap.Start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *site) startMonitor() {
	s.t.Helper()
	// One log per process, so a wait for a line never matches an earlier run's.
	s.starts++
	p, err := harness.StartMonitor(monitorBin, filepath.Join(s.dir, fmt.Sprintf("monitor-%d.log", s.starts)), s.args)
	if err != nil {
		s.t.Fatal(err)
	}
	s.mon = p
}

func (s *site) stopMonitor() time.Duration {
	if s.mon == nil || s.mon.Exited() {
		return 0
	}
	return s.mon.Stop(10 * time.Second)
}

// waitServing waits until haproxy's masters backend is exactly names, all UP,
// and returns how long that took.
func (s *site) waitServing(timeout time.Duration, names ...string) time.Duration {
	s.t.Helper()
	start := time.Now()
	if !harness.Poll(timeout, 10*time.Millisecond, func() bool { return s.hap.ServersUp(names...) }) {
		got, err := s.hap.Servers()
		s.t.Fatalf("haproxy does not serve %v after %v: has %v (%v)", names, timeout, got, err)
	}
	return time.Since(start)
}

// traffic sends n requests through the load balancer, one at a time, and
// returns the backends that answered and the failures.
func (s *site) traffic(n int) (byBackend map[string]int64, failed int64) {
	r := load.Run(context.Background(), load.Options{URL: s.lbURL("/version"), Workers: 1, Requests: n, Duration: time.Minute})
	return r.ByBackend, r.Failed
}

func (s *site) lbURL(path string) string {
	return "https://127.0.0.1:" + strconv.Itoa(s.hap.LBPort) + path
}

// changes counts the changes haproxy took: reloads the reloader received, and
// changes made through the runtime API by the current monitor process.
func (s *site) changes() int {
	runtime := 0
	if s.mon != nil {
		runtime = strings.Count(s.mon.Log(), "through its runtime API, without a reload")
	}
	return s.hap.ReloadsReceived() + runtime
}

// waitChanges waits until haproxy took n changes more than before, and
// returns how many it took once the log is quiet for a moment.
func (s *site) waitChanges(before, n int) int {
	s.t.Helper()
	if !harness.Poll(10*time.Second, 5*time.Millisecond, func() bool { return s.changes()-before >= n }) {
		s.t.Fatalf("%d changes, want %d", s.changes()-before, n)
	}
	return s.changes() - before
}

// waitCfg waits until the file contains substr: it follows a runtime change
// by the time haproxy -c takes.
func (s *site) waitCfg(substr string) {
	s.t.Helper()
	if !harness.Poll(10*time.Second, 5*time.Millisecond, func() bool { return strings.Contains(string(s.cfg()), substr) }) {
		s.t.Fatalf("cfg never contained %q:\n%s", substr, s.cfg())
	}
}

func (s *site) cfg() []byte {
	b, _ := os.ReadFile(s.hap.CfgPath)
	return b
}

func (s *site) waitLog(timeout time.Duration, substr string) {
	s.t.Helper()
	if !harness.Poll(timeout, 20*time.Millisecond, func() bool { return strings.Contains(s.mon.Log(), substr) }) {
		s.t.Fatalf("monitor never logged %q:\n%s", substr, s.mon.Tail(30))
	}
}

// servingThenAPIDown starts haproxy and the monitor with masters m1 and m2,
// waits until they are served, then stops the apiserver (started again at
// cleanup). It returns the apiserver and the cfg and reload count from
// before the outage.
func (s *site) servingThenAPIDown() (api *harness.APIServer, before []byte, reloads int) {
	s.t.Helper()
	s.node("m1", harness.MasterLabel, 11)
	s.node("m2", harness.MasterLabel, 12)
	s.startHAProxy()
	s.startMonitor()
	s.waitServing(30*time.Second, "m1", "m2")
	before, reloads = s.cfg(), s.hap.ReloadsReceived()
	api = cp.APIServers[0]
	cp.StopAPIServer(api)
	s.t.Cleanup(func() { _ = cp.StartAPIServer(context.Background(), api) })
	return api, before, reloads
}
