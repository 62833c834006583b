package e2e

import (
	"strings"
	"testing"
	"time"
)

// 1. Steady state: requests to VIP:6443 from the client go through the VIP
// holder's redirect into haproxy and succeed, all of them.
func TestSteadyState(t *testing.T) {
	holder := L.holder()
	before := frontendSessions(t)
	ld := L.startLoad(t, "steady")
	time.Sleep(10 * time.Second) // the length of the scenario, not synchronisation
	r := ld.stop(t)
	L.record(t, "1. steady state, 10 s", r, "VIP on "+holder)
	if r.Sent < 100 || r.Failed != 0 {
		t.Fatalf("%d requests, %d failed; want many and 0 failed: %v", r.Sent, r.Failed, r.Errors)
	}
	if got := L.holder(); got != holder {
		t.Fatalf("the VIP moved from %s to %s in steady state", holder, got)
	}
	if after := frontendSessions(t); after-before < r.Sent {
		t.Fatalf("only %d of %d requests went through haproxy: the redirect is not in use", after-before, r.Sent)
	}
	out, _ := L.net.Run(holder, "nft", "list", "table", "ip", "ocp_nat")
	if !strings.Contains(out, "ip daddr "+vip+" tcp dport 6443 redirect to :9445") {
		t.Fatalf("no redirect rule on the VIP holder:\n%s", out)
	}
}

// frontendSessions is the total of sessions the haproxy frontends took.
func frontendSessions(t *testing.T) int64 {
	t.Helper()
	var sum int64
	for _, m := range L.masters {
		out, err := runtimeCommand(m.hap.StatsSock, "show stat")
		if err != nil {
			t.Fatal(err)
		}
		sum += statField(out, "main", "FRONTEND", "stot")
	}
	return sum
}
