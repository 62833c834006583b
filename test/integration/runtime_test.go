package integration

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
	"github.com/haproxy-monitor/haproxy-monitor/test/load"
)

// Membership changes go through haproxy's runtime API: 30 long-lived
// connections held open through an add, an address change and a removal
// lose only the moved and the removed server's, and haproxy is never
// restarted.
func TestRuntimeChangesKeepConnections(t *testing.T) {
	ctx := context.Background()
	s := newSite(t)
	s.node("m1", harness.MasterLabel, 11)
	s.node("m2", harness.MasterLabel, 12)
	s.node("m3", harness.MasterLabel, 13)
	s.startHAProxy()
	s.startMonitor()
	s.waitServing(30*time.Second, "m1", "m2", "m3")
	held, err := load.Hold(net.JoinHostPort("127.0.0.1", strconv.Itoa(s.hap.LBPort)), 30)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	per := held.Backends()
	if per["m1"] == 0 || per["m2"] == 0 || per["m3"] == 0 {
		t.Fatalf("connections not spread: %v", per)
	}
	reloads := s.hap.ReloadsReceived()
	check := func(step string, want map[string]int) {
		t.Helper()
		cut, by := held.Check()
		wantCut := 0
		for _, n := range want {
			wantCut += n
		}
		if cut != wantCut || len(by) != len(want) {
			t.Fatalf("after %s: %d connections cut %v, want %v", step, cut, by, want)
		}
		for b, n := range want {
			if by[b] != n {
				t.Fatalf("after %s: cut %v, want %v", step, by, want)
			}
		}
	}

	s.master("m4", 14)
	if err := harness.CreateNode(ctx, client, harness.NodeObject("m4", harness.MasterLabel, hostIP(14))); err != nil {
		t.Fatal(err)
	}
	s.waitServing(20*time.Second, "m1", "m2", "m3", "m4")
	check("adding m4", map[string]int{})

	moved := s.master("m3", 16)
	if err := harness.SetInternalIP(ctx, client, "m3", moved); err != nil {
		t.Fatal(err)
	}
	s.waitServing(20*time.Second, "m1", "m2", "m3@"+moved, "m4")
	check("moving m3", map[string]int{"m3": per["m3"]})

	if err := client.CoreV1().Nodes().Delete(ctx, "m2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// m2 drains for the removal grace (500 ms here), then goes.
	s.waitServing(20*time.Second, "m1", "m3@"+moved, "m4")
	check("removing m2", map[string]int{"m3": per["m3"], "m2": per["m2"]})

	if got := s.hap.ReloadsReceived() - reloads; got != 0 {
		t.Fatalf("%d reloads for three membership changes, want 0", got)
	}
	s.waitCfg("server m3 " + moved + ":")
	if strings.Contains(string(s.cfg()), "server m2 ") {
		t.Fatal("the removed server is still in the file")
	}
}

// A runtime API that refuses the commands (here the read-only socket given
// as the admin one): each change still lands, by reload, and is counted.
func TestRuntimeRefusedFallsBackToReload(t *testing.T) {
	s := newSite(t)
	port := s.health()
	s.args.Extra = append(s.args.Extra, "--haproxy-admin-socket", s.hap.UserSock)
	s.startWithM1()
	reloads := s.hap.ReloadsReceived()
	s.node("m2", harness.MasterLabel, 12)
	s.waitServing(20*time.Second, "m1", "m2")
	s.waitLog(10*time.Second, "runtime API change failed; reloading instead")
	if got := s.hap.ReloadsReceived() - reloads; got != 1 {
		t.Fatalf("%d reloads, want 1", got)
	}
	if !harness.Poll(10*time.Second, 50*time.Millisecond, func() bool {
		m := scrape(t, port)
		return m["haproxy_monitor_runtime_command_failures_total"] == 1 && m[`haproxy_monitor_changes_applied_total{path="reload"}`] == 2
	}) {
		t.Fatalf("metrics: %v", scrape(t, port))
	}
}

// The reloads that remain keep the servers' health: a DOWN server is DOWN in
// the new haproxy from its first moment (without the state file every server
// starts UP until checks fail), while a server that moved starts fresh at
// its new address (a state file may override an address).
func TestStateFileAcrossReloads(t *testing.T) {
	ctx := context.Background()
	s := newSite(t)
	s.args.Extra = append(s.args.Extra, "--haproxy-admin-socket", "") // every change reloads
	s.node("m1", harness.MasterLabel, 11)
	s.node("m2", harness.MasterLabel, 12)
	s.startHAProxy()
	s.startMonitor()
	s.waitServing(30*time.Second, "m1", "m2")
	s.masters[hostIP(11)].SetHealthy(false)
	s.masters[hostIP(12)].SetHealthy(false)
	downs := func() bool {
		sv, err := s.hap.Servers()
		return err == nil && len(sv) == 2 && !sv["m1"].Up && !sv["m2"].Up
	}
	if !harness.Poll(20*time.Second, 20*time.Millisecond, downs) {
		t.Fatal("haproxy never marked m1 and m2 DOWN")
	}
	// One reload: m3 added, m2 moved to a healthy address.
	moved := s.master("m2", 17)
	s.node("m3", harness.MasterLabel, 13)
	if err := harness.SetInternalIP(ctx, client, "m2", moved); err != nil {
		t.Fatal(err)
	}
	var first map[string]bool
	if !harness.Poll(20*time.Second, 2*time.Millisecond, func() bool {
		sv, err := s.hap.Servers()
		if err != nil || len(sv) != 3 || sv["m2"].Addr != moved {
			return false
		}
		first = map[string]bool{"m1": sv["m1"].Up, "m2": sv["m2"].Up, "m3": sv["m3"].Up}
		return true
	}) {
		t.Fatal("the new haproxy never showed m3 and the moved m2")
	}
	if first["m1"] {
		t.Fatalf("m1 came up in the new haproxy (%v): the state file did not carry its DOWN state", first)
	}
	// The moved m2 was not carried over: it is checked afresh at its new,
	// healthy address and comes UP; m1 stays DOWN.
	if !harness.Poll(20*time.Second, 20*time.Millisecond, func() bool {
		sv, err := s.hap.Servers()
		return err == nil && sv["m2"].Up && sv["m3"].Up && !sv["m1"].Up
	}) {
		sv, _ := s.hap.Servers()
		t.Fatalf("after the reload: %v", sv)
	}
	if !strings.Contains(readFile(s.hap.StateFile), " m1 "+hostIP(11)+" ") {
		t.Fatalf("state file:\n%s", readFile(s.hap.StateFile))
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
