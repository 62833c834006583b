package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxycfg"
	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
)

// cfgs reads every master's haproxy.cfg.
func (l *lab) cfgs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range l.masters {
		b, err := os.ReadFile(m.hap.CfgPath)
		if err != nil {
			t.Fatal(err)
		}
		out[m.name] = string(b)
	}
	return out
}

// cfgServes reports whether a rendered haproxy.cfg names exactly the given
// servers.
func cfgServes(cfg string, names ...string) bool {
	var got []string
	for _, s := range haproxycfg.Servers([]byte(cfg)) {
		got = append(got, s.Name)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(names))
	return slices.Equal(got, want)
}

func (l *lab) reloads() map[string]int {
	out := map[string]int{}
	for _, m := range l.masters {
		out[m.name] = m.hap.ReloadsReceived()
	}
	return out
}

// waitReady waits until every master's /readyz says want (a prefix).
func (l *lab) waitReady(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	var last string
	if !harness.Poll(timeout, 100*time.Millisecond, func() bool {
		for _, m := range masters {
			if last = m + ": " + l.readyz(m); !strings.HasPrefix(last, m+": "+want) {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("/readyz never %q everywhere; last %q\n%s", want, last, l.diagnose())
	}
}

// 9. The grant of manifests/rbac.yaml removed and applied again while the
// monitors run with their nodes' identities. Kubernetes does not end open
// watches when a grant goes, so the apiservers are restarted in turn (as an
// upgrade would) to make the monitors list again: refused, they fall back to
// degraded discovery from the kubernetes Endpoints, which the real
// apiservers keep. The configuration ends as it was (names kept), a monitor
// restarted meanwhile starts degraded without touching it, and when the
// grant returns the watches take over without a restart or a reload.
func (l *lab) grantRemovedAndApplied(t *testing.T) {
	ctx := context.Background()
	l.waitReady(t, "200 ok", 30*time.Second)
	// The file on disk follows haproxy (the runtime API first): the
	// configuration the watches have is a file naming every master, not
	// one a scenario before left a moment behind (seen under load after
	// scenario 6 re-added m1).
	var before map[string]string
	if !harness.Poll(30*time.Second, 100*time.Millisecond, func() bool {
		before = l.cfgs(t)
		for _, cfg := range before {
			if !cfgServes(cfg, masters...) {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the masters' files do not all name %v:\n%v", masters, before)
	}
	// GET /version, as in the other scenarios that stop apiservers
	// gracefully (10, 11): a stopping apiserver answers /readyz with 500
	// for its shutdown delay while it serves every real request, and
	// without the EndpointSlice grant nothing drains it (haproxy's checks
	// take it out after two failed ones). With /readyz this scenario
	// measured 2-42 failed, all of them those 500s.
	ld := l.startLoadPath(t, "rbac", "/version")
	if err := harness.RemoveRBAC(ctx, l.client); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = harness.ApplyRBAC(ctx, l.client) })
	for _, api := range l.cp.APIServers {
		l.cp.StopAPIServer(api)
		if err := l.cp.StartAPIServer(ctx, api); err != nil {
			t.Fatal(err)
		}
		l.waitServing(t, 60*time.Second, masters...)
	}
	l.waitReady(t, "200 ok: degraded discovery: system:node:", 60*time.Second)
	if !harness.Poll(30*time.Second, 100*time.Millisecond, func() bool { return fmt.Sprint(l.cfgs(t)) == fmt.Sprint(before) }) {
		t.Fatalf("degraded discovery did not settle on the configuration the watches had:\nbefore %v\nnow %v", before, l.cfgs(t))
	}

	m0 := l.master("m0")
	settled := l.reloads()
	m0.mon.Stop(10 * time.Second)
	if err := l.startMonitor(m0); err != nil {
		t.Fatal(err)
	}
	l.waitReady(t, "200 ok: degraded discovery: system:node:", 60*time.Second)

	if err := harness.ApplyRBAC(ctx, l.client); err != nil {
		t.Fatal(err)
	}
	if !harness.Poll(60*time.Second, 100*time.Millisecond, func() bool {
		for _, m := range masters {
			if l.readyz(m) != "200 ok" {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the watches did not take over\n%s", l.diagnose())
	}
	r := ld.stop(t)
	after := l.reloads()
	l.record(t, "9", "grant removed (apiservers restarted in turn) and applied again", r,
		"degraded then watching again; cfg and reload count unchanged by either switch")
	if fmt.Sprint(l.cfgs(t)) != fmt.Sprint(before) || fmt.Sprint(after) != fmt.Sprint(settled) {
		t.Fatalf("switching sources changed something: reloads %v → %v", settled, after)
	}
	// The failures are the three apiserver restarts' (in-flight requests,
	// and new ones until haproxy's checks mark the stopped one down), not the
	// switches'; the bound catches a regression.
	if r.Failed > 40 {
		t.Fatalf("%d requests failed, more than the bound of 40: %v", r.Failed, r.Errors)
	}
}
