package monitor

import (
	"context"
	"errors"
	"github.com/haproxy-monitor/haproxy-monitor/test/fakesock"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery/clientset"
)

func newSinkPath(t *testing.T) string {
	dir, err := os.MkdirTemp("", "mon")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "master.sock")
}

// reloadSink is the reloader's socket as the monitor sees it: listening
// from the start, or from when a test calls listen.
type reloadSink struct {
	path string
	mu   sync.Mutex
	r    *fakesock.Reloader
}

func (s *reloadSink) listen(t *testing.T) {
	t.Helper()
	r := fakesock.NewReloader(t, s.path)
	s.mu.Lock()
	s.r = r
	s.mu.Unlock()
}

func (s *reloadSink) count(t *testing.T) int {
	t.Helper()
	s.mu.Lock()
	r := s.r
	s.mu.Unlock()
	if r == nil {
		return 0
	}
	return r.Reloads(t)
}

func node(name string, label string, ips ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if label != "" {
		n.Labels[label] = ""
	}
	for _, ip := range ips {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
	return n
}

type harness struct {
	t      *testing.T
	client kubernetes.Interface
	mon    *Monitor
	sink   *reloadSink
	cfg    string
	cancel context.CancelFunc
	done   chan error
}

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(os.Stderr)
	}
	return l
}

func testConfig(t *testing.T, sock string) Config {
	cfg := DefaultConfig()
	cfg.KubeconfigPath = "unused-with-injected-client"
	cfg.TemplatePath = "../../templates/haproxy.cfg.tmpl"
	cfg.ConfigPath = filepath.Join(t.TempDir(), "haproxy.cfg")
	cfg.CheckInterval = time.Second
	cfg.VIPs = []netip.Addr{netip.MustParseAddr("198.18.0.100")}
	cfg.ReloadSocket = sock
	cfg.Debounce, cfg.MaxDebounce = 50*time.Millisecond, 500*time.Millisecond
	cfg.APITimeout = time.Second
	// No haproxy binary, runtime socket, health listener or firewall here:
	// the tests that want one set it.
	cfg.HAProxyBinary, cfg.StatsSocket, cfg.AdminSocket, cfg.HealthAddr, cfg.Redirect = "", "", "", "", false
	cfg.LocalPrefixes = func() ([]netip.Prefix, error) {
		return []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}, nil
	}
	cfg.Log = quietLogger()
	return cfg
}

func start(t *testing.T, cfg Config, listen bool, objs ...*corev1.Node) *harness {
	t.Helper()
	client := fake.NewClientset()
	for _, n := range objs {
		if _, err := client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return startClient(t, cfg, listen, client)
}

func startClient(t *testing.T, cfg Config, listen bool, client kubernetes.Interface) *harness {
	t.Helper()
	cfg.Client = clientset.New(client)
	mon, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, client: client, mon: mon, sink: &reloadSink{path: cfg.ReloadSocket}, cfg: cfg.ConfigPath, done: make(chan error, 1)}
	if listen {
		h.sink.listen(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- mon.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case <-h.done:
	case <-time.After(5 * time.Second):
		h.t.Error("monitor did not stop within 5s of cancel")
	}
}

// renders reads the monitor's renders_total counter.
func (h *harness) renders() uint64 { return uint64(testutil.ToFloat64(h.mon.metrics.Renders)) }

func (h *harness) file() string {
	b, _ := os.ReadFile(h.cfg)
	return string(b)
}

func (h *harness) servers() []string {
	var out []string
	for _, line := range strings.Split(h.file(), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "server" {
			out = append(out, f[1]+"="+f[2])
		}
	}
	return out
}

func (h *harness) waitServers(want ...string) {
	h.t.Helper()
	poll.Must(h.t, 15*time.Second, "servers "+strings.Join(want, ","), func() bool {
		return strings.Join(h.servers(), " ") == strings.Join(want, " ")
	})
}

func (h *harness) waitReloads(n int) {
	h.t.Helper()
	poll.Must(h.t, 15*time.Second, "reload count to reach the expected value", func() bool { return h.sink.count(h.t) >= n })
	if got := h.sink.count(h.t); got != n {
		h.t.Fatalf("%d reloads, want %d", got, n)
	}
}

func (h *harness) update(name string, mutate func(*corev1.Node)) {
	h.t.Helper()
	ctx := context.Background()
	n, err := h.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	mutate(n)
	if _, err := h.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func TestMonitorFollowsMembers(t *testing.T) {
	cfg := testConfig(t, newSinkPath(t))
	h := start(t, cfg, true,
		node("m1", discovery.MasterLabel, "198.18.0.11"),
		node("m2", discovery.ControlPlaneLabel, "198.18.0.12"),
		node("m3", discovery.MasterLabel, "198.19.0.13", "198.18.0.13"),
		node("w1", "", "198.18.0.21"),
	)
	ctx := context.Background()
	h.waitServers("m1=198.18.0.11:6443", "m2=198.18.0.12:6443", "m3=198.18.0.13:6443")
	h.waitReloads(1)

	// add a master
	if _, err := h.client.CoreV1().Nodes().Create(ctx, node("m4", discovery.MasterLabel, "198.18.0.14"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitServers("m1=198.18.0.11:6443", "m2=198.18.0.12:6443", "m3=198.18.0.13:6443", "m4=198.18.0.14:6443")
	h.waitReloads(2)

	// remove one
	if err := h.client.CoreV1().Nodes().Delete(ctx, "m2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitServers("m1=198.18.0.11:6443", "m3=198.18.0.13:6443", "m4=198.18.0.14:6443")
	h.waitReloads(3)

	// relabel a worker to control-plane
	h.update("w1", func(n *corev1.Node) { n.Labels[discovery.ControlPlaneLabel] = "" })
	h.waitServers("m1=198.18.0.11:6443", "m3=198.18.0.13:6443", "m4=198.18.0.14:6443", "w1=198.18.0.21:6443")
	h.waitReloads(4)

	// change an address
	h.update("m1", func(n *corev1.Node) { n.Status.Addresses[0].Address = "198.18.0.31" })
	h.waitServers("m3=198.18.0.13:6443", "m4=198.18.0.14:6443", "w1=198.18.0.21:6443", "m1=198.18.0.31:6443")
	h.waitReloads(5)

	// relabel back to worker
	h.update("w1", func(n *corev1.Node) { delete(n.Labels, discovery.ControlPlaneLabel) })
	h.waitServers("m3=198.18.0.13:6443", "m4=198.18.0.14:6443", "m1=198.18.0.31:6443")
	h.waitReloads(6)
}

// Status heartbeats change conditions and timestamps only: no signal, no
// render, no reload. A real change afterwards proves the updates were seen.
func TestMonitorIgnoresHeartbeats(t *testing.T) {
	cfg := testConfig(t, newSinkPath(t))
	h := start(t, cfg, true,
		node("m1", discovery.MasterLabel, "198.18.0.11"),
		node("m2", discovery.MasterLabel, "198.18.0.12"),
	)
	h.waitServers("m1=198.18.0.11:6443", "m2=198.18.0.12:6443")
	h.waitReloads(1)
	signals, renders := h.mon.source.Signals(), h.renders()

	for i := 0; i < 30; i++ {
		h.update("m1", func(n *corev1.Node) {
			n.Status.Conditions = []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue,
				LastHeartbeatTime: metav1.NewTime(time.Now().Add(time.Duration(i) * time.Second)),
			}}
			n.Status.Images = append(n.Status.Images, corev1.ContainerImage{Names: []string{"img"}})
			n.Annotations = map[string]string{"beat": time.Now().String()}
		})
	}
	// The sentinel goes through the same informer after the heartbeats.
	h.update("m2", func(n *corev1.Node) { n.Status.Addresses[0].Address = "198.18.0.22" })
	h.waitServers("m1=198.18.0.11:6443", "m2=198.18.0.22:6443")
	h.waitReloads(2)
	if got := h.mon.source.Signals() - signals; got != 1 {
		t.Errorf("%d change signals for 30 heartbeats and one real change, want 1", got)
	}
	if got := h.renders() - renders; got != 1 {
		t.Errorf("%d renders for 30 heartbeats and one real change, want 1", got)
	}
}

// Losing every member must not empty a working config; the original would
// write a backend section without servers and reload.
func TestDifferenceKeepsConfigWithoutBackends(t *testing.T) {
	cfg := testConfig(t, newSinkPath(t))
	h := start(t, cfg, true, node("m1", discovery.MasterLabel, "198.18.0.11"))
	h.waitServers("m1=198.18.0.11:6443")
	h.waitReloads(1)
	before := h.file()
	if err := h.client.CoreV1().Nodes().Delete(context.Background(), "m1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The outcome of the render that saw no member: the decision to keep.
	poll.Must(t, 15*time.Second, "the monitor to keep the last configuration", func() bool {
		note, err := h.mon.health.ready()
		return err == nil && strings.Contains(note, "last-known-good configuration in use: kept last configuration: no backends")
	})
	if h.file() != before || h.sink.count(h.t) != 1 {
		t.Fatalf("config changed or reloaded (%d reloads) after the last member left", h.sink.count(h.t))
	}
	// A new member is applied normally again.
	if _, err := h.client.CoreV1().Nodes().Create(context.Background(), node("m2", discovery.MasterLabel, "198.18.0.12"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitServers("m2=198.18.0.12:6443")
	h.waitReloads(2)
}

// The original exits when the socket is missing; here the config is written
// and the reload is delivered once the reloader shows up.
func TestDifferenceReloadSocketMissingAtStart(t *testing.T) {
	cfg := testConfig(t, newSinkPath(t))
	h := start(t, cfg, false, node("m1", discovery.MasterLabel, "198.18.0.11"))
	h.waitServers("m1=198.18.0.11:6443")
	poll.Must(t, 15*time.Second, "readiness to fail on the undelivered reload", func() bool {
		_, err := h.mon.health.ready()
		return err != nil && strings.Contains(err.Error(), "reload not delivered")
	})
	h.sink.listen(t)
	h.waitReloads(1)
	poll.Must(t, 15*time.Second, "readiness after delivery", func() bool { _, err := h.mon.health.ready(); return err == nil })
}

// A restarted monitor finding the right config on disk must not reload: it
// checks what haproxy serves instead, and that check is the outcome waited for.
func TestMonitorRestartWithCurrentConfigDoesNotReload(t *testing.T) {
	sock := newSinkPath(t)
	cfg := testConfig(t, sock)
	cfg.StatsSocket = filepath.Join(filepath.Dir(sock), "stats.sock")
	runtimeAPI(t, cfg.StatsSocket, "masters m1 198.18.0.11")
	h := start(t, cfg, true, node("m1", discovery.MasterLabel, "198.18.0.11"))
	h.waitServers("m1=198.18.0.11:6443")
	h.waitReloads(1)
	h.stop()

	h2 := start(t, cfg, false, node("m1", discovery.MasterLabel, "198.18.0.11"))
	poll.Must(t, 15*time.Second, "the restarted monitor to find haproxy serving the file", func() bool {
		return testutil.ToFloat64(h2.mon.metrics.Verifications.WithLabelValues("current")) == 1
	})
	if n := h.sink.count(h.t); n != 1 {
		t.Fatalf("%d reloads after a restart with an unchanged config, want 1", n)
	}
}

// A restarted monitor finding the right file on disk while haproxy serves
// something else (the previous monitor died between write and reload)
// reloads.
func TestMonitorRestartReloadsStaleHAProxy(t *testing.T) {
	sock := newSinkPath(t)
	cfg := testConfig(t, sock)
	cfg.StatsSocket = filepath.Join(filepath.Dir(sock), "stats.sock")
	runtimeAPI(t, cfg.StatsSocket, "masters m0 198.18.0.10")
	h := start(t, cfg, false, node("m1", discovery.MasterLabel, "198.18.0.11"))
	h.waitServers("m1=198.18.0.11:6443")
	h.stop()

	h2 := start(t, cfg, true, node("m1", discovery.MasterLabel, "198.18.0.11"))
	h2.waitReloads(1)
	if got := testutil.ToFloat64(h2.mon.metrics.Verifications.WithLabelValues("stale")); got != 1 {
		t.Fatalf("stale verifications %v, want 1", got)
	}
}

func TestMonitorDebouncesBursts(t *testing.T) {
	cfg := testConfig(t, newSinkPath(t))
	cfg.Debounce, cfg.MaxDebounce = 150*time.Millisecond, time.Second
	h := start(t, cfg, true, node("m1", discovery.MasterLabel, "198.18.0.11"))
	h.waitServers("m1=198.18.0.11:6443")
	h.waitReloads(1)
	var want []string
	for i := 0; i < 50; i++ {
		h.update("m1", func(n *corev1.Node) { n.Status.Addresses[0].Address = "198.18.1." + itoa(i+1) })
	}
	want = append(want, "m1=198.18.1.50:6443")
	h.waitServers(want...)
	poll.Must(t, 15*time.Second, "the final reload", func() bool {
		return testutil.ToFloat64(h.mon.metrics.Reloads.WithLabelValues("delivered")) >= 2 && h.sink.count(h.t) >= 2
	})
	// The debouncer's promise: a burst costs at most two applied changes,
	// its first and its end state.
	if n := h.sink.count(h.t) - 1; n > 2 {
		t.Errorf("50 changes caused %d reloads, want at most 2", n)
	}
}

func TestMonitorRejectsBadInputBeforeTouchingDisk(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.tmpl")
	_ = os.WriteFile(bad, []byte("{{ .LBConfig.Nope }}"), 0o644)
	cfg := testConfig(t, newSinkPath(t))
	_ = os.WriteFile(cfg.ConfigPath, []byte("precious\n"), 0o644)
	cases := map[string]func(*Config){
		"broken template":  func(c *Config) { c.TemplatePath = bad },
		"missing template": func(c *Config) { c.TemplatePath = filepath.Join(dir, "nope") },
		"cfg is a dir":     func(c *Config) { c.ConfigPath = dir },
		"zero lb port":     func(c *Config) { c.LBPort = 0 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := cfg
			mutate(&c)
			c.Client = clientset.New(fake.NewClientset())
			if _, err := New(c); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if b, _ := os.ReadFile(cfg.ConfigPath); string(b) != "precious\n" {
		t.Fatalf("config changed to %q", b)
	}
}

func TestHealthEndpoints(t *testing.T) {
	cfg := testConfig(t, newSinkPath(t))
	h := start(t, cfg, true, node("m1", discovery.MasterLabel, "198.18.0.11"))
	srv := httptest.NewServer(h.mon.healthMux())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	h.waitReloads(1)
	poll.Must(t, 15*time.Second, "readyz ok", func() bool { code, _ := get("/readyz"); return code == 200 })
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	h.mon.health.applied(os.ErrPermission, "")
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "permission denied") {
		t.Fatalf("/readyz after an apply error = %d %q", code, body)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// runtimeAPI answers every "show servers state" with the given rows
// ("backend name address", port 6443), as a haproxy that loaded them would.
func runtimeAPI(t *testing.T, path string, rows ...string) {
	t.Helper()
	full := make([]string, len(rows))
	for i, r := range rows {
		full[i] = r + " 6443"
	}
	fakesock.NewRuntimeAPI(t, path, full...)
}

// A delivered reload that haproxy does not act on is noticed through the
// runtime API, reported by /readyz, and the reload is sent again.
func TestMonitorReloadsAgainWhenHAProxyDoesNotServe(t *testing.T) {
	sock := newSinkPath(t)
	cfg := testConfig(t, sock)
	cfg.StatsSocket = filepath.Join(filepath.Dir(sock), "stats.sock")
	cfg.VerifyTimeout = 300 * time.Millisecond
	runtimeAPI(t, cfg.StatsSocket, "masters m1 198.18.0.11")
	h := start(t, cfg, true, node("m1", discovery.MasterLabel, "198.18.0.11"))
	h.waitReloads(1) // haproxy "serves" m1: confirmed, no retry
	if _, err := h.client.CoreV1().Nodes().Create(context.Background(), node("m2", discovery.MasterLabel, "198.18.0.12"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Must(t, 15*time.Second, "a second reload after the unconfirmed one", func() bool { return h.sink.count(h.t) >= 3 })
	if _, err := h.mon.health.ready(); err == nil || !strings.Contains(err.Error(), "did not pick up") {
		t.Fatalf("ready = %v, want the unconfirmed reload reported", err)
	}
}

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o644) }

// The directory sync failing after the rename: the file is in place, so the
// reload goes out and readiness holds; the failure is counted by stage.
// (Before, the retry found identical bytes and haproxy never reloaded.)
func TestMonitorReloadsWhenDirectorySyncFails(t *testing.T) {
	cfg := testConfig(t, newSinkPath(t))
	h := start(t, cfg, true, node("m1", discovery.MasterLabel, "198.18.0.11"))
	h.waitServers("m1=198.18.0.11:6443")
	h.waitReloads(1)
	h.mon.file.SyncDir = func(string) error { return errors.New("injected fsync failure") }
	if _, err := h.client.CoreV1().Nodes().Create(context.Background(), node("m2", discovery.MasterLabel, "198.18.0.12"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitServers("m1=198.18.0.11:6443", "m2=198.18.0.12:6443")
	h.waitReloads(2)
	poll.Must(t, 15*time.Second, "ready, with the sync failure counted", func() bool {
		_, err := h.mon.health.ready()
		return err == nil && testutil.ToFloat64(h.mon.metrics.ConfigFailures.WithLabelValues("sync")) == 1
	})
}
