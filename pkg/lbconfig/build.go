package lbconfig

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// Build computes the template data for nodes under opts. Nodes that yield no
// usable backend are returned in skipped with the reason, in input order.
//
// Address selection follows the original monitor: the InternalIP inside the
// local subnet of the first VIP, else the first InternalIP of the first VIP's
// family. Where the original then gave up, a node is tried against the next
// VIPs in order, so a dual-stack cluster keeps single-stack members.
func Build(nodes []Node, opts Options) (cfg LBConfig, skipped []Skipped) {
	cfg = LBConfig{
		ApiPort:  opts.APIPort,
		LbPort:   opts.LBPort,
		StatPort: opts.StatPort,
		Backends: []Backend{},
	}
	if len(opts.VIPs) > 0 && opts.VIPs[0].Is6() && !opts.VIPs[0].Is4In6() {
		cfg.FrontendAddr = "::"
	}

	seenHost := make(map[string]bool, len(nodes))
	seenAddr := make(map[netip.Addr]string, len(nodes))
	for _, n := range nodes {
		if err := ValidateNodeName(n.Name); err != nil {
			skipped = append(skipped, Skipped{Node: n.Name, Reason: err.Error()})
			continue
		}
		if seenHost[n.Name] {
			skipped = append(skipped, Skipped{Node: n.Name, Reason: "duplicate node name"})
			continue
		}
		addrs, bad := parseAddresses(n.InternalIPs)
		addr, ok := selectAddress(addrs, opts)
		if !ok {
			reason := "no InternalIP usable for the VIP address family"
			if len(opts.VIPs) == 0 {
				reason = "no usable InternalIP"
			}
			if len(n.InternalIPs) == 0 {
				reason = "no InternalIP"
			} else if bad != "" {
				reason += " (" + bad + ")"
			}
			skipped = append(skipped, Skipped{Node: n.Name, Reason: reason})
			continue
		}
		if other, dup := seenAddr[addr]; dup {
			skipped = append(skipped, Skipped{Node: n.Name, Reason: "address " + addr.String() + " already used by node " + other})
			continue
		}
		seenHost[n.Name] = true
		seenAddr[addr] = n.Name
		cfg.Backends = append(cfg.Backends, Backend{Host: n.Name, Address: addr.String(), Port: opts.APIPort})
	}
	// The original sorts by the address string; keep that order so existing
	// templates render byte for byte the same. Name breaks ties for stability.
	slices.SortFunc(cfg.Backends, func(a, b Backend) int {
		return cmp.Or(strings.Compare(a.Address, b.Address), strings.Compare(a.Host, b.Host))
	})
	return cfg, skipped
}

// parseAddresses keeps the valid addresses in order and describes the first
// invalid one, for the skip reason.
func parseAddresses(raw []string) (addrs []netip.Addr, firstBad string) {
	for _, s := range raw {
		a, err := ParseAddress(s)
		if err != nil {
			if firstBad == "" {
				firstBad = err.Error()
			}
			continue
		}
		addrs = append(addrs, a)
	}
	return addrs, firstBad
}

func selectAddress(addrs []netip.Addr, opts Options) (netip.Addr, bool) {
	if len(addrs) == 0 {
		return netip.Addr{}, false
	}
	if len(opts.VIPs) == 0 {
		return addrs[0], true
	}
	for i, vip := range opts.VIPs {
		if i < len(opts.VIPSubnets) && opts.VIPSubnets[i].IsValid() {
			for _, a := range addrs {
				if opts.VIPSubnets[i].Contains(a) {
					return a, true
				}
			}
		}
		for _, a := range addrs {
			if a.Is4() == vip.Unmap().Is4() {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// VIPSubnets finds, for each VIP, the first local prefix that contains it;
// the zero Prefix where none does. Host prefixes (/32, /128) are ignored:
// keepalived adds the VIP itself that way, and no node address lies in it.
func VIPSubnets(vips []netip.Addr, local []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(vips))
	for i, v := range vips {
		for _, p := range local {
			if p.Bits() < p.Addr().BitLen() && p.Contains(v.Unmap()) {
				out[i] = p
				break
			}
		}
	}
	return out
}
