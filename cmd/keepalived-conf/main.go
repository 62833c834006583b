// Command keepalived-conf renders keepalived.conf for one control-plane node,
// for the keepalived static pod (README, "Deploying the static pods"):
//
//	keepalived-conf -interface eth0 -vips 198.18.0.100 -priority 100 -auth-pass s3cret > keepalived.conf
//
// The template is templates/keepalived.conf.tmpl, built in; -template reads
// another file instead.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
	"github.com/haproxy-monitor/haproxy-monitor/templates"
)

const usage = `usage: keepalived-conf -interface IFACE -vips VIP[,VIP] -auth-pass PASS [-priority N] [-vrid N] [-health-url URL]
                       [-track-file PATH] [-advert-int SECONDS] [-template FILE]

Renders keepalived.conf for one control-plane node to standard output. Give
every node the same -vips, -vrid and -auth-pass and a different -priority.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keepalived-conf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	c := keepalived.Config{}
	var vips string
	tmpl := fs.String("template", "", "template file (default: the built-in templates/keepalived.conf.tmpl)")
	fs.StringVar(&c.Interface, "interface", "", "interface the VIP lives on (required)")
	fs.StringVar(&vips, "vips", "", "comma-separated VIPs (required)")
	fs.IntVar(&c.VirtualRouterID, "vrid", 51, "VRRP virtual router id; with IPv4 and IPv6 VIPs the IPv6 instance uses vrid+1")
	fs.IntVar(&c.Priority, "priority", 100, "VRRP priority of this node, 1-254")
	fs.StringVar(&c.AuthPass, "auth-pass", "", "VRRPv2 password, 1-8 letters or digits, the same on every node (required)")
	fs.StringVar(&c.HealthURL, "health-url", "http://127.0.0.1:9444/haproxy_ready", "haproxy monitor-uri for the track script")
	fs.StringVar(&c.TrackFile, "track-file", "", "the file haproxy-monitor writes (--keepalived-track-file), read with weight -1: -253 raises the priority to 254, 253 drops it to 1, 254 is FAULT at once")
	fs.StringVar(&c.AdvertInt, "advert-int", "1", "VRRP advert interval in seconds; below 1 uses VRRPv3 (no -auth-pass needed)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keepalived-conf: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	for _, v := range strings.Split(vips, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil {
			fmt.Fprintln(stderr, "keepalived-conf: -vips:", err)
			fs.Usage()
			return 2
		}
		c.VIPs = append(c.VIPs, a)
	}
	text := templates.KeepalivedConf
	if *tmpl != "" {
		b, err := os.ReadFile(*tmpl)
		if err != nil {
			fmt.Fprintln(stderr, "keepalived-conf:", err)
			return 1
		}
		text = string(b)
	}
	out, err := keepalived.RenderText(text, c)
	if err != nil {
		fmt.Fprintln(stderr, "keepalived-conf:", err)
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}
