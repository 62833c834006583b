package lbconfig

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// The deliberate differences from the original monitor in backend
// selection (README, "How it differs from the original"), one test each.

// The original takes the LAST InternalIP of the first VIP's family and
// ignores subnets; we take the one in the VIP's local subnet, else the FIRST
// of the family (the kubelet's --node-ip comes first).
func TestDifferenceAddressSelection(t *testing.T) {
	opts := Options{APIPort: 6443, VIPs: addrs("198.18.0.100"), VIPSubnets: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}}
	nodes := []Node{
		{Name: "m1", InternalIPs: []string{"198.19.0.1", "198.18.0.11", "198.20.0.1"}},
		{Name: "m2", InternalIPs: []string{"198.19.0.2", "198.20.0.2"}},
	}
	cfg, _ := Build(nodes, opts)
	want := []Backend{{Host: "m1", Address: "198.18.0.11", Port: 6443}, {Host: "m2", Address: "198.19.0.2", Port: 6443}}
	if !reflect.DeepEqual(cfg.Backends, want) {
		t.Fatalf("got %v, want %v (the original: 198.20.0.1 and 198.20.0.2)", cfg.Backends, want)
	}
}

// The original writes "server m1 :6443" (no address) for a node without an
// address of the first VIP's family; we skip it with a reason, after trying
// the other VIPs' families.
func TestDifferenceNodeWithoutUsableAddress(t *testing.T) {
	cfg, skipped := Build([]Node{{Name: "m1", InternalIPs: []string{"fd00::1"}}, {Name: "m2", InternalIPs: []string{"198.18.0.2"}}},
		Options{APIPort: 6443, VIPs: addrs("198.18.0.100")})
	if len(cfg.Backends) != 1 || cfg.Backends[0].Host != "m2" || len(skipped) != 1 || skipped[0].Node != "m1" {
		t.Fatalf("backends %v, skipped %v", cfg.Backends, skipped)
	}
	dual, _ := Build([]Node{{Name: "m1", InternalIPs: []string{"fd00::1"}}}, Options{APIPort: 6443, VIPs: addrs("198.18.0.100", "fd00::100")})
	if len(dual.Backends) != 1 || dual.Backends[0].Address != "fd00::1" {
		t.Fatalf("dual stack: %v", dual.Backends)
	}
}

// The original panics without a VIP; we take each node's first InternalIP,
// and a node without a usable one is skipped for that reason (no VIP family
// is involved).
func TestDifferenceNoVIP(t *testing.T) {
	cfg, skipped := Build([]Node{{Name: "m1", InternalIPs: []string{"198.18.0.1", "fd00::1"}}, {Name: "m2", InternalIPs: []string{"bogus"}}}, Options{APIPort: 6443})
	if len(cfg.Backends) != 1 || cfg.Backends[0].Address != "198.18.0.1" || cfg.FrontendAddr != "" {
		t.Fatalf("got %+v", cfg)
	}
	if len(skipped) != 1 || strings.Contains(skipped[0].Reason, "VIP") || !strings.HasPrefix(skipped[0].Reason, "no usable InternalIP") {
		t.Fatalf("skipped %+v", skipped)
	}
}

// The original puts node names and addresses into server lines unchecked;
// we refuse what could break out of the line.
func TestDifferenceUnsafeNamesRefused(t *testing.T) {
	cfg, skipped := Build([]Node{{Name: "m1\n  server evil 203.0.113.1:80", InternalIPs: []string{"198.18.0.1"}},
		{Name: "m2", InternalIPs: []string{"198.18.0.2 backup"}}}, Options{APIPort: 6443})
	if len(cfg.Backends) != 0 || len(skipped) != 2 {
		t.Fatalf("backends %v, skipped %v", cfg.Backends, skipped)
	}
}
