package firewall

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
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

// eventually polls cond every millisecond for up to 5 s.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

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
		if !eventually(cond) {
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
	got []bool
}

func (f *trackFake) Set(serving bool) error {
	f.mu.Lock()
	f.got = append(f.got, serving)
	f.mu.Unlock()
	return nil
}

func (f *trackFake) values() []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bool(nil), f.got...)
}

// haproxy gone (nothing listens): the redirect comes out and keepalived is
// told at the next probe, without waiting out the 11-probe hysteresis; a
// 503 keeps the hysteresis. On shutdown the node says it no longer serves
// and waits for the VIP to leave before the rules come out.
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
	rules := &rulesFake{}
	track := &trackFake{}
	var holds atomic.Bool
	holds.Store(true)
	var installed atomic.Bool
	log := logrus.New()
	log.SetOutput(io.Discard)
	c := &Controller{Rules: rules, Probe: HTTPProbe("http://" + addr + "/haproxy_ready"), Interval: 100 * time.Millisecond,
		Hysteresis: Hysteresis{OnAfter: 1, OffAfter: 11}, Log: log, Installed: func(on bool) { installed.Store(on) },
		Track: track, HoldsVIP: holds.Load, HandOver: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	wait := func(what string, cond func() bool) {
		t.Helper()
		if !eventually(cond) {
			t.Fatalf("timed out waiting for %s (track %v)", what, track.values())
		}
	}
	last := func() bool { v := track.values(); return len(v) > 0 && v[len(v)-1] }
	wait("installed and serving", func() bool { return installed.Load() && last() })

	code.Store(503) // no backend: the hysteresis holds the redirect
	wait("keepalived told", func() bool { return !last() })
	if !installed.Load() {
		t.Fatal("a 503 took the redirect out before 11 bad probes")
	}
	code.Store(200)
	wait("serving again", last)

	srv.Close() // haproxy gone: refused
	start := time.Now()
	wait("the redirect out", func() bool { return !installed.Load() && !last() })
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("took %v with nothing listening; 11 probes of 100 ms would be 1.1 s", d)
	}

	cancel()
	select {
	case <-done:
		t.Fatal("stopped before the VIP left")
	case <-time.After(200 * time.Millisecond):
	}
	holds.Store(false)
	<-done
	if v := track.values(); v[len(v)-1] {
		t.Fatal("a stopping monitor left the track file saying it serves")
	}
}
