// Command node-setup writes everything one control-plane node needs before
// its installer starts the kubelet (before "kubeadm init" or "kubeadm join"):
// the haproxy and keepalived static pods for this installer, with the VIPs
// and the image, keepalived.conf with this node's interface and priority,
// and the haproxy template. Run it on every control-plane node, with the
// same -vips, -vrid and -auth-pass and a different -priority:
//
//	node-setup -installer kubeadm -interface eth0 -vips 198.18.0.100 -priority 100 -auth-pass s3cret
//
// Every input is checked before anything is written; a second run with the
// same flags changes nothing; -dry-run prints what would be written.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/setup"
)

const usage = `usage: node-setup -installer kubeadm|openshift -interface IFACE -vips VIP[,VIP] -auth-pass PASS
                  [-priority N] [-vrid N] [-advert-int SECONDS] [-image IMAGE] [-root DIR] [-dry-run]
                  [-check-network=false]

Writes the haproxy and keepalived static pods, keepalived.conf and the haproxy
template for this control-plane node, before the installer starts the kubelet.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, nil, setup.CheckNetwork))
}

// run is main with its outputs, the interface lookup and the look at the
// network given.
func run(args []string, stdout, stderr io.Writer, prefixes func(string) ([]netip.Prefix, error),
	check func(context.Context, keepalived.Config) error) int {
	fs := flag.NewFlagSet("node-setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	o := setup.Options{Prefixes: prefixes}
	vips := o.Keepalived.Flags(fs)
	fs.StringVar(&o.Installer, "installer", "kubeadm", "the installer the kubelet comes from: kubeadm (kubeconfig /etc/kubernetes/kubelet.conf, namespace kube-system) or openshift (/var/lib/kubelet/kubeconfig, openshift-openstack-infra)")
	fs.StringVar(&o.Image, "image", "localhost/haproxy-monitor:latest", "image of every container (the Containerfile's)")
	root := fs.String("root", "/", "the node's root directory; the files go below it")
	dry := fs.Bool("dry-run", false, "print what would be written and change nothing")
	checkNet := fs.Bool("check-network", true, "before writing, listen for VRRP adverts of this virtual router (3 advert intervals) and send ARP probes for the IPv4 VIPs: refuse a VIP another host has, and a router id another VRRP group announces (needs root)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "node-setup: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if err := vips(); err != nil {
		fmt.Fprintln(stderr, "node-setup:", err)
		fs.Usage()
		return 2
	}
	files, err := setup.Plan(o)
	if err == nil && *checkNet {
		err = check(context.Background(), o.Keepalived)
	}
	if err != nil {
		fmt.Fprintln(stderr, "node-setup: nothing written:", err)
		return 1
	}
	if *dry {
		for _, f := range files {
			fmt.Fprintf(stdout, "--- %s (dry run: not written)\n%s", filepath.Join(*root, f.Path), f.Data)
			if !strings.HasSuffix(string(f.Data), "\n") {
				fmt.Fprintln(stdout)
			}
		}
		return 0
	}
	results, err := setup.Write(context.Background(), *root, files)
	for _, r := range results {
		what := "unchanged"
		if r.Changed {
			what = "written"
		}
		fmt.Fprintf(stdout, "%-9s %s\n", what, r.Path)
	}
	if err != nil {
		fmt.Fprintln(stderr, "node-setup:", err)
		return 1
	}
	return 0
}
