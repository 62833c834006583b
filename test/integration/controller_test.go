package integration

import (
	"context"
	"errors"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/apply"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxyctl"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/render"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
)

// The reload controller alone against the haproxy container of the
// shipped manifest (its reloader, the shipped template with this
// instance's paths): the suites' one real-haproxy fixture. Servers are on
// loopback, where nothing listens on 6443 (their checks fail; what is
// compared is the servers haproxy has, not their health).

// ctrlSite is one haproxy and a controller feeding it.
type ctrlSite struct {
	t    *testing.T
	hap  *harness.HAProxy
	tmpl *render.Renderer
	file *apply.File
	c    *haproxyctl.Controller
}

func newCtrlSite(t *testing.T) *ctrlSite {
	t.Helper()
	dir, err := os.MkdirTemp("", "hapm-ctrl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	hap, err := harness.PrepareHAProxy(dir)
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(hap.TemplatePath)
	if err != nil {
		t.Fatal(err)
	}
	r, err := render.Parse(hap.TemplatePath, string(text))
	if err != nil {
		t.Fatal(err)
	}
	return &ctrlSite{t: t, hap: hap, tmpl: r, file: &apply.File{Path: hap.CfgPath}}
}

// config renders the instance's template with servers "name=addr:port",
// and extra appended (a section outside the server lines).
func (s *ctrlSite) config(extra string, servers ...string) string {
	s.t.Helper()
	cfg := lbconfig.LBConfig{ApiPort: 6443, LbPort: uint16(s.hap.LBPort), StatPort: uint16(s.hap.StatPort)}
	for _, sv := range servers {
		name, hostport, _ := strings.Cut(sv, "=")
		i := strings.LastIndexByte(hostport, ':')
		port, _ := strconv.Atoi(hostport[i+1:])
		cfg.Backends = append(cfg.Backends, lbconfig.Backend{Host: name, Address: strings.Trim(hostport[:i], "[]"), Port: uint16(port)})
	}
	out, err := s.tmpl.Render(lbconfig.TemplateData{LBConfig: cfg})
	if err != nil {
		s.t.Fatal(err)
	}
	return string(out) + extra
}

// start writes cfg, starts the haproxy container with it and a controller
// with opts (its file and sockets filled in).
func (s *ctrlSite) start(cfg string, opts haproxyctl.Options) {
	s.t.Helper()
	// Written as it is, without the controller's file's validation.
	if _, err := (&apply.File{Path: s.file.Path}).Apply(context.Background(), []byte(cfg)); err != nil {
		s.t.Fatal(err)
	}
	if err := s.hap.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(s.hap.Stop)
	want := strings.Join(serverList(cfg), " ")
	poll.Must(s.t, 10*time.Second, "haproxy serving "+want, func() bool { return s.servers() == want })
	opts.File, opts.Socket, opts.StatsSocket, opts.AdminSocket = s.file, s.hap.MasterSock, s.hap.UserSock, s.hap.AdminSock
	opts.MinBackoff, opts.MaxBackoff, opts.RetryMin, opts.RetryMax = 10*time.Millisecond, 40*time.Millisecond, 10*time.Millisecond, 40*time.Millisecond
	s.c = haproxyctl.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.c.Run(ctx); close(done) }()
	s.t.Cleanup(func() { cancel(); <-done })
}

// servers is what haproxy runs, "name=addr:port" sorted by name.
func (s *ctrlSite) servers() string {
	all, err := runtimeapi.ServersState(context.Background(), s.hap.UserSock, "masters")
	if err != nil {
		return ""
	}
	var out []string
	for _, x := range all {
		addr := x.Addr
		if strings.Contains(addr, ":") {
			addr = "[" + addr + "]"
		}
		out = append(out, x.Name+"="+addr+":"+x.Port)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// serverList is a configuration's servers as servers() shows them.
func serverList(cfg string) []string {
	var out []string
	for _, line := range strings.Split(cfg, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "server" {
			out = append(out, f[1]+"="+f[2])
		}
	}
	sort.Strings(out)
	return out
}

// next is the controller's next event other than a health sample, the
// state file's write or a file found current.
func (s *ctrlSite) next() haproxyctl.Event {
	s.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-s.c.Events():
			if ev.Kind != haproxyctl.Sampled && ev.Kind != haproxyctl.StateFileWritten && ev.Kind != haproxyctl.Current {
				return ev
			}
		case <-timeout:
			s.t.Fatal("no event within 10 s")
		}
	}
}

// expect takes the next events, which must be kinds in order, and returns
// the last.
func (s *ctrlSite) expect(kinds ...haproxyctl.Kind) haproxyctl.Event {
	s.t.Helper()
	var ev haproxyctl.Event
	for _, k := range kinds {
		if ev = s.next(); ev.Kind != k {
			s.t.Fatalf("event %v (%v %s), want %v", ev.Kind, ev.Err, ev.Reason, k)
		}
	}
	return ev
}

// Membership changes go through the runtime API of a real haproxy: no
// reload, the file follows, a removed server drains and goes after its
// grace period, an address change moves the server; anything else reloads,
// with the server-state file written first.
func TestControllerRuntimePath(t *testing.T) {
	s := newCtrlSite(t)
	first := s.config("", "m1=127.0.0.11:6443")
	s.start(first, haproxyctl.Options{Grace: 300 * time.Millisecond, Spread: 100 * time.Millisecond})
	s.c.Serve(haproxyctl.Target{Config: []byte(first)})
	s.expect(haproxyctl.Serving)
	reloads := s.hap.ReloadsReceived()

	step := func(what, cfg, want string) {
		t.Helper()
		s.c.Serve(haproxyctl.Target{Config: []byte(cfg), EventAt: time.Now()})
		if ev := s.expect(haproxyctl.RuntimeApplied, haproxyctl.Serving, haproxyctl.Written); ev.Path != haproxyctl.PathRuntime {
			t.Fatalf("%s: written %+v, want through the runtime API", what, ev)
		}
		if got := s.servers(); got != want {
			t.Fatalf("%s: haproxy has %s, want %s", what, got, want)
		}
		if b, _ := os.ReadFile(s.hap.CfgPath); string(b) != cfg {
			t.Fatalf("%s: the file does not hold the configuration haproxy serves", what)
		}
	}
	step("add", s.config("", "m1=127.0.0.11:6443", "m2=127.0.0.12:6443", "m3=[::1]:6443"),
		"m1=127.0.0.11:6443 m2=127.0.0.12:6443 m3=[::1]:6443")
	step("move", s.config("", "m1=127.0.0.11:6443", "m2=127.0.0.22:6444", "m3=[::1]:6443"),
		"m1=127.0.0.11:6443 m2=127.0.0.22:6444 m3=[::1]:6443")
	step("remove (draining until the grace period ends)", s.config("", "m1=127.0.0.11:6443", "m3=[::1]:6443"),
		"m1=127.0.0.11:6443 m2=127.0.0.22:6444 m3=[::1]:6443")
	if ev := s.expect(haproxyctl.Retired); ev.Server != "masters/m2" || ev.Err != nil {
		t.Fatalf("retired %+v", ev)
	}
	if got := s.servers(); got != "m1=127.0.0.11:6443 m3=[::1]:6443" {
		t.Fatalf("after the grace period haproxy has %s", got)
	}
	if n := s.hap.ReloadsReceived() - reloads; n != 0 {
		t.Fatalf("%d reloads for membership changes, want none", n)
	}
	// Not a server line: a reload, with the state file written first.
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	reloadCfg := s.config("listen extra\n  bind 127.0.0.1:"+strconv.Itoa(port)+"\n", "m1=127.0.0.11:6443", "m3=[::1]:6443")
	s.c.Serve(haproxyctl.Target{Config: []byte(reloadCfg)})
	if ev := s.expect(haproxyctl.Written, haproxyctl.Delivered, haproxyctl.Serving); ev.Path != haproxyctl.PathReload {
		t.Fatalf("serving %+v, want after a reload", ev)
	}
	if st, err := os.ReadFile(s.hap.StateFile); err != nil || !strings.Contains(string(st), " m3 ::1 ") {
		t.Fatalf("state file %q, %v", st, err)
	}
}

// A configuration applied at runtime that then fails validation never
// stays on disk, and haproxy goes back to the file that is there.
func TestControllerValidationFailureAfterRuntime(t *testing.T) {
	s := newCtrlSite(t)
	first := s.config("", "m1=127.0.0.11:6443")
	s.file.Validate = func(context.Context, string) error { return errors.New("refused by the test") }
	s.start(first, haproxyctl.Options{})
	s.c.Serve(haproxyctl.Target{Config: []byte(first)})
	s.expect(haproxyctl.Serving)
	s.c.Serve(haproxyctl.Target{Config: []byte(s.config("", "m1=127.0.0.11:6443", "m2=127.0.0.12:6443"))})
	if ev := s.expect(haproxyctl.RuntimeApplied, haproxyctl.Serving, haproxyctl.WriteFailed); ev.Stage != apply.StageValidate {
		t.Fatalf("write failure %+v", ev)
	}
	// The reload back to the file, and the retries of the write (by the
	// reload path only: never applied at runtime again), in either order.
	var served, retried bool
	for !served || !retried {
		switch ev := s.next(); ev.Kind {
		case haproxyctl.Delivered:
		case haproxyctl.Serving:
			served = ev.Path == haproxyctl.PathReload
		case haproxyctl.WriteFailed:
			retried = ev.Stage == apply.StageValidate
		default:
			t.Fatalf("event %v (%v)", ev.Kind, ev.Err)
		}
	}
	if got := s.servers(); got != "m1=127.0.0.11:6443" {
		t.Fatalf("haproxy has %s, want the file's m1 only", got)
	}
	if b, _ := os.ReadFile(s.hap.CfgPath); string(b) != first {
		t.Fatal("the refused configuration is on disk")
	}
}

// The target's drains reach a real haproxy, and servers no longer named go
// back to ready.
func TestControllerDrains(t *testing.T) {
	s := newCtrlSite(t)
	cfg := s.config("", "m1=127.0.0.11:6443", "m2=127.0.0.12:6443")
	s.start(cfg, haproxyctl.Options{})
	s.c.Serve(haproxyctl.Target{Config: []byte(cfg)})
	s.expect(haproxyctl.Serving)
	draining := func() string {
		all, _ := runtimeapi.ServersState(context.Background(), s.hap.UserSock, "masters")
		var out []string
		for _, x := range all {
			if x.Draining() {
				out = append(out, x.Name)
			}
		}
		return strings.Join(out, ",")
	}
	s.c.Serve(haproxyctl.Target{Config: []byte(cfg), Drain: []string{"m2", "not-a-server"}})
	if ev := s.expect(haproxyctl.Drained); ev.Server != "m2" || !ev.On || ev.Err != nil {
		t.Fatalf("drained %+v", ev)
	}
	if got := draining(); got != "m2" {
		t.Fatalf("draining %q, want m2", got)
	}
	s.c.Serve(haproxyctl.Target{Config: []byte(cfg)})
	if ev := s.expect(haproxyctl.Drained); ev.Server != "m2" || ev.On {
		t.Fatalf("undrained %+v", ev)
	}
	if got := draining(); got != "" {
		t.Fatalf("draining %q, want none", got)
	}
}
