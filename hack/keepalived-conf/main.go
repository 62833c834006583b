// Command keepalived-conf renders templates/keepalived.conf.tmpl for one
// control-plane node, for the keepalived static pod:
//
//	go run ./hack/keepalived-conf -interface eth0 -vips 198.18.0.100 -priority 100 > keepalived.conf
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
)

func main() {
	c := keepalived.Config{}
	var vips string
	tmpl := flag.String("template", "templates/keepalived.conf.tmpl", "template path")
	flag.StringVar(&c.Interface, "interface", "", "interface the VIP lives on")
	flag.StringVar(&vips, "vips", "", "comma-separated VIPs")
	flag.IntVar(&c.VirtualRouterID, "vrid", 51, "VRRP virtual router id (the IPv6 instance uses vrid+1)")
	flag.IntVar(&c.Priority, "priority", 100, "VRRP priority of this node")
	flag.StringVar(&c.AuthPass, "auth-pass", "", "VRRPv2 password, 1-8 letters or digits, the same on every node")
	flag.StringVar(&c.HealthURL, "health-url", "http://127.0.0.1:50936/haproxy_ready", "haproxy monitor-uri for the track script")
	flag.Parse()
	for _, v := range strings.Split(vips, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil {
			fmt.Fprintln(os.Stderr, "keepalived-conf: -vips:", err)
			os.Exit(2)
		}
		c.VIPs = append(c.VIPs, a)
	}
	out, err := keepalived.Render(*tmpl, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "keepalived-conf:", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}
