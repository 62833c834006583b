package reload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/apply"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
	"github.com/haproxy-monitor/haproxy-monitor/test/need"
)

// realHAProxy is a real haproxy loading file, with an admin runtime socket,
// and a minimal reloader on its own socket that restarts it from the file
// (the static pod's reloader hands listening sockets over; here it does
// not need to).
type realHAProxy struct {
	t                 *testing.T
	bin, dir, file    string
	admin, reloadSock string
	lbPort            int
	mu                sync.Mutex
	cmd               *exec.Cmd
	reloads           int
}

func startRealHAProxy(t *testing.T) *realHAProxy {
	t.Helper()
	bin := need.Tool(t, "haproxy")[0]
	dir, err := os.MkdirTemp("", "rtr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	h := &realHAProxy{t: t, bin: bin, dir: dir, file: filepath.Join(dir, "haproxy.cfg"),
		admin: filepath.Join(dir, "admin.sock"), reloadSock: filepath.Join(dir, "reload.sock"), lbPort: port}
	rl, err := net.Listen("unix", h.reloadSock)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := rl.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.TrimSpace(line) == "reload" {
				h.restart()
			}
		}
	}()
	t.Cleanup(func() {
		rl.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		h.stop()
	})
	return h
}

// config is a configuration for this haproxy with the given server lines.
func (h *realHAProxy) config(extra string, servers ...string) string {
	cfg := "global\n  stats socket " + h.admin + " mode 600 level admin\n  server-state-file " + filepath.Join(h.dir, "state") + "\n" +
		"defaults\n  mode tcp\n  timeout client 10s\n  timeout server 10s\n  timeout connect 1s\n  load-server-state-from-file global\n" +
		"frontend main\n  bind 127.0.0.1:" + strconv.Itoa(h.lbPort) + "\n  default_backend masters\n" + extra +
		"backend masters\n  balance roundrobin\n"
	for _, s := range servers {
		name, addr, _ := strings.Cut(s, "=")
		cfg += srv(name, addr)
	}
	return cfg
}

func (h *realHAProxy) stop() {
	if h.cmd != nil {
		_ = h.cmd.Process.Kill()
		_ = h.cmd.Wait()
		h.cmd = nil
	}
}

func (h *realHAProxy) restart() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stop()
	_ = os.Remove(h.admin)
	h.cmd = exec.Command(h.bin, "-db", "-f", h.file)
	if err := h.cmd.Start(); err != nil {
		h.t.Error(err)
		return
	}
	h.reloads++
}

func (h *realHAProxy) reloadCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reloads
}

// servers is "name=addr:port" for each server haproxy has, in its order.
func (h *realHAProxy) servers() string {
	s, err := runtimeapi.ServersState(context.Background(), h.admin, "masters")
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, x := range s {
		out = append(out, x.Name+"="+x.Addr+":"+x.Port)
	}
	return strings.Join(out, " ")
}

// Membership changes go through the runtime API of a real haproxy: no reload,
// the file follows, a removed server drains and goes after its grace period,
// an address change moves the server; anything else reloads.
func TestControllerRuntimePathRealHAProxy(t *testing.T) {
	h := startRealHAProxy(t)
	file := &apply.File{Path: h.file}
	first := h.config("", "m1=198.18.0.11:6443")
	if _, err := file.Apply(context.Background(), []byte(first)); err != nil {
		t.Fatal(err)
	}
	h.restart()
	waitFor(t, "haproxy", func() bool { return h.servers() == "m1=198.18.0.11:6443" })
	c := startController(t, Options{File: file, Socket: h.reloadSock, AdminSocket: h.admin,
		Grace: 300 * time.Millisecond, Spread: 100 * time.Millisecond})
	c.Serve(Target{Config: []byte(first)})
	expect(t, c, Serving)

	step := func(what, cfg, want string) {
		t.Helper()
		c.Serve(Target{Config: []byte(cfg), EventAt: time.Now()})
		if ev := expect(t, c, RuntimeApplied, Serving, Written); ev.Path != PathRuntime {
			t.Fatalf("%s: written %+v, want through the runtime API", what, ev)
		}
		if got := h.servers(); got != want {
			t.Fatalf("%s: haproxy has %s, want %s", what, got, want)
		}
		if b, _ := os.ReadFile(h.file); string(b) != cfg {
			t.Fatalf("%s: the file does not hold the configuration haproxy serves", what)
		}
	}
	step("add", h.config("", "m1=198.18.0.11:6443", "m2=198.18.0.12:6443", "m3=fd00::13:6443"),
		"m1=198.18.0.11:6443 m2=198.18.0.12:6443 m3=fd00::13:6443")
	step("move", h.config("", "m1=198.18.0.11:6443", "m2=198.18.0.22:6444", "m3=fd00::13:6443"),
		"m1=198.18.0.11:6443 m2=198.18.0.22:6444 m3=fd00::13:6443")
	step("remove (draining until the grace period ends)", h.config("", "m1=198.18.0.11:6443", "m3=fd00::13:6443"),
		"m1=198.18.0.11:6443 m2=198.18.0.22:6444 m3=fd00::13:6443")
	if ev := expect(t, c, Retired); ev.Server != "masters/m2" || ev.Err != nil {
		t.Fatalf("retired %+v", ev)
	}
	if got := h.servers(); got != "m1=198.18.0.11:6443 m3=fd00::13:6443" {
		t.Fatalf("after the grace period haproxy has %s", got)
	}
	if n := h.reloadCount(); n != 1 {
		t.Fatalf("%d haproxy starts, want only the first", n)
	}
	// Not a server line: a reload, with the state file written first.
	reloadCfg := h.config("listen extra\n  bind 127.0.0.1:1\n", "m1=198.18.0.11:6443", "m3=fd00::13:6443")
	c.Serve(Target{Config: []byte(reloadCfg)})
	if ev := expect(t, c, Written, Delivered, Serving); ev.Path != PathReload {
		t.Fatalf("serving %+v, want after a reload", ev)
	}
	if st, err := os.ReadFile(filepath.Join(h.dir, "state")); err != nil || !strings.Contains(string(st), " m3 fd00::13 ") {
		t.Fatalf("state file %q, %v", st, err)
	}
}

// A runtime API that is not there: the change still lands, by reload.
func TestControllerRuntimeFailureFallsBack(t *testing.T) {
	path := sockPath(t)
	l := listen(t, path)
	c := startController(t, Options{Socket: path, AdminSocket: sockPath(t), VerifyTimeout: 50 * time.Millisecond})
	file := c.opts.File
	if _, err := file.Apply(context.Background(), []byte(cfgA)); err != nil {
		t.Fatal(err)
	}
	c.Serve(Target{Config: []byte(cfgAB)})
	if ev := expect(t, c, RuntimeFailed); !errors.Is(ev.Err, os.ErrNotExist) && !strings.Contains(fmt.Sprint(ev.Err), "no such file") {
		t.Fatalf("runtime failure %v", ev.Err)
	}
	if ev := expect(t, c, Written); ev.Path != PathReload {
		t.Fatalf("written %+v", ev)
	}
	expect(t, c, Delivered)
	waitFor(t, "the reload line", func() bool { lines, _ := l.got(); return len(lines) == 1 })
}

// A configuration applied at runtime that then fails validation never stays
// on disk, and haproxy goes back to the file that is there.
func TestControllerValidationFailureAfterRuntime(t *testing.T) {
	h := startRealHAProxy(t)
	file := &apply.File{Path: h.file}
	first := h.config("", "m1=198.18.0.11:6443")
	if _, err := file.Apply(context.Background(), []byte(first)); err != nil {
		t.Fatal(err)
	}
	h.restart()
	waitFor(t, "haproxy", func() bool { return h.servers() == "m1=198.18.0.11:6443" })
	file.Validate = func(context.Context, string) error { return errors.New("refused by the test") }
	c := startController(t, Options{File: file, Socket: h.reloadSock, AdminSocket: h.admin})
	c.Serve(Target{Config: []byte(first)})
	expect(t, c, Serving)
	c.Serve(Target{Config: []byte(h.config("", "m1=198.18.0.11:6443", "m2=198.18.0.12:6443"))})
	if ev := expect(t, c, RuntimeApplied, Serving, WriteFailed); ev.Stage != apply.StageValidate {
		t.Fatalf("write failure %+v", ev)
	}
	// The reload back to the file, and the retries of the write (by the
	// reload path only: never applied at runtime again), in either order.
	var served, retried bool
	for !served || !retried {
		switch ev := next(t, c); ev.Kind {
		case Delivered:
		case Serving:
			served = ev.Path == PathReload
		case WriteFailed:
			retried = ev.Stage == apply.StageValidate
		default:
			t.Fatalf("event %v (%v)", ev.Kind, ev.Err)
		}
	}
	if got := h.servers(); got != "m1=198.18.0.11:6443" {
		t.Fatalf("haproxy has %s, want the file's m1 only", got)
	}
	if b, _ := os.ReadFile(h.file); string(b) != first {
		t.Fatal("the refused configuration is on disk")
	}
}

// The target's drains reach a real haproxy, and servers no longer named go
// back to ready.
func TestControllerDrainsRealHAProxy(t *testing.T) {
	h := startRealHAProxy(t)
	file := &apply.File{Path: h.file}
	cfg := h.config("", "m1=198.18.0.11:6443", "m2=198.18.0.12:6443")
	if _, err := file.Apply(context.Background(), []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	h.restart()
	waitFor(t, "haproxy", func() bool { return strings.Count(h.servers(), "=") == 2 })
	c := startController(t, Options{File: file, Socket: h.reloadSock, AdminSocket: h.admin})
	c.Serve(Target{Config: []byte(cfg)})
	expect(t, c, Serving)
	draining := func() string {
		s, _ := runtimeapi.ServersState(context.Background(), h.admin, "masters")
		var out []string
		for _, x := range s {
			if x.Draining() {
				out = append(out, x.Name)
			}
		}
		return strings.Join(out, ",")
	}
	c.Serve(Target{Config: []byte(cfg), Drain: []string{"m2", "not-a-server"}})
	if ev := expect(t, c, Drained); ev.Server != "m2" || !ev.On || ev.Err != nil {
		t.Fatalf("drained %+v", ev)
	}
	if got := draining(); got != "m2" {
		t.Fatalf("draining %q, want m2", got)
	}
	c.Serve(Target{Config: []byte(cfg)})
	if ev := expect(t, c, Drained); ev.Server != "m2" || ev.On {
		t.Fatalf("undrained %+v", ev)
	}
	if got := draining(); got != "" {
		t.Fatalf("draining %q, want none", got)
	}
}
