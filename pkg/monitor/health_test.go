package monitor

import (
	"errors"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery"
	"strings"
	"testing"
	"time"
)

// /healthz fails once the control loop has missed three check intervals
// (and a second's slack), and not before.
func TestHealthyAfterMissedIntervals(t *testing.T) {
	const interval = 6 * time.Second
	beat := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	s := &health{lastBeat: beat}
	for _, tc := range []struct {
		after time.Duration
		ok    bool
	}{
		{0, true},
		{interval, true},
		{3*interval + time.Second, true},
		{3*interval + time.Second + time.Millisecond, false},
		{time.Hour, false},
	} {
		err := s.healthy(beat.Add(tc.after), interval)
		if (err == nil) != tc.ok {
			t.Errorf("%v after the last beat: %v, want healthy %v", tc.after, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "control loop has not run for") {
			t.Errorf("%v after the last beat: %q does not say the loop is stuck", tc.after, err)
		}
	}
}

// /readyz from one reading of its inputs: each case is one rule.
func TestReadiness(t *testing.T) {
	failing := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	good := readinessInputs{synced: true, onDisk: true, backends: 3}
	with := func(f func(*readinessInputs)) readinessInputs { in := good; f(&in); return in }
	for _, tc := range []struct {
		name string
		in   readinessInputs
		note string
		err  string
	}{
		{"ready", good, "", ""},
		{"template refused", with(func(in *readinessInputs) { in.templateErr = errors.New("bad") }), "", "template cannot be used"},
		{"nothing synced, nothing on disk", with(func(in *readinessInputs) { in.synced, in.onDisk = false, false }), "", "API caches not synced yet and no configuration on disk"},
		{"not synced, a file on disk", with(func(in *readinessInputs) { in.synced = false }), "last-known-good configuration in use: API caches not synced yet", ""},
		{"write failed", with(func(in *readinessInputs) { in.applyErr = errors.New("read-only") }), "", "configuration not applied: read-only"},
		{"reload undelivered", with(func(in *readinessInputs) { in.reloadErr, in.reloadFailed = errors.New("refused"), failing }), "", "reload not delivered since 2026-12-03T10:00:00Z: refused"},
		{"haproxy not serving it", with(func(in *readinessInputs) { in.verifyErr = errors.New("haproxy did not pick up") }), "", "haproxy did not pick up"},
		{"API unreachable", with(func(in *readinessInputs) { in.apiDown = "dial tcp: refused" }), "last-known-good configuration in use: API unreachable: dial tcp: refused", ""},
		{"no backend, kept", with(func(in *readinessInputs) { in.backends, in.keptReason = 0, "kept last configuration: no backends" }), "last-known-good configuration in use: kept last configuration: no backends", ""},
		{"no backend", with(func(in *readinessInputs) { in.backends = 0 }), "", "no control-plane backend"},
		{"API failing", with(func(in *readinessInputs) { in.failingSince, in.failingLast = failing, "401 Unauthorized" }),
			"last-known-good configuration in use: API requests failing since 2026-12-03T10:00:00Z (last: 401 Unauthorized)", ""},
		{"degraded", with(func(in *readinessInputs) { in.disc.Mode = discovery.ModeDegraded }), "degraded discovery", ""},
	} {
		note, err := readiness(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %q, %v; want an error with %q", tc.name, note, err, tc.err)
			}
			continue
		}
		if err != nil || !strings.Contains(note, tc.note) || (tc.note == "" && note != "") {
			t.Errorf("%s: %q, %v; want the note %q", tc.name, note, err, tc.note)
		}
	}
}

// The reason an API is unreachable is read once: an answer that changes
// between two reads cannot give "API unreachable: " with no reason.
func TestReadyReadsTheAPIOnce(t *testing.T) {
	s := newHealth()
	s.synced, s.onDisk, s.backends = true, true, 3
	calls := 0
	s.apiDown = func() string {
		calls++
		if calls == 1 {
			return "dial tcp: refused"
		}
		return ""
	}
	note, err := s.ready()
	if err != nil || note != "last-known-good configuration in use: API unreachable: dial tcp: refused" || calls != 1 {
		t.Fatalf("%q, %v after %d reads", note, err, calls)
	}
}
