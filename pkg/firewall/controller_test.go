package firewall

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
)

// rulesFake fails Ensure while broken is set.
type rulesFake struct {
	mu      sync.Mutex
	broken  bool
	ensured int
}

func (r *rulesFake) Ensure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ensured++
	if r.broken {
		return errors.New("netlink: operation not permitted")
	}
	return nil
}

func (r *rulesFake) Remove() error { return nil }

// What the controller reports is the rules' real state: a failed ensure is
// not "installed", however good the probes are.
func TestControllerReportsRealState(t *testing.T) {
	rules := &rulesFake{broken: true}
	var mu sync.Mutex
	var reports []bool
	log := logrus.New()
	log.SetOutput(io.Discard)
	c := &Controller{Rules: rules, Interval: 5 * time.Millisecond, Hysteresis: Hysteresis{OnAfter: 1, OffAfter: 1}, Log: log,
		Probe: func(context.Context) error { return nil },
		Installed: func(on bool) {
			mu.Lock()
			reports = append(reports, on)
			mu.Unlock()
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	wait := func(what string, cond func() bool) {
		t.Helper()
		if !poll.Until(5*time.Second, time.Millisecond, cond) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	wait("ensure attempts", func() bool { rules.mu.Lock(); defer rules.mu.Unlock(); return rules.ensured >= 3 })
	mu.Lock()
	if len(reports) != 0 {
		t.Fatalf("reported %v while every ensure failed", reports)
	}
	mu.Unlock()
	rules.mu.Lock()
	rules.broken = false
	rules.mu.Unlock()
	wait("installed", func() bool { mu.Lock(); defer mu.Unlock(); return len(reports) == 1 && reports[0] })
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 2 || reports[1] {
		t.Fatalf("reports %v, want [true false] after shutdown", reports)
	}
}

// The original probes haproxy with an HTTP client without a timeout: a hung
// haproxy stalls its loop for good. Ours gives up at the step's deadline.
func TestDifferenceProbeHasTimeout(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	defer srv.Close()
	defer close(hang) // before Close, which waits for the handler
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := HTTPProbe(srv.URL + "/haproxy_ready")(ctx); err == nil {
		t.Fatal("a hung haproxy probed healthy")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the probe took %v with a 100 ms deadline", d)
	}
}

type trackFake struct {
	mu  sync.Mutex
	got []keepalived.Level
}

func (f *trackFake) Set(l keepalived.Level) error {
	f.mu.Lock()
	f.got = append(f.got, l)
	f.mu.Unlock()
	return nil
}

func (f *trackFake) values() []keepalived.Level {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]keepalived.Level(nil), f.got...)
}

// last is the last level written (not holdRules' entries), or -1.
func (f *trackFake) last() keepalived.Level {
	v := f.values()
	for i := len(v) - 1; i >= 0; i-- {
		if v[i] < held {
			return v[i]
		}
	}
	return -1
}

// holdRules is rulesFake that can hold, and logs Hold and Remove into the
// same log as its track file.
type holdRules struct {
	rulesFake
	log *trackFake
}

func (r *holdRules) Hold() error    { return r.log.Set(held) }
func (r *holdRules) Release() error { return r.log.Set(released) }
func (r *holdRules) Remove() error  { return r.log.Set(removed) }

// Entries holdRules writes beside the levels.
const (
	held keepalived.Level = 1000 + iota
	removed
	released
)

// haproxy gone (nothing listens): the redirect comes out and keepalived is
// told at the next probe, without waiting out the 11-probe hysteresis; a
// 503 keeps the hysteresis. While haproxy serves, keepalived hears Holding
// once the VIP is on this node, Serving before. While haproxy does not
// serve, it hears LocalOnly if the local apiserver answers, Fault if not. On shutdown new
// connections are held, the node faults, and the rules come out only after
// the VIP has left and Settle has passed.
func TestControllerHaproxyGoneAndHandOver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var code atomic.Int64
	code.Store(200)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(code.Load())) })}
	go func() { _ = srv.Serve(ln) }()
	track := &trackFake{}
	rules := &holdRules{log: track}
	var holds, localOK atomic.Bool
	localOK.Store(true)
	var installed atomic.Bool
	log := logrus.New()
	log.SetOutput(io.Discard)
	c := &Controller{Rules: rules, Probe: HTTPProbe("http://" + addr + "/haproxy_ready"), Interval: 100 * time.Millisecond,
		Hysteresis: Hysteresis{OnAfter: 1, OffAfter: 11}, Log: log, Installed: func(on bool) { installed.Store(on) },
		Track: track, HoldsVIP: holds.Load, HandOver: 5 * time.Second, Settle: 300 * time.Millisecond,
		LocalProbe: func(context.Context) error {
			if localOK.Load() {
				return nil
			}
			return errors.New("local apiserver: 500")
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	wait := func(what string, cond func() bool) {
		t.Helper()
		if !poll.Until(5*time.Second, time.Millisecond, cond) {
			t.Fatalf("timed out waiting for %s (track %v)", what, track.values())
		}
	}
	says := func(l keepalived.Level) func() bool { return func() bool { return track.last() == l } }
	wait("installed and serving", func() bool { return installed.Load() && track.last() == keepalived.Serving })
	holds.Store(true) // keepalived made this node the holder
	wait("holding", says(keepalived.Holding))

	code.Store(503) // no backend: the hysteresis holds the redirect
	wait("keepalived told the local apiserver serves", says(keepalived.LocalOnly))
	localOK.Store(false)
	wait("keepalived told nothing serves", says(keepalived.Fault))
	if !installed.Load() {
		t.Fatal("a 503 took the redirect out before 11 bad probes")
	}
	code.Store(200)
	wait("serving again", says(keepalived.Holding))

	localOK.Store(true)
	srv.Close() // haproxy gone: refused
	start := time.Now()
	wait("the redirect out", func() bool { return !installed.Load() && track.last() == keepalived.LocalOnly })
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("took %v with nothing listening; 11 probes of 100 ms would be 1.1 s", d)
	}
	localOK.Store(false)
	wait("fault once the local apiserver fails too", says(keepalived.Fault))
	localOK.Store(true)
	wait("local only again", says(keepalived.LocalOnly))

	before := len(track.values())
	cancel()
	select {
	case <-done:
		t.Fatal("stopped before the VIP left")
	case <-time.After(200 * time.Millisecond):
	}
	holds.Store(false)
	left := time.Now()
	<-done
	if d := time.Since(left); d < c.Settle {
		t.Fatalf("rules out %v after the VIP left; want at least Settle (%v)", d, c.Settle)
	}
	got := track.values()[before:]
	want := []keepalived.Level{held, keepalived.Fault, removed}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("shutdown did %v; want hold, fault, remove (%v)", got, want)
	}
}

// keepalived stopped together with the monitor (a node shutting down) may
// have removed the VIP before the monitor hears SIGTERM: a monitor that last
// said Holding still holds new connections, and for Settle, since clients
// that have not heard of the next holder still send to this node.
func TestShutdownHoldsWhenTheVIPJustLeft(t *testing.T) {
	track := &trackFake{}
	rules := &holdRules{log: track}
	var vipHere, block atomic.Bool
	vipHere.Store(true)
	log := logrus.New()
	log.SetOutput(io.Discard)
	c := &Controller{Rules: rules, Interval: 10 * time.Second, ProbeInterval: 10 * time.Millisecond,
		Hysteresis: Hysteresis{OnAfter: 1, OffAfter: 11}, Log: log, Track: track,
		HoldsVIP: vipHere.Load, HandOver: 5 * time.Second, Settle: 200 * time.Millisecond,
		Probe: func(ctx context.Context) error {
			if block.Load() { // no probe ends before the controller stops
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	if !poll.Until(5*time.Second, time.Millisecond, func() bool { return track.last() == keepalived.Holding }) {
		t.Fatalf("never said Holding: %v", track.values())
	}
	before := len(track.values())
	block.Store(true)
	vipHere.Store(false) // keepalived, stopping, took the VIP away
	start := time.Now()
	cancel()
	<-done
	got := track.values()[before:]
	want := []keepalived.Level{held, keepalived.Fault, removed}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("shutdown did %v; want hold, fault, remove (%v)", got, want)
	}
	if d := time.Since(start); d < c.Settle {
		t.Fatalf("rules out after %v; want the hold kept for Settle (%v)", d, c.Settle)
	}
}

// haproxy's death is an event: with a held connection, the redirect comes
// out when the process goes, without waiting for a probe (here the probes
// are an hour apart, so nothing else could take it out).
func TestControllerNoticesHAProxyDeathAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var accepted atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				accepted.Add(1)
			}
		}}
	go func() { _ = srv.Serve(ln) }()
	var installed atomic.Bool
	var watches atomic.Int64
	log := logrus.New()
	log.SetOutput(io.Discard)
	hold, err := HoldConnection("http://"+addr+"/haproxy_ready", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := &Controller{Rules: &rulesFake{}, Probe: HTTPProbe("http://" + addr + "/haproxy_ready"),
		Interval: time.Second, ProbeInterval: time.Hour, Hysteresis: Hysteresis{OnAfter: 1, OffAfter: 11}, Log: log,
		Installed: func(on bool) { installed.Store(on) },
		Watch: func(ctx context.Context) error {
			watches.Add(1)
			return hold(ctx)
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// One probe's connection, then the held one.
	if !poll.Until(5*time.Second, time.Millisecond, func() bool { return installed.Load() && accepted.Load() >= 2 }) {
		t.Fatalf("installed %v, %d connections accepted", installed.Load(), accepted.Load())
	}
	_ = srv.Close() // haproxy dies: its listener and every connection close
	if !poll.Until(5*time.Second, time.Millisecond, func() bool { return !installed.Load() }) {
		t.Fatal("the redirect stayed in after haproxy died")
	}
	if n := watches.Load(); n != 1 {
		t.Fatalf("%d watches started; want 1 (none after the close without a good probe)", n)
	}
}

// A held connection asks once, then ends with its context, or when the
// peer closes it.
func TestHoldConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	// accept takes the next connection and answers its request.
	accept := func() net.Conn {
		t.Helper()
		c := <-conns
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil || req.URL.Path != "/haproxy_ready" {
			t.Fatalf("request %v: %v", req, err)
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return c
	}
	hold, err := HoldConnection("http://"+ln.Addr().String()+"/haproxy_ready", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan error, 1)
	go func() { ended <- hold(ctx) }()
	accept()
	select {
	case err := <-ended:
		t.Fatalf("returned while the connection was open: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-ended; err == nil {
		t.Fatal("no error after the context ended")
	}
	go func() { ended <- hold(context.Background()) }()
	peer := accept()
	_ = peer.Close() // haproxy's soft stop, its keep-alive timeout, or its death
	if err := <-ended; !errors.Is(err, io.EOF) {
		t.Fatalf("got %v after the peer closed; want EOF", err)
	}
	closedPort, err := HoldConnection("http://127.0.0.1:1/", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := closedPort(context.Background()); err == nil {
		t.Fatal("no error dialing a closed port")
	}
	if _, err := HoldConnection("https://127.0.0.1:9444/haproxy_ready", time.Second); err == nil {
		t.Fatal("an https probe URL accepted: the held connection speaks plain HTTP")
	}
}

func TestProbeAddr(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:9444/haproxy_ready": "127.0.0.1:9444",
		"http://[::1]:9444/haproxy_ready":     "[::1]:9444",
		"http://localhost/haproxy_ready":      "localhost:80",
		"https://localhost/x":                 "localhost:443",
		"/haproxy_ready":                      "",
	} {
		got, err := ProbeAddr(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("ProbeAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
