package redirect

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// rulesFake fails Ensure while broken is set.
type rulesFake struct {
	broken  bool
	ensured int
}

func (r *rulesFake) Ensure() error {
	r.ensured++
	if r.broken {
		return errors.New("netlink: operation not permitted")
	}
	return nil
}

func (r *rulesFake) Remove() error { return nil }

// What the switch reports is the rules' real state: a failed ensure is not
// "installed", however good the probes are, and it is tried again at the
// next good observation.
func TestSwitchReportsRealState(t *testing.T) {
	rules := &rulesFake{broken: true}
	var reports []bool
	log := logrus.New()
	log.SetOutput(io.Discard)
	sw := NewSwitch(SwitchOptions{Rules: rules, OnAfter: 1, OffAfter: 1, Interval: time.Second, Log: log,
		Installed: func(on bool) { reports = append(reports, on) }})
	now := time.Unix(1000, 0)
	for range 3 {
		now = now.Add(time.Second)
		sw.Observe(now, nil, false, time.Time{})
	}
	if rules.ensured != 3 || len(reports) != 0 || sw.Installed() {
		t.Fatalf("%d ensures, reported %v, installed %v while every ensure failed", rules.ensured, reports, sw.Installed())
	}
	rules.broken = false
	sw.Observe(now.Add(time.Second), nil, false, time.Time{})
	if err := sw.Remove(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(reports) != "[true false]" {
		t.Fatalf("reports %v, want [true false]", reports)
	}
}

// leftovers are rules a previous run left: present or not, and a hold to
// release; every call is recorded.
type leftovers struct {
	present bool
	calls   []string
}

func (l *leftovers) Ensure() error          { l.calls = append(l.calls, "ensure"); return nil }
func (l *leftovers) Remove() error          { l.calls = append(l.calls, "remove"); return nil }
func (l *leftovers) Present() (bool, error) { return l.present, nil }
func (l *leftovers) Hold() error            { l.calls = append(l.calls, "hold"); return nil }
func (l *leftovers) Release() error         { l.calls = append(l.calls, "release"); return nil }
func warnings(h *logtest.Hook) (n int) {
	for _, e := range h.AllEntries() {
		if e.Level <= logrus.WarnLevel {
			n++
		}
	}
	return n
}

// A restarted monitor keeps complete rules while haproxy serves (releasing
// a hold its predecessor left) and removes them otherwise; neither warns
// when the rules do as asked.
func TestSwitchTakeOver(t *testing.T) {
	for _, tc := range []struct {
		present, serving, kept bool
		calls                  string
	}{
		{true, true, true, "[release]"},
		{true, false, false, "[remove]"},
		{false, true, false, "[remove]"},
	} {
		log, hook := logtest.NewNullLogger()
		rules := &leftovers{present: tc.present}
		sw := NewSwitch(SwitchOptions{Rules: rules, OnAfter: 3, OffAfter: 11, Interval: time.Second, Log: log})
		kept := sw.TakeOver(time.Unix(1000, 0), tc.serving)
		if kept != tc.kept || sw.Installed() != tc.kept || sw.Active() != tc.kept || fmt.Sprint(rules.calls) != tc.calls || warnings(hook) != 0 {
			t.Errorf("present %v serving %v: kept %v installed %v active %v, calls %v, %d warnings; want kept %v, calls %s",
				tc.present, tc.serving, kept, sw.Installed(), sw.Active(), rules.calls, warnings(hook), tc.kept, tc.calls)
		}
	}
}

// Observations closer together than nine tenths of the interval count once;
// at nine tenths they count.
func TestSwitchCountsOnePerInterval(t *testing.T) {
	log, _ := logtest.NewNullLogger()
	rules := &leftovers{}
	sw := NewSwitch(SwitchOptions{Rules: rules, OnAfter: 2, OffAfter: 2, Interval: time.Second, Log: log})
	t0 := time.Unix(1000, 0)
	sw.Observe(t0, nil, false, time.Time{})
	sw.Observe(t0.Add(899*time.Millisecond), nil, false, time.Time{})
	if sw.Active() {
		t.Fatal("two observations 899 ms apart counted twice")
	}
	sw.Observe(t0.Add(900*time.Millisecond), nil, false, time.Time{})
	if !sw.Active() || !sw.Installed() {
		t.Fatal("an observation 900 ms after the last did not count")
	}
}

// haproxy found gone takes the rules out at once, and the log says how long
// after haproxy's connection closed, when that was under a second ago.
func TestSwitchGoneLogsAfterClose(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		closedAgo time.Duration
		field     bool
	}{{5 * time.Millisecond, true}, {999 * time.Millisecond, true}, {time.Second, false}, {-1, false}} {
		log, hook := logtest.NewNullLogger()
		rules := &leftovers{}
		now := t0
		sw := NewSwitch(SwitchOptions{Rules: rules, OnAfter: 1, OffAfter: 11, Interval: time.Second, Log: log,
			Now: func() time.Time { return now }})
		sw.Observe(now, nil, false, time.Time{})
		now = now.Add(100 * time.Millisecond) // within the interval: gone still counts
		closed := time.Time{}
		if tc.closedAgo >= 0 {
			closed = now.Add(-tc.closedAgo)
		}
		sw.Observe(now, errors.New("connection refused"), true, closed)
		last := hook.LastEntry()
		_, has := last.Data["after_close"]
		if sw.Installed() || last.Level != logrus.WarnLevel || has != tc.field {
			t.Errorf("closed %v ago: installed %v, last log %q %v; after_close %v, want %v",
				tc.closedAgo, sw.Installed(), last.Message, last.Data, has, tc.field)
		}
		if has && last.Data["after_close"] != tc.closedAgo {
			t.Errorf("after_close %v, want %v", last.Data["after_close"], tc.closedAgo)
		}
	}
}
