package setup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
)

// What CheckNetwork looks at before a node is set up: keepalived adds a VIP
// whatever else is on the network, so an address another host already has,
// or a virtual router id another VRRP group uses, breaks the API only once
// the static pods run. Both can be seen from the wire first.

// Advert is a VRRP advertisement seen on the interface.
type Advert struct {
	From     netip.Addr
	Version  int
	RouterID int
	Addrs    []netip.Addr
	// AuthPass is a VRRPv2 simple password as sent (at most 8 bytes, NULs
	// trimmed); empty without authentication.
	AuthPass string
	HasAuth  bool
}

// Answer is a host that answered ARP for a VIP (or announced it).
type Answer struct {
	VIP netip.Addr
	MAC net.HardwareAddr
}

// vrrpProto is VRRP's IP protocol number.
const vrrpProto = 112

// parseVRRP4 reads a VRRP advertisement (RFC 3768 version 2, RFC 5798
// version 3) from an IPv4 packet, IP header included, as a raw socket
// returns it.
func parseVRRP4(pkt []byte) (Advert, error) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return Advert{}, errors.New("not an IPv4 packet")
	}
	ihl := int(pkt[0]&0x0f) * 4
	if ihl < 20 || len(pkt) < ihl || pkt[9] != vrrpProto {
		return Advert{}, errors.New("not a VRRP packet")
	}
	from, _ := netip.AddrFromSlice(pkt[12:16])
	v := pkt[ihl:]
	if len(v) < 8 {
		return Advert{}, errors.New("short VRRP packet")
	}
	a := Advert{From: from, Version: int(v[0] >> 4), RouterID: int(v[1])}
	if v[0]&0x0f != 1 {
		return Advert{}, fmt.Errorf("VRRP type %d is not an advertisement", v[0]&0x0f)
	}
	if a.Version != 2 && a.Version != 3 {
		return Advert{}, fmt.Errorf("VRRP version %d", a.Version)
	}
	n := int(v[3])
	if len(v) < 8+4*n {
		return Advert{}, errors.New("VRRP packet shorter than its address count")
	}
	for i := 0; i < n; i++ {
		ip, _ := netip.AddrFromSlice(v[8+4*i : 12+4*i])
		a.Addrs = append(a.Addrs, ip)
	}
	if a.Version == 2 && v[4] == 1 { // simple text password
		if auth := v[8+4*n:]; len(auth) >= 8 {
			a.HasAuth = true
			a.AuthPass = strings.TrimRight(string(auth[:8]), "\x00")
		}
	}
	return a, nil
}

// parseARP reads an ARP packet for IPv4 over Ethernet (without the Ethernet
// header, as a SOCK_DGRAM packet socket returns it): who sent it, for what
// address.
func parseARP(pkt []byte) (op int, mac net.HardwareAddr, sender netip.Addr, ok bool) {
	if len(pkt) < 28 || binary.BigEndian.Uint16(pkt[0:2]) != 1 || binary.BigEndian.Uint16(pkt[2:4]) != 0x0800 ||
		pkt[4] != 6 || pkt[5] != 4 {
		return 0, nil, netip.Addr{}, false
	}
	sender, _ = netip.AddrFromSlice(pkt[14:18])
	return int(binary.BigEndian.Uint16(pkt[6:8])), net.HardwareAddr(slices.Clone(pkt[8:14])), sender, true
}

// arpProbe is an ARP request for vip from mac with sender address 0.0.0.0
// (RFC 5227's probe: it leaves no entry in anyone's cache).
func arpProbe(mac net.HardwareAddr, vip netip.Addr) []byte {
	p := make([]byte, 28)
	binary.BigEndian.PutUint16(p[0:2], 1)      // Ethernet
	binary.BigEndian.PutUint16(p[2:4], 0x0800) // IPv4
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:8], 1) // request
	copy(p[8:14], mac)
	v := vip.As4()
	copy(p[24:28], v[:])
	return p
}

// judgeNetwork decides from what was seen on the interface whether k can
// take its VIPs there. Adverts of k's virtual router must carry exactly
// k's IPv4 VIPs (and, for VRRPv2, its password): anything else is another
// VRRP group on the same router id, or nodes of this cluster set up with
// different flags. A VIP that a host answers for must be carried by such an
// advert: then it is this cluster's holder; otherwise another host has it.
func judgeNetwork(k keepalived.Config, answers []Answer, adverts []Advert) error {
	var mine []netip.Addr
	for _, v := range k.VIPs {
		if v = v.Unmap(); v.Is4() {
			mine = append(mine, v)
		}
	}
	slices.SortFunc(mine, netip.Addr.Compare)
	carried := map[netip.Addr]bool{}
	for _, a := range adverts {
		if a.RouterID != k.VirtualRouterID {
			continue
		}
		got := slices.Clone(a.Addrs)
		slices.SortFunc(got, netip.Addr.Compare)
		if !slices.Equal(got, mine) {
			return fmt.Errorf("virtual router %d is already announced on %s by %s with %v, not %v: another VRRP group uses this router id (choose another -vrid), or this cluster's nodes were set up with other -vips",
				k.VirtualRouterID, k.Interface, a.From, a.Addrs, mine)
		}
		if want := truncatePass(k.AuthPass); a.Version == 2 && !k.VRRPv3() && (!a.HasAuth || a.AuthPass != want) {
			return fmt.Errorf("virtual router %d is announced on %s by %s with another -auth-pass: keepalived would drop its adverts and both nodes would hold the VIP",
				k.VirtualRouterID, k.Interface, a.From)
		}
		for _, ip := range a.Addrs {
			carried[ip] = true
		}
	}
	for _, ans := range answers {
		if carried[ans.VIP] {
			continue
		}
		for _, a := range adverts {
			if slices.Contains(a.Addrs, ans.VIP) {
				return fmt.Errorf("VIP %s is announced on %s by %s on virtual router %d, not %d: is -vrid right?",
					ans.VIP, k.Interface, a.From, a.RouterID, k.VirtualRouterID)
			}
		}
		return fmt.Errorf("VIP %s is in use on %s: %s answers for it, and no VRRP advert of virtual router %d carries it: another host has this address",
			ans.VIP, k.Interface, ans.MAC, k.VirtualRouterID)
	}
	return nil
}

// truncatePass is a VRRPv2 password as it goes on the wire: 8 bytes at most.
func truncatePass(p string) string {
	if len(p) > 8 {
		return p[:8]
	}
	return p
}
