package lbconfig

import (
	"fmt"
	"net/netip"
	"regexp"
)

// A Kubernetes node name is a DNS-1123 subdomain. Anything else in the name
// field could break out of the haproxy "server" line, so it is refused rather
// than escaped: haproxy has no quoting for server names.
var nodeNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

const maxNodeNameLen = 253

// ValidateNodeName reports whether name is safe to use as a haproxy server name.
func ValidateNodeName(name string) error {
	if name == "" {
		return fmt.Errorf("empty node name")
	}
	if len(name) > maxNodeNameLen {
		return fmt.Errorf("node name is %d characters, more than %d", len(name), maxNodeNameLen)
	}
	if !nodeNameRE.MatchString(name) {
		return fmt.Errorf("node name %q is not a DNS-1123 subdomain", name)
	}
	return nil
}

// ParseAddress parses an InternalIP into an address haproxy can connect to.
// Zones are refused (they are free text), as are addresses no apiserver can
// listen on.
func ParseAddress(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q: %w", s, err)
	}
	switch {
	case a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("address %q: zoned addresses are not supported", s)
	case a.IsUnspecified():
		return netip.Addr{}, fmt.Errorf("address %q is unspecified", s)
	case a.IsMulticast():
		return netip.Addr{}, fmt.Errorf("address %q is multicast", s)
	case a.Is6() && !a.Is4In6() && a.IsLinkLocalUnicast():
		// Meaningless without a zone, which is refused above.
		return netip.Addr{}, fmt.Errorf("address %q is IPv6 link-local", s)
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.Addr{}, fmt.Errorf("address %q is broadcast", s)
	}
	// ::ffff:a.b.c.d is an IPv4 node published in IPv6 notation; treat it as IPv4
	// so it matches IPv4 VIPs and renders as haproxy expects.
	return a.Unmap(), nil
}
