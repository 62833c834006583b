package redirect

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
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
