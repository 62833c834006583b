package monitor

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
)

// The desired state from one snapshot and the monitor's memory, rule by
// rule; the memory given is never changed.
func TestDesired(t *testing.T) {
	opts := lbconfig.Options{APIPort: 6443, LBPort: 9445, StatPort: 29445, VIPs: []netip.Addr{netip.MustParseAddr("198.18.0.100")}}
	three := []lbconfig.Node{{Name: "m1", InternalIPs: []string{"198.18.0.11"}}, {Name: "m2", InternalIPs: []string{"198.18.0.12"}},
		{Name: "m3", InternalIPs: []string{"198.18.0.13"}}}
	watch := func(endpoints ...string) discovery.Snapshot {
		return discovery.Snapshot{Mode: discovery.ModeWatch, Nodes: three, APIEndpoints: endpoints, SlicesCurrent: endpoints != nil}
	}
	hosts := func(bs []lbconfig.Backend) []string {
		var out []string
		for _, b := range bs {
			out = append(out, b.Host+"="+b.Address)
		}
		return out
	}
	t.Run("watch: every member, no drain before any is seen in the slice", func(t *testing.T) {
		d := desired(watch("198.18.0.11:6443"), memory{}, opts)
		if got := hosts(d.cfg.Backends); !slices.Equal(got, []string{"m1=198.18.0.11", "m2=198.18.0.12", "m3=198.18.0.13"}) || d.keep || d.drain != nil {
			t.Fatalf("backends %v, keep %v, drain %v", got, d.keep, d.drain)
		}
		if !d.next.seenReady["198.18.0.11"] || len(d.next.names) != 3 {
			t.Fatalf("memory after: %+v", d.next)
		}
	})
	t.Run("a server seen ready that left the slice drains", func(t *testing.T) {
		mem := memory{seenReady: map[string]bool{"198.18.0.11": true, "198.18.0.12": true}}
		d := desired(watch("198.18.0.11:6443", "198.18.0.13:6443"), mem, opts)
		if !slices.Equal(d.drain, []string{"m2"}) {
			t.Fatalf("drain %v, want m2", d.drain)
		}
		if mem.seenReady["198.18.0.13"] {
			t.Fatal("the memory given was changed")
		}
	})
	t.Run("no drains while the slice watch is not current", func(t *testing.T) {
		d := desired(watch(), memory{seenReady: map[string]bool{"198.18.0.12": true}}, opts)
		if d.drain != nil {
			t.Fatalf("drain %v", d.drain)
		}
	})
	t.Run("zero members with a configuration: kept", func(t *testing.T) {
		d := desired(discovery.Snapshot{Mode: discovery.ModeWatch}, memory{haveConfig: true}, opts)
		if !d.keep {
			t.Fatal("an empty backend list would replace a working configuration")
		}
	})
	t.Run("zero members and nothing yet: rendered empty", func(t *testing.T) {
		if d := desired(discovery.Snapshot{Mode: discovery.ModeWatch}, memory{}, opts); d.keep || len(d.cfg.Backends) != 0 {
			t.Fatalf("keep %v, backends %v", d.keep, d.cfg.Backends)
		}
	})
	t.Run("degraded: the apiservers, named from memory", func(t *testing.T) {
		snap := discovery.Snapshot{Mode: discovery.ModeDegraded, APIServers: []string{"198.18.0.11", "198.18.0.12"},
			Self: lbconfig.Node{Name: "m1", InternalIPs: []string{"198.18.0.11"}}}
		mem := memory{names: []lbconfig.Backend{{Host: "m2", Address: "198.18.0.12", Port: 6443}}}
		d := desired(snap, mem, opts)
		if got := hosts(d.cfg.Backends); !slices.Equal(got, []string{"m1=198.18.0.11", "m2=198.18.0.12"}) {
			t.Fatalf("backends %v", got)
		}
	})
}
