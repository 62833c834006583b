package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
	"github.com/haproxy-monitor/haproxy-monitor/test/load"
)

// stopMaster stops a master the way the kubelet stops its pods on a reboot:
// SIGTERM to keepalived, the monitor and kube-apiserver at once; haproxy's
// container runs bash as PID 1, which ignores SIGTERM, so haproxy goes on
// serving until the grace period ends: here, after the others have exited.
func (l *lab) stopMaster(t *testing.T, m *master) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); m.keep.Stop(10 * time.Second) }()
	go func() { defer wg.Done(); m.mon.Stop(30 * time.Second) }()
	go func() { defer wg.Done(); l.cp.StopAPIServer(l.cp.APIServers[m.index]) }()
	wg.Wait()
	m.hap.Stop()
}

// startMasterAgain brings a stopped master back: its apiserver, haproxy
// (from the file on disk), the monitor and keepalived.
func (l *lab) startMasterAgain(t *testing.T, m *master) {
	t.Helper()
	if err := l.cp.StartAPIServer(context.Background(), l.cp.APIServers[m.index]); err != nil {
		t.Fatal(err)
	}
	if err := m.hap.Start(); err != nil {
		t.Fatal(err)
	}
	if err := l.startMonitor(m); err != nil {
		t.Fatal(err)
	}
	if err := l.startKeepalived(m); err != nil {
		t.Fatal(err)
	}
}

// converged waits until every haproxy serves every master and the VIP has
// settled (lab.settled).
func (l *lab) converged(t *testing.T) {
	t.Helper()
	l.waitServing(t, 60*time.Second, masters...)
	l.waitSettled(t)
}

// waitSettled waits until the VIP has settled (lab.settled).
func (l *lab) waitSettled(t *testing.T) {
	t.Helper()
	if !harness.Poll(60*time.Second, 50*time.Millisecond, func() bool { return l.settled() != "" }) {
		t.Fatalf("the VIP did not settle: holder %q\n%s", l.holder(), l.diagnose())
	}
}

// 11. Every master restarted in turn, gracefully, under load (an upgrade):
// when the VIP holder stops, its monitor holds new connections to the VIP
// (their SYNs are dropped, and sent again a second later to the next
// holder) while what is in flight finishes on its haproxy, waits for the VIP
// to leave and another node to take it, then takes its redirect out; the
// apiserver is drained; no request fails. The load is GET /version: a
// stopping apiserver answers /readyz with 500 on purpose.
func (l *lab) rollingRestart(t *testing.T) {
	ld := l.startLoadPath(t, "rolling-restart", "/version")
	loadStart := time.Now()
	time.Sleep(2 * time.Second) // load running before the first stop
	start := time.Now()
	for _, m := range l.masters {
		t.Logf("at %.3fs: stopping %s (VIP on %s)", time.Since(loadStart).Seconds(), m.name, l.holder())
		mark(t, m.name+" stopping", time.Now())
		l.stopMaster(t, m)
		t.Logf("at %.3fs: %s stopped (VIP on %s)", time.Since(loadStart).Seconds(), m.name, l.holder())
		mark(t, m.name+" starting", time.Now())
		l.startMasterAgain(t, m)
		l.converged(t)
		t.Logf("at %.3fs: %s back, converged (VIP on %s)", time.Since(loadStart).Seconds(), m.name, l.holder())
	}
	r := ld.stop(t)
	l.record(t, "11", "rolling restart of all three masters, graceful, under load", r,
		fmt.Sprintf("each stopped as the kubelet stops pods and started again; %v in all", time.Since(start).Round(time.Second)))
	// goal 0; measured 0 in every run since the hold and the sticky holder
	// (before: 0-4 failed, 0-2.1 s). The bound allows the race kubelet lab
	// K6 hit once: keepalived, stopped at the same moment, dropping the VIP
	// before the monitor holds new connections.
	l.bound(t, r, 2, vipMoveOutage)
}

// 12. haproxy killed on the VIP holder and started again 1 s later, as the
// kubelet restarts a container: at its next probe the monitor takes the
// redirect out and writes 253 (the local apiserver serves); haproxy is back
// before a backup's master-down interval ends, so the VIP stays.
func (l *lab) haproxyRestart(t *testing.T) {
	holder := l.master(l.holder())
	l.waitRedirect(t, holder.name)
	ld := l.startLoad(t, "haproxy-restart")
	time.Sleep(2 * time.Second) // load running before the failure
	moved := l.watchHolder(t, holder.name)
	mark(t, "haproxy killed on "+holder.name, time.Now())
	holder.hap.Kill()
	time.Sleep(time.Second) // the scenario: the kubelet restarts it a second later
	mark(t, "haproxy started again", time.Now())
	if err := holder.hap.Start(); err != nil {
		t.Fatal(err)
	}
	l.converged(t)
	time.Sleep(time.Second) // load on past the convergence (a window, not a wait)
	r := ld.stop(t)
	if holder.mon != nil {
		monitorEvents(t, holder.name, holder.mon.Log())
	}
	note := "the VIP stayed"
	if moved() {
		note = "the VIP went away and came back"
	}
	l.record(t, "12", "haproxy killed on the VIP holder, restarted 1 s later", r, note)
	// With the held connection: measured 0-4 failed (all at the kill, at most one per worker), 0-68 ms; probing alone
	// 4-12, 39-110 ms; with FAULT at once 11-23, 1.1-1.2 s. The bound is shared with scenario 4 and K2.
	l.bound(t, r, haproxyKilledFailed, haproxyKilledOutage)
}

// setAdvert restarts every keepalived with the given advert interval and
// waits for the lab to converge.
func (l *lab) setAdvert(t *testing.T, advert string) {
	t.Helper()
	for _, m := range l.masters {
		m.keep.Stop(10 * time.Second)
		if err := l.writeKeepalived(m, advert); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range l.masters {
		if err := l.startKeepalived(m); err != nil {
			t.Fatal(err)
		}
	}
	l.converged(t)
}

// 5b. The holder's link cut with sub-second VRRPv3 adverts (the faster-VRRP
// option of the keepalived template: advert_int 0.2), then back to the
// default.
func (l *lab) cutLinkFastVRRP(t *testing.T) {
	l.setAdvert(t, "0.2")
	defer l.setAdvert(t, "1")
	r := l.cutLinkUnderLoad(t, "5b", "cut the VIP holder's link, VRRPv3 advert_int 0.2", "cut-link-fast")
	l.bound(t, r, 20, vipMoveOutage) // goal 1.5 s; measured 4 failed, 1.0 s
}

// 13. The faster-VRRP option must not move the VIP when nothing failed: with
// advert_int 0.2 a backup declares the master down after about 0.7 s
// without adverts, so a keepalived starved of CPU would. Every CPU is kept
// busy several times over (busy loops beside every master, bounded by
// timeout(1)) for HAPM_LAB_SOAK (10m in make lab-report) while the VIP
// holder is sampled every 20 ms and every keepalived's transitions to
// MASTER are counted; both must stay at 0.
func (l *lab) fastVRRPUnderLoad(t *testing.T) {
	soak := os.Getenv("HAPM_LAB_SOAK")
	if soak == "" {
		t.Skip("the CPU-load soak runs with HAPM_LAB_SOAK=10m (make lab-report)")
	}
	d, err := time.ParseDuration(soak)
	if err != nil {
		t.Fatalf("HAPM_LAB_SOAK=%q: %v", soak, err)
	}
	l.setAdvert(t, "0.2")
	defer l.setAdvert(t, "1")
	holder := l.holder()
	masterStates := func() int {
		n := 0
		for _, m := range l.masters {
			n += strings.Count(m.keep.Log(), "Entering MASTER STATE")
		}
		return n
	}
	before := masterStates()
	burners := 2 * runtime.NumCPU()
	for _, m := range l.masters {
		for i := 0; i < burners; i++ {
			p, err := harness.StartProcess("burn", filepath.Join(l.dir, fmt.Sprintf("burn-%s-%d.log", m.name, i)), nil,
				l.net.Wrap(m.name, []string{"timeout", fmt.Sprint(int((d + time.Minute).Seconds())), "sh", "-c", "while :; do :; done"})...)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Stop(5 * time.Second)
		}
	}
	moves, missing := 0, 0
	last := holder
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		switch h := l.holder(); {
		case h == "":
			missing++
		case h != last:
			moves++
			last = h
		}
	}
	load1, _ := os.ReadFile("/proc/loadavg")
	transitions := masterStates() - before
	note := fmt.Sprintf("%d VIP moves, %d samples without a holder, %d transitions to MASTER; %d busy loops per master, load average %s",
		moves, missing, transitions, burners, strings.Fields(string(load1))[0])
	addRow(t, row{id: "13", title: fmt.Sprintf("VRRPv3 advert_int 0.2, %v under CPU load", d), note: note})
	if moves != 0 || missing != 0 || transitions != 0 {
		t.Errorf("spurious VIP moves under CPU load: %s", note)
	}
}

// 14. The monitor on the VIP holder is killed (SIGKILL: it cannot clean up,
// the track file keeps saying 0 and the redirect stays in), then haproxy
// dies there too. keepalived's script fallback (haproxy's monitor-uri,
// fall 2, weight -253) drops the holder's priority to 1 and a backup takes
// the VIP after the master-down interval; until then the redirect sends
// VIP:6443 to the dead haproxy. The fallback must move the VIP.
func (l *lab) monitorKilledThenHAProxy(t *testing.T) {
	old := l.master(l.holder())
	l.waitRedirect(t, old.name)
	ld := l.startLoad(t, "monitor-killed")
	time.Sleep(2 * time.Second) // load running before the failure
	mark(t, "monitor killed on "+old.name, time.Now())
	if err := old.mon.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = old.mon.Wait(ctx)
	start := time.Now()
	old.hap.Kill()
	mark(t, "then its haproxy", start)
	next, moved, r := l.stopAfterMove(t, ld, old.name, start)
	l.record(t, "14", "monitor killed (SIGKILL) on the VIP holder, then its haproxy", r,
		fmt.Sprintf("the script fallback: VIP %s → %s after %v", old.name, next, moved.Round(100*time.Millisecond)))
	l.bound(t, r, 2000, 12*time.Second) // measured 580-1136 failed, 3.0-5.9 s
	if err := old.hap.Start(); err != nil {
		t.Fatal(err)
	}
	if err := l.startMonitor(old); err != nil {
		t.Fatal(err)
	}
	l.converged(t)
}

// 15. kube-apiserver and haproxy both die on the VIP holder (its control
// plane crashed; keepalived and the monitor live on): nothing serves there,
// so the monitor writes 254 at its next probe and the VIP moves at once (the
// priority-0 advert, then the skew time); a SYN sent meanwhile is sent again
// a second later.
func (l *lab) holderControlPlaneDies(t *testing.T) {
	old := l.master(l.holder())
	l.waitRedirect(t, old.name)
	api := l.cp.APIServers[old.index]
	ld := l.startLoad(t, "control-plane-dies")
	time.Sleep(2 * time.Second) // load running before the failure
	start := time.Now()
	l.cp.KillAPIServer(api)
	old.hap.Kill()
	mark(t, "kube-apiserver and haproxy killed on "+old.name, start)
	t.Cleanup(func() { _ = l.cp.StartAPIServer(context.Background(), api) })
	next, moved, r := l.stopAfterMove(t, ld, old.name, start)
	l.record(t, "15", "kube-apiserver and haproxy killed on the VIP holder", r,
		fmt.Sprintf("VIP %s → %s after %v", old.name, next, moved.Round(10*time.Millisecond)))
	l.bound(t, r, 40, vipMoveOutage) // measured 7-20 failed, 1.06-1.15 s
	if err := l.cp.StartAPIServer(context.Background(), api); err != nil {
		t.Fatal(err)
	}
	if err := old.hap.Start(); err != nil {
		t.Fatal(err)
	}
	l.converged(t)
}

// watchHolder samples the VIP holder every 20 ms until the function it
// returns is called (or the test ends); that says whether the VIP was ever
// seen off holder.
func (l *lab) watchHolder(t *testing.T, holder string) (moved func() bool) {
	var off atomic.Bool
	var once sync.Once
	done := make(chan struct{})
	stop := func() { once.Do(func() { close(done) }) }
	t.Cleanup(stop)
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if l.holder() != holder {
				off.Store(true)
			}
		}
	}()
	return func() bool {
		stop()
		return off.Load()
	}
}

// stopAfterMove waits for the VIP to leave old, lets the client see the new
// holder for 2 s, and stops the load: the holder, how long after start the
// VIP moved, and what the load saw.
func (l *lab) stopAfterMove(t *testing.T, ld *runningLoad, old string, start time.Time) (string, time.Duration, load.Result) {
	t.Helper()
	next, at := l.waitOtherHolder(t, old)
	moved := at.Sub(start)
	mark(t, "VIP "+old+" → "+next, start.Add(moved))
	time.Sleep(2 * time.Second) // the length of the check after the move
	if m := l.master(old); m.mon != nil {
		monitorEvents(t, old, m.mon.Log())
	}
	return next, moved, ld.stop(t)
}
