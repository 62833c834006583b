package monitor

import (
	"net"
	"net/netip"
)

// hostPrefixes lists the prefixes configured on local interfaces.
func hostPrefixes() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipnet.IP)
		if !ok {
			continue
		}
		ones, _ := ipnet.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones).Masked())
	}
	return out, nil
}

// vipSubnets finds, for each VIP, the first local prefix that contains it.
// Host prefixes (/32, /128) are ignored: keepalived adds the VIP itself that
// way, and no node address lies in it.
func vipSubnets(vips []netip.Addr, prefixes []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(vips))
	for i, v := range vips {
		for _, p := range prefixes {
			if p.Bits() < p.Addr().BitLen() && p.Contains(v.Unmap()) {
				out[i] = p
				break
			}
		}
	}
	return out
}
