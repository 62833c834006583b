package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
	"github.com/haproxy-monitor/haproxy-monitor/test/load"
)

// 1. Steady state: requests to VIP:6443 from the client go through the VIP
// holder's redirect into haproxy and succeed, all of them.
func (l *lab) steadyState(t *testing.T) {
	holder := l.holder()
	before := l.frontendSessions(t)
	ld := l.startLoad(t, "steady")
	time.Sleep(10 * time.Second) // the length of the scenario, not synchronisation
	r := ld.stop(t)
	l.record(t, "1", "steady state, 10 s", r, "VIP on "+holder)
	if r.Sent < 100 || r.Failed != 0 {
		t.Fatalf("%d requests, %d failed; want many and 0 failed: %v", r.Sent, r.Failed, r.Errors)
	}
	if got := l.holder(); got != holder {
		t.Fatalf("the VIP moved from %s to %s in steady state", holder, got)
	}
	if after := l.frontendSessions(t); after-before < r.Sent {
		t.Fatalf("only %d of %d requests went through haproxy: the redirect is not in use", after-before, r.Sent)
	}
	if !l.redirectIn(holder) {
		t.Fatalf("no redirect rule on the VIP holder %s", holder)
	}
}

// frontendSessions is the total of sessions the haproxy frontends took.
func (l *lab) frontendSessions(t *testing.T) int64 {
	t.Helper()
	var sum int64
	for _, m := range l.masters {
		out, err := runtimeCommand(m.hap.StatsSock, "show stat")
		if err != nil {
			t.Fatal(err)
		}
		sum += statField(out, "main", "FRONTEND", "stot")
	}
	return sum
}

// waitRedirect waits until name's redirect of VIP:6443 into haproxy is in
// (ours puts it in after three good probes, one per check interval; the
// baseline's after three of its 6 s probes), so a scenario that kills
// haproxy there measures what the redirect does.
func (l *lab) waitRedirect(t *testing.T, name string) {
	t.Helper()
	if !harness.Poll(60*time.Second, 100*time.Millisecond, func() bool { return l.redirectIn(name) }) {
		t.Fatalf("no VIP redirect on %s\n%s", name, l.diagnose())
	}
}

// redirectIn reports whether name's nftables redirect VIP:6443 into haproxy,
// as nft prints it.
func (l *lab) redirectIn(name string) bool {
	out, _ := l.net.Run(name, "nft", "list", "table", l.fam.nftFamily, "ocp_nat")
	return strings.Contains(out, l.fam.nftFamily+" daddr "+l.vip+" tcp dport 6443 redirect to :9445")
}

// waitServing waits until every running master's haproxy serves names.
func (l *lab) waitServing(t *testing.T, timeout time.Duration, names ...string) {
	t.Helper()
	if !harness.Poll(timeout, 20*time.Millisecond, func() bool {
		for _, m := range l.masters {
			if (m.node != nil || m.hap.Running()) && !l.serversUp(m, names...) {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("not every haproxy serves %v\n%s", names, l.diagnose())
	}
}

// afterwards checks that traffic is clean once a scenario has settled.
func (l *lab) afterwards(t *testing.T, name string) {
	t.Helper()
	before, began := l.holders(), time.Now()
	ld := l.startLoad(t, name+"-after")
	time.Sleep(5 * time.Second) // the length of the check
	if r := ld.stop(t); r.Failed != 0 || r.Sent < 50 {
		t.Fatalf("after %s settled: %d requests, %d failed: %v\nthe check began at %s with the VIP on %v; on %v at the end\n%s",
			name, r.Sent, r.Failed, r.Errors, began.UTC().Format("15:04:05.000"), before, l.holders(), l.diagnose())
	}
}

// 2. 100 monitor-driven membership changes (a master's label toggled) under
// load, through haproxy's runtime API: a removed master drains (it stays for
// the removal grace, taking no new connections), a returning one is made
// ready again; not one request fails and haproxy is never reloaded.
func (l *lab) changesUnderLoad(t *testing.T) {
	ctx := context.Background()
	holder := l.master(l.holder())
	reloads := holder.hap.ReloadsReceived()
	setLabel := func(on bool) error {
		return harness.UpdateNode(ctx, l.client, "m0", func(n *corev1.Node) {
			if on {
				n.Labels[harness.MasterLabel] = ""
			} else {
				delete(n.Labels, harness.MasterLabel)
			}
		})
	}
	t.Cleanup(func() { _ = setLabel(true) })
	ld := l.startLoad(t, "changes")
	for i := 0; i < 100; i++ {
		removed := i%2 == 0
		if err := setLabel(!removed); err != nil {
			t.Fatal(err)
		}
		if !harness.Poll(20*time.Second, 5*time.Millisecond, func() bool {
			s, err := holder.hap.Servers()
			if err != nil {
				return false
			}
			m0, ok := s["m0"]
			if removed {
				return !ok || m0.Draining()
			}
			return ok && m0.Up && !m0.Draining()
		}) {
			t.Fatalf("change %d not served by the VIP holder", i)
		}
	}
	r := ld.stop(t)
	n := holder.hap.ReloadsReceived() - reloads
	l.record(t, "2", "100 membership changes under load (runtime API)", r, fmt.Sprintf("%d reloads of haproxy on the VIP holder", n))
	if r.Failed != 0 || n != 0 {
		t.Fatalf("%d failed requests, %d reloads (want 0 and 0): %v", r.Failed, n, r.Errors)
	}
	l.waitServing(t, 20*time.Second, masters...)
}

// 3. One kube-apiserver dies: requests fail only until haproxy's checks mark
// it down (inter 1s fall 2), then none do.
func (l *lab) killAPIServer(t *testing.T) {
	holder := l.master(l.holder())
	victim := l.masters[(holder.index+1)%len(l.masters)] // not the VIP holder
	api := l.cp.APIServers[victim.index]
	ld := l.startLoad(t, "kill-apiserver")
	time.Sleep(2 * time.Second) // load running before the failure
	start := time.Now()
	l.cp.KillAPIServer(api)
	mark(t, victim.name+"'s kube-apiserver killed", start)
	t.Cleanup(func() { _ = l.cp.StartAPIServer(context.Background(), api) })
	// 40 s: the baseline's checks take 15 s (inter 5s fall 3).
	if !harness.Poll(40*time.Second, 20*time.Millisecond, func() bool {
		s, err := holder.hap.Servers()
		return err == nil && !s[victim.name].Up
	}) {
		t.Fatal("haproxy never marked the dead apiserver down")
	}
	detect := time.Since(start)
	r := ld.stop(t)
	l.record(t, "3", "kill one kube-apiserver", r, fmt.Sprintf("%s's; haproxy marked it DOWN after %v", victim.name, detect.Round(100*time.Millisecond)))
	l.bound(t, r, 6, 200*time.Millisecond) // measured 1-3 failed, 14-27 ms
	// No new connection goes unanswered: a connect the dead apiserver
	// refuses is redispatched. What fails, the dying apiserver had taken.
	if r.FailedToConnect != 0 && !l.baseline {
		t.Errorf("%d requests failed to connect: %v", r.FailedToConnect, r.Errors)
	}
	l.afterwards(t, "kill-apiserver")
	if err := l.cp.StartAPIServer(context.Background(), api); err != nil {
		t.Fatal(err)
	}
	l.waitServing(t, 30*time.Second, masters...)
}

// 4. haproxy dies on the VIP holder: the monitor's next probe (every 100 ms)
// finds nothing listening and takes the redirect out, so VIP:6443 reaches
// the local apiserver directly; since that apiserver answers, it writes 253
// to keepalived's track file. The holder keeps the VIP at priority 1,
// serving, until a backup takes it after VRRP's master-down interval:
// never a moment without a holder.
func (l *lab) killHAProxy(t *testing.T) {
	r := l.killHAProxyUnderLoad(t, "4", "kill haproxy on the VIP holder", "kill-haproxy")
	// Measured 0-6 failed, 0-51 ms with the held connection (4p, probing
	// alone: 8-16 failed, 68-103 ms); before the track file 302-410,
	// 2.0-2.5 s. The 6: three resets in flight, one connect in the ~5-10 ms
	// before the redirect came out, and one more in flight on the holder
	// when the VIP moved 3 s later.
	l.bound(t, r, haproxyKilledFailed, haproxyKilledOutage)
}

// The bound of the scenarios that kill haproxy on the VIP holder (4, 12,
// K2): what fails is what the dying haproxy had (at most one request per
// worker, 4), a connect in the milliseconds before the redirect comes out,
// and in 4, whose VIP moves 3 s later, what was in flight on the holder
// then: 6 at worst (CI, 2026-12-03; 8 allowed only a third more), the
// longest outage 90 ms (K2); about twice that.
const (
	haproxyKilledFailed = 12
	haproxyKilledOutage = 200 * time.Millisecond
)

// 4p. Scenario 4 with the monitor on the holder probing only
// (--watch-haproxy=false): the comparison in the same run, measuring what
// the held connection saves.
func (l *lab) killHAProxyPolling(t *testing.T) {
	if l.baseline {
		t.Skip("ours only: the baseline has no such option")
	}
	holder := l.master(l.holder())
	l.restartMonitor(t, holder, "--watch-haproxy=false")
	defer l.restartMonitor(t, holder)
	l.killHAProxyUnderLoad(t, "4p", "kill haproxy on the VIP holder, the monitor probing only (--watch-haproxy=false)", "kill-haproxy-polling")
}

// killHAProxyOnHolder kills haproxy on the VIP holder under load (named
// name: its own load output), waits for the VIP to move, and starts
// haproxy again.
func (l *lab) killHAProxyUnderLoad(t *testing.T, id, title, name string) load.Result {
	old := l.master(l.holder())
	l.waitRedirect(t, old.name)
	ld := l.startLoad(t, name)
	time.Sleep(2 * time.Second) // load running before the failure
	start := time.Now()
	old.hap.Kill() // the reloader's PID namespace: haproxy and socat with it
	mark(t, "haproxy killed on "+old.name, start)
	next, moved, r := l.stopAfterMove(t, ld, old.name, start)
	l.record(t, id, title, r, fmt.Sprintf("VIP %s → %s after %v%s", old.name, next, moved.Round(100*time.Millisecond),
		redirectOutAfter(old.mon.Log())))
	defer func() {
		// Restore: haproxy back on the old holder; the VIP stays where it is.
		if err := old.hap.Start(); err != nil {
			t.Fatal(err)
		}
		l.converged(t)
	}()
	l.afterwards(t, name)
	return r
}

// restartMonitor replaces m's monitor (SIGKILL, so it hands nothing over;
// the new one takes over its rules and track file) with one run with the
// lab's arguments and extra.
func (l *lab) restartMonitor(t *testing.T, m *master, extra ...string) {
	t.Helper()
	if err := m.mon.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = m.mon.Wait(ctx)
	args := m.margs
	args.Extra = append(append([]string{}, args.Extra...), extra...)
	saved := m.margs
	m.margs = args
	err := l.startMonitor(m)
	m.margs = saved
	if err != nil {
		t.Fatal(err)
	}
	if !harness.Poll(30*time.Second, 100*time.Millisecond, func() bool { return strings.HasPrefix(l.readyz(m.name), "200") }) {
		t.Fatalf("monitor on %s not ready after its restart\n%s", m.name, l.diagnose())
	}
}

// 5. The VIP holder's link is cut: another master takes the VIP.
func (l *lab) cutLink(t *testing.T) {
	r := l.cutLinkUnderLoad(t, "5", "cut the VIP holder's link", "cut-link")
	l.bound(t, r, 20, 8*time.Second) // measured 8 failed, ~4060 ms
	l.afterwards(t, "cut-link")
}

// cutHolderLink cuts the VIP holder's link under load, waits for another
// master to take the VIP and the client to see it, records the scenario,
// and joins the link again.
func (l *lab) cutLinkUnderLoad(t *testing.T, id, title, name string) load.Result {
	t.Helper()
	old := l.holder()
	ld := l.startLoad(t, name)
	time.Sleep(2 * time.Second) // load running before the failure
	start := time.Now()
	mark(t, old+"'s link cut", start)
	if err := l.net.SetLink(old, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.net.SetLink(old, true) })
	next := ""
	if !harness.Poll(30*time.Second, 10*time.Millisecond, func() bool {
		for _, m := range masters {
			if m != old && l.net.HasAddr(m, l.vip) {
				next = m
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no other master took the VIP\n%s", l.diagnose())
	}
	moved := time.Since(start)
	mark(t, "VIP "+old+" → "+next, start.Add(moved))
	// Every master still linked has marked the cut one's apiserver DOWN;
	// then the load goes on for a second past it.
	if !harness.Poll(30*time.Second, 50*time.Millisecond, func() bool {
		for _, m := range l.masters {
			if m.name == old {
				continue
			}
			servers, err := m.hap.Servers()
			if err != nil || servers[old].Up {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("haproxy still counts %s's apiserver up\n%s", old, l.diagnose())
	}
	time.Sleep(time.Second) // load on past it (a window, not a wait)
	r := ld.stop(t)
	l.record(t, id, title, r, fmt.Sprintf("VIP %s → %s after %v", old, next, moved.Round(10*time.Millisecond)))
	if err := l.net.SetLink(old, true); err != nil {
		t.Fatal(err)
	}
	l.converged(t)
	return r
}

// 6. A master Node is deleted and created again: every master's haproxy
// follows both times.
func (l *lab) deleteAndReAddNode(t *testing.T) {
	ctx := context.Background()
	ld := l.startLoad(t, "readd-node")
	readd := func() error {
		return harness.CreateNode(ctx, l.client, harness.NodeObject("m1", harness.MasterLabel, l.fam.master(1)))
	}
	if err := l.client.CoreV1().Nodes().Delete(ctx, "m1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = readd() })
	// Removed: drained on every haproxy (it stays for the removal grace).
	if !harness.Poll(20*time.Second, 20*time.Millisecond, func() bool {
		for _, m := range l.masters {
			s, err := m.hap.Servers()
			if err != nil || (s["m1"].Name != "" && !s["m1"].Draining()) {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("m1 not drained everywhere\n%s", l.diagnose())
	}
	if err := readd(); err != nil {
		t.Fatal(err)
	}
	l.waitServing(t, 20*time.Second, masters...) // ready again
	r := ld.stop(t)
	l.record(t, "6", "delete and re-add a master Node", r, "every master's haproxy followed")
	if r.Failed != 0 {
		t.Fatalf("%d requests failed: %v", r.Failed, r.Errors)
	}
}

// 7. The IPv6 lab: steady state and a dead kube-apiserver, with an IPv6 VIP,
// IPv6 InternalIPs, ip6 nftables rules and VRRPv3.
func TestIPv6(t *testing.T) {
	l6, err := setup(ipv6, "b", false)
	if l6 != nil {
		defer l6.teardown()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Run("steady", l6.steadyState)
	t.Run("kill-apiserver", l6.killAPIServer)
}

// 10. A kube-apiserver shuts down gracefully under load (SIGTERM, shutdown
// delay 5 s): it leaves the kubernetes EndpointSlice at once while it still
// serves, every monitor drains its server within a moment, and no request
// fails: new connections go elsewhere, the ones in flight complete. The load
// is GET /version: /readyz answers 500 from the first moment of a shutdown
// by design.
func (l *lab) gracefulShutdown(t *testing.T) {
	api := l.cp.APIServers[0] // m0's
	ld := l.startLoadPath(t, "graceful-shutdown", "/version")
	time.Sleep(2 * time.Second) // load running before the shutdown
	start := time.Now()
	mark(t, "m0's kube-apiserver SIGTERM", start)
	stopped := make(chan time.Duration, 1)
	go func() { l.cp.StopAPIServer(api); stopped <- time.Since(start) }()
	t.Cleanup(func() { _ = l.cp.StartAPIServer(context.Background(), api) })
	var drainedAfter time.Duration
	if !harness.Poll(10*time.Second, 10*time.Millisecond, func() bool {
		for _, m := range l.masters {
			s, err := m.hap.Servers()
			if err != nil || !s["m0"].Draining() {
				return false
			}
		}
		drainedAfter = time.Since(start)
		return true
	}) {
		t.Fatalf("not every haproxy drained m0\n%s", l.diagnose())
	}
	took := <-stopped
	time.Sleep(time.Second) // load on past the apiserver's exit
	r := ld.stop(t)
	l.record(t, "10", "kube-apiserver shut down gracefully (shutdown delay 5 s)", r,
		fmt.Sprintf("drained on every haproxy after %v; the apiserver exited after %v", drainedAfter.Round(10*time.Millisecond), took.Round(100*time.Millisecond)))
	if r.Failed != 0 {
		t.Errorf("%d requests failed: %v", r.Failed, r.Errors)
	}
	if drainedAfter > 400*time.Millisecond { // goal 200 ms; measured 10-20 ms
		t.Errorf("drained after %v, beyond the bound of 400 ms", drainedAfter)
	}
	if err := l.cp.StartAPIServer(context.Background(), api); err != nil {
		t.Fatal(err)
	}
	l.waitServing(t, 30*time.Second, masters...)
	// Back in the EndpointSlice: back to ready everywhere.
	if !harness.Poll(30*time.Second, 20*time.Millisecond, func() bool {
		for _, m := range l.masters {
			if s, err := m.hap.Servers(); err != nil || s["m0"].Draining() {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("m0 still draining after its apiserver returned\n%s", l.diagnose())
	}
}
