package firewall

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
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
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
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
