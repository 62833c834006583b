package lbconfig

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestBuild(t *testing.T) {
	v4 := Options{APIPort: 6443, LBPort: 9445, StatPort: 29445, VIPs: addrs("198.18.0.100")}
	v4Subnet := v4
	v4Subnet.VIPSubnets = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}
	v6 := Options{APIPort: 6443, LBPort: 9445, StatPort: 29445, VIPs: addrs("fd00::100")}
	dual := Options{APIPort: 6443, LBPort: 9445, StatPort: 29445, VIPs: addrs("198.18.0.100", "fd00::100")}

	tests := []struct {
		name         string
		nodes        []Node
		opts         Options
		want         []Backend
		wantFrontend string
		wantSkipped  []string
	}{
		{
			name: "sorted by address string like the original",
			opts: v4,
			nodes: []Node{
				{Name: "m2", InternalIPs: []string{"198.18.0.9"}},
				{Name: "m1", InternalIPs: []string{"198.18.0.10"}},
				{Name: "m3", InternalIPs: []string{"198.18.0.11"}},
			},
			want: []Backend{
				{Host: "m1", Address: "198.18.0.10", Port: 6443},
				{Host: "m3", Address: "198.18.0.11", Port: 6443},
				{Host: "m2", Address: "198.18.0.9", Port: 6443},
			},
		},
		{
			name: "InternalIP in the VIP's local subnet wins over the first one",
			opts: v4Subnet,
			nodes: []Node{
				{Name: "m1", InternalIPs: []string{"198.19.5.1", "198.18.0.11"}},
			},
			want: []Backend{{Host: "m1", Address: "198.18.0.11", Port: 6443}},
		},
		{
			name: "no subnet match falls back to the first of the VIP's family",
			opts: v4Subnet,
			nodes: []Node{
				{Name: "m1", InternalIPs: []string{"fd00::1", "198.19.5.1", "198.19.6.1"}},
			},
			want: []Backend{{Host: "m1", Address: "198.19.5.1", Port: 6443}},
		},
		{
			name:         "IPv6 VIP selects IPv6 addresses and the :: frontend",
			opts:         v6,
			wantFrontend: "::",
			nodes: []Node{
				{Name: "m1", InternalIPs: []string{"198.18.0.11", "fd00::11"}},
				{Name: "m2", InternalIPs: []string{"198.18.0.12", "FD00::0:12"}},
			},
			want: []Backend{
				{Host: "m1", Address: "fd00::11", Port: 6443},
				{Host: "m2", Address: "fd00::12", Port: 6443},
			},
		},
		{
			name: "single-stack IPv4 VIP skips IPv6-only nodes",
			opts: v4,
			nodes: []Node{
				{Name: "m1", InternalIPs: []string{"fd00::11"}},
				{Name: "m2", InternalIPs: []string{"198.18.0.12"}},
			},
			want:        []Backend{{Host: "m2", Address: "198.18.0.12", Port: 6443}},
			wantSkipped: []string{"m1"},
		},
		{
			name: "dual-stack VIPs keep IPv6-only nodes and prefer the first family",
			opts: dual,
			nodes: []Node{
				{Name: "m1", InternalIPs: []string{"fd00::11"}},
				{Name: "m2", InternalIPs: []string{"fd00::12", "198.18.0.12"}},
			},
			want: []Backend{
				{Host: "m2", Address: "198.18.0.12", Port: 6443},
				{Host: "m1", Address: "fd00::11", Port: 6443},
			},
		},
		{
			name: "IPv4-mapped InternalIP counts as IPv4",
			opts: v4,
			nodes: []Node{
				{Name: "m1", InternalIPs: []string{"::ffff:198.18.0.11"}},
			},
			want: []Backend{{Host: "m1", Address: "198.18.0.11", Port: 6443}},
		},
		{
			name:        "nodes without InternalIP are skipped",
			opts:        v4,
			nodes:       []Node{{Name: "m1"}, {Name: "m2", InternalIPs: []string{"198.18.0.12"}}},
			want:        []Backend{{Host: "m2", Address: "198.18.0.12", Port: 6443}},
			wantSkipped: []string{"m1"},
		},
		{
			name: "no VIP takes the first InternalIP",
			opts: Options{APIPort: 7443},
			nodes: []Node{
				{Name: "m1", InternalIPs: []string{"fd00::11", "198.18.0.11"}},
			},
			want: []Backend{{Host: "m1", Address: "fd00::11", Port: 7443}},
		},
		{
			name: "odd names and addresses are refused, good ones kept",
			opts: v4,
			nodes: []Node{
				{Name: "m1 backup", InternalIPs: []string{"198.18.0.1"}},
				{Name: "m2\n  server evil 203.0.113.1:6443", InternalIPs: []string{"198.18.0.2"}},
				{Name: "m3", InternalIPs: []string{"198.18.0.3:6443"}},
				{Name: "m4", InternalIPs: []string{"198.18.0.4\nbind :80"}},
				{Name: "m5", InternalIPs: []string{"0.0.0.0"}},
				{Name: "m6", InternalIPs: []string{"fe80::1%eth0"}},
				{Name: "m7", InternalIPs: []string{"224.0.0.1"}},
				{Name: "m8", InternalIPs: []string{"010.0.0.8"}},
				{Name: "M9", InternalIPs: []string{"198.18.0.9"}},
				{Name: "", InternalIPs: []string{"198.18.0.10"}},
				{Name: "m11", InternalIPs: []string{"bogus", "198.18.0.11"}},
				{Name: "m11", InternalIPs: []string{"198.18.0.12"}},
				{Name: "m13", InternalIPs: []string{"198.18.0.11"}},
			},
			want:        []Backend{{Host: "m11", Address: "198.18.0.11", Port: 6443}},
			wantSkipped: []string{"m1 backup", "m2\n  server evil 203.0.113.1:6443", "m3", "m4", "m5", "m6", "m7", "m8", "M9", "", "m11", "m13"},
		},
		{
			name:  "no nodes gives an empty, non-nil list",
			opts:  v4,
			nodes: nil,
			want:  []Backend{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, skipped := Build(tc.nodes, tc.opts)
			if !reflect.DeepEqual(cfg.Backends, tc.want) {
				t.Errorf("backends:\n got %+v\nwant %+v", cfg.Backends, tc.want)
			}
			if cfg.FrontendAddr != tc.wantFrontend {
				t.Errorf("FrontendAddr = %q, want %q", cfg.FrontendAddr, tc.wantFrontend)
			}
			var names []string
			for _, s := range skipped {
				if s.Reason == "" {
					t.Errorf("skipped %q without a reason", s.Node)
				}
				names = append(names, s.Node)
			}
			if !reflect.DeepEqual(names, tc.wantSkipped) {
				t.Errorf("skipped = %q, want %q", names, tc.wantSkipped)
			}
			if cfg.ApiPort != tc.opts.APIPort || cfg.LbPort != tc.opts.LBPort || cfg.StatPort != tc.opts.StatPort {
				t.Errorf("ports not carried over: %+v", cfg)
			}
		})
	}
}

func TestBuildIsOrderIndependent(t *testing.T) {
	opts := Options{APIPort: 6443, VIPs: addrs("198.18.0.100")}
	a := []Node{{Name: "a", InternalIPs: []string{"198.18.0.2"}}, {Name: "b", InternalIPs: []string{"198.18.0.1"}}}
	b := []Node{a[1], a[0]}
	ca, _ := Build(a, opts)
	cb, _ := Build(b, opts)
	if !reflect.DeepEqual(ca, cb) {
		t.Fatalf("input order changed the result: %+v vs %+v", ca, cb)
	}
}

func TestVIPSubnets(t *testing.T) {
	p := netip.MustParsePrefix
	local := []netip.Prefix{p("10.0.0.5/32"), p("198.18.0.100/32"), p("198.19.0.0/16"), p("198.18.0.0/24"), p("fd00::/64"), p("fd00::100/128")}
	got := VIPSubnets(addrs("198.18.0.100", "fd00::100", "203.0.113.1", "::ffff:198.19.1.1"), local)
	want := []netip.Prefix{p("198.18.0.0/24"), p("fd00::/64"), {}, p("198.19.0.0/16")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A skipped node's reason says what was wrong with it: no InternalIP at
// all, none of the VIP's family (or none usable without a VIP), naming the
// first invalid address.
func TestBuildSkipReasons(t *testing.T) {
	v4 := Options{APIPort: 6443, VIPs: []netip.Addr{netip.MustParseAddr("198.18.0.100")}}
	for _, tc := range []struct {
		name string
		opts Options
		node Node
		want string
	}{
		{"no InternalIP", v4, Node{Name: "m1"}, "no InternalIP"},
		{"none of the VIP's family", v4, Node{Name: "m1", InternalIPs: []string{"fd00::1"}}, "no InternalIP usable for the VIP address family"},
		{"no VIP, none usable", Options{APIPort: 6443}, Node{Name: "m1", InternalIPs: []string{"bogus"}}, "no usable InternalIP ("},
		{"the first invalid address named", v4, Node{Name: "m1", InternalIPs: []string{"first-bad", "second-bad"}}, "first-bad"},
	} {
		_, skipped := Build([]Node{tc.node}, tc.opts)
		if len(skipped) != 1 || !strings.HasPrefix(skipped[0].Reason, tc.want) && !strings.Contains(skipped[0].Reason, tc.want) {
			t.Errorf("%s: skipped %+v, want a reason with %q", tc.name, skipped, tc.want)
		}
		if tc.name == "the first invalid address named" && strings.Contains(skipped[0].Reason, "second-bad") {
			t.Errorf("%s: %q names the second invalid address", tc.name, skipped[0].Reason)
		}
		if tc.name == "none of the VIP's family" && strings.HasPrefix(skipped[0].Reason, "no usable") {
			t.Errorf("%s: %q", tc.name, skipped[0].Reason)
		}
	}
}
