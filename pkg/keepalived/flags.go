package keepalived

import (
	"flag"
	"fmt"
	"net/netip"
	"strings"
)

// DefaultHealthURL is haproxy's monitor-uri in the shipped template, which
// the check script probes.
const DefaultHealthURL = "http://127.0.0.1:9444/haproxy_ready"

// Flags registers one node's VRRP settings on fs (keepalived-conf and
// node-setup share them) and returns the function that completes c after
// fs.Parse: the VIPs list.
func (c *Config) Flags(fs *flag.FlagSet) (parsed func() error) {
	var vips string
	fs.StringVar(&c.Interface, "interface", "", "interface the VIP lives on (required)")
	fs.StringVar(&vips, "vips", "", "comma-separated VIPs (required)")
	fs.IntVar(&c.VirtualRouterID, "vrid", 51, "VRRP virtual router id; with IPv4 and IPv6 VIPs the IPv6 instance uses vrid+1")
	fs.IntVar(&c.Priority, "priority", 100, "VRRP priority of this node, 1-254")
	fs.StringVar(&c.AuthPass, "auth-pass", "", "VRRPv2 password, 1-8 letters or digits, the same on every node (required unless -advert-int is below 1)")
	fs.StringVar(&c.AdvertInt, "advert-int", "1", "VRRP advert interval in seconds; below 1 uses VRRPv3 (no -auth-pass needed)")
	return func() error {
		c.VIPs = nil
		for _, v := range strings.Split(vips, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("-vips: %w", err)
			}
			c.VIPs = append(c.VIPs, a)
		}
		return nil
	}
}
