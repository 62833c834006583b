package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
	"github.com/haproxy-monitor/haproxy-monitor/test/load"
	"github.com/haproxy-monitor/haproxy-monitor/test/need"
)

// TestDemo runs what "make demo" runs and checks what it shows: every
// membership change through the runtime API without a reload, the removed
// server drained at once and deleted after its grace, the template change
// reloaded, and no request lost through any of it.
func TestDemo(t *testing.T) {
	if err := harness.Require("etcd", "kube-apiserver", "haproxy", "socat", "unshare"); err != nil {
		need.Missing(t, "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out strings.Builder
	r, err := Run(ctx, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Step{}
	for _, s := range r.Steps {
		byName[s.Name] = s
	}
	for _, name := range []string{"master-3 added", "master-2 moved", "master-1 removed (drained, then deleted)"} {
		s, ok := byName[name]
		if !ok {
			t.Fatalf("no step %q in %v", name, r.Steps)
		}
		if s.Reloads != 0 {
			t.Errorf("%s: %d reloads, want the runtime API's 0", name, s.Reloads)
		}
	}
	for _, name := range []string{"initial configuration (haproxy started from it)", "template changed"} {
		if s := byName[name]; s.Reloads < 1 {
			t.Errorf("%s: %d reloads, want one", name, s.Reloads)
		}
	}
	// Drain comes with the change (well under a second); the deletion only
	// after the grace, and its sessions' spread, not long after.
	if r.Drained > 2*time.Second {
		t.Errorf("master-1 in drain only %v after its Node's deletion", r.Drained)
	}
	if r.Removed < removalGrace || r.Removed > removalGrace+removalSpread+5*time.Second {
		t.Errorf("master-1 deleted %v after its Node's deletion, want after the grace %v (+ spread %v)", r.Removed, removalGrace, removalSpread)
	}
	// Run refuses any failure but those in flight on the moved server.
	if r.Load.Sent < 50 || r.Load.Failed > 2 {
		t.Errorf("load during the changes: %d sent, %d failed: %v", r.Load.Sent, r.Load.Failed, r.Load.Errors)
	}
}

// Only failures timed within the move count as cut by it.
func TestCutByMove(t *testing.T) {
	r := load.Result{Failed: 3, Errors: []string{
		`at 2.149s: Get "https://127.0.0.1:1/version": EOF`,
		`at 2.300s: Get "https://127.0.0.1:1/version": EOF`,
		`at 5.000s: Get "https://127.0.0.1:1/version": EOF`,
		`no time here`,
	}}
	if n := cutByMove(r, 2*time.Second, 2500*time.Millisecond); n != 2 {
		t.Fatalf("cut by a move from 2 s to 2.5 s: %d, want 2", n)
	}
	if n := cutByMove(r, 0, time.Second); n != 0 {
		t.Fatalf("cut by a move before any failure: %d, want 0", n)
	}
}
