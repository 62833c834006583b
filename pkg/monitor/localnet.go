package monitor

import (
	"net"
	"net/netip"
)

// hostPrefixes lists the prefixes configured on local interfaces; selection
// (lbconfig.VIPSubnets) decides what they mean.
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

// holdsVIP reports whether any VIP is on a local interface (keepalived put
// it there).
func holdsVIP(vips []netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipnet.IP)
		for _, v := range vips {
			if ok && ip.Unmap() == v.Unmap() {
				return true
			}
		}
	}
	return false
}
