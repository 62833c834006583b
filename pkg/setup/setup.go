// Package setup plans and writes what one control-plane node needs before
// its installer (kubeadm, OpenShift) starts the kubelet: the haproxy and
// keepalived static pods, keepalived.conf for this node, and the haproxy
// template. Plan is pure and refuses bad input before anything is written;
// Write is atomic per file and changes nothing on a second run.
package setup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/haproxy-monitor/haproxy-monitor/manifests"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/apply"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
	"github.com/haproxy-monitor/haproxy-monitor/templates"
)

// Installer is what differs between the installers the static pods run
// under: where the kubelet's kubeconfig is, and the namespace the mirror
// pods go to (it must exist, or the API refuses them).
type Installer struct {
	Kubeconfig string
	Namespace  string
}

// Installers are the known installers by name.
var Installers = map[string]Installer{
	"kubeadm":   {Kubeconfig: "/etc/kubernetes/kubelet.conf", Namespace: "kube-system"},
	"openshift": {Kubeconfig: "/var/lib/kubelet/kubeconfig", Namespace: "openshift-openstack-infra"},
}

// Where the files go on a node, and where the containers see them.
const (
	ManifestDir     = "/etc/kubernetes/manifests"
	HAProxyResource = "/etc/kubernetes/static-pod-resources/haproxy"
	KeepalivedConf  = "/etc/kubernetes/static-pod-resources/keepalived/keepalived.conf"
	// The track file as both containers see it (hostPath /run/haproxy-monitor).
	TrackFile = "/var/run/haproxy-monitor/haproxy"
	// shippedVIP is the placeholder VIP in manifests/haproxy.yaml.
	shippedVIP = "198.18.0.100"
)

// Options are one node's settings.
type Options struct {
	Installer string
	// Keepalived is this node's VRRP settings: Interface, VIPs, Priority,
	// VirtualRouterID, AuthPass, AdvertInt. HealthURL and TrackFile default
	// to the shipped template's and manifests'.
	Keepalived keepalived.Config
	// Image runs every container.
	Image string
	// Prefixes lists the addresses on an interface; nil reads the host's.
	Prefixes func(iface string) ([]netip.Prefix, error)
}

// File is one file to write, at its path on the node.
type File struct {
	Path string
	Data []byte
}

// Plan checks o and returns the files, in the order they must be written:
// what the pods read first, their manifests last (the kubelet starts a pod
// as soon as its manifest appears).
func Plan(o Options) ([]File, error) {
	inst, ok := Installers[o.Installer]
	if !ok {
		return nil, fmt.Errorf("unknown installer %q (known: %s)", o.Installer, strings.Join(installerNames(), ", "))
	}
	if o.Image == "" || strings.ContainsAny(o.Image, " \t\n") {
		return nil, fmt.Errorf("image %q is not an image reference", o.Image)
	}
	k := o.Keepalived
	if k.HealthURL == "" {
		k.HealthURL = keepalived.DefaultHealthURL
	}
	if k.TrackFile == "" {
		k.TrackFile = TrackFile
	}
	if err := checkVIPs(k, o.Prefixes); err != nil {
		return nil, err
	}
	conf, err := keepalived.RenderText(templates.KeepalivedConf, k)
	if err != nil {
		return nil, err
	}
	vips := make([]string, len(k.VIPs))
	for i, v := range k.VIPs {
		vips[i] = v.String()
	}
	hap, err := pod("haproxy.yaml", inst, o.Image, func(p *corev1.Pod) error {
		return setMonitorVIPs(p, strings.Join(vips, ","))
	})
	if err != nil {
		return nil, err
	}
	kad, err := pod("keepalived.yaml", inst, o.Image, nil)
	if err != nil {
		return nil, err
	}
	return []File{
		{Path: filepath.Join(HAProxyResource, "haproxy.cfg.tmpl"), Data: []byte(templates.HAProxyCfg)},
		{Path: KeepalivedConf, Data: conf},
		{Path: filepath.Join(ManifestDir, "keepalived.yaml"), Data: kad},
		{Path: filepath.Join(ManifestDir, "haproxy.yaml"), Data: hap},
	}, nil
}

func installerNames() []string {
	var names []string
	for n := range Installers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// checkVIPs wants the interface to exist and every VIP to lie in one of its
// subnets, of the VIP's family: keepalived would add a VIP anywhere, and
// nobody on the network could reach it.
func checkVIPs(k keepalived.Config, prefixes func(string) ([]netip.Prefix, error)) error {
	if len(k.VIPs) == 0 {
		return errors.New("no VIP given")
	}
	if prefixes == nil {
		prefixes = InterfacePrefixes
	}
	have, err := prefixes(k.Interface)
	if err != nil {
		return fmt.Errorf("interface %q: %w", k.Interface, err)
	}
	seen := map[netip.Addr]bool{}
	for _, v := range k.VIPs {
		v = v.Unmap()
		if seen[v] {
			return fmt.Errorf("VIP %s given twice", v)
		}
		seen[v] = true
		in := false
		for _, p := range have {
			in = in || (p.Addr().Is4() == v.Is4() && p.Masked().Contains(v) && p.Bits() < p.Addr().BitLen())
		}
		if !in {
			return fmt.Errorf("VIP %s is in none of the subnets on %s (%v): the other nodes could not reach it there", v, k.Interface, have)
		}
	}
	return nil
}

// InterfacePrefixes lists the addresses, with their prefix lengths, on the
// host's interface name.
func InterfacePrefixes(name string) ([]netip.Prefix, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if p, err := netip.ParsePrefix(n.String()); err == nil {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// pod is a shipped manifest for this installer and image, changed by edit.
func pod(name string, inst Installer, image string, edit func(*corev1.Pod) error) ([]byte, error) {
	p, err := manifests.Pod(name)
	if err != nil {
		return nil, err
	}
	p.Namespace = inst.Namespace
	for i := range p.Spec.Containers {
		p.Spec.Containers[i].Image = image
	}
	for i, v := range p.Spec.Volumes {
		if v.Name == "kubelet-kubeconfig" && v.HostPath != nil {
			p.Spec.Volumes[i].HostPath.Path = inst.Kubeconfig
		}
	}
	if edit != nil {
		if err := edit(p); err != nil {
			return nil, err
		}
	}
	b, err := yaml.Marshal(p)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Written by node-setup (haproxy-monitor); a second run with the same flags changes nothing.\n"), b...), nil
}

// setMonitorVIPs puts the VIPs on the monitor's command line.
func setMonitorVIPs(p *corev1.Pod, vips string) error {
	for i, c := range p.Spec.Containers {
		if c.Name != "haproxy-monitor" {
			continue
		}
		for j, arg := range c.Command {
			if strings.Contains(arg, "--api-vips "+shippedVIP) {
				p.Spec.Containers[i].Command[j] = strings.ReplaceAll(arg, "--api-vips "+shippedVIP, "--api-vips "+vips)
				return nil
			}
		}
	}
	return errors.New("manifests/haproxy.yaml: no monitor command line with --api-vips " + shippedVIP)
}

// Result is what Write did to one file.
type Result struct {
	Path    string
	Changed bool
}

// Write puts files in place under root ("/" on a node), each atomically (a
// temporary dot-file beside it, which the kubelet ignores, renamed), and
// leaves a file that already holds its content untouched.
func Write(ctx context.Context, root string, files []File) ([]Result, error) {
	var out []Result
	for _, f := range files {
		path := filepath.Join(root, f.Path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return out, err
		}
		changed, err := (&apply.File{Path: path, DefaultMode: 0o644}).Apply(ctx, f.Data)
		if err != nil {
			return out, fmt.Errorf("writing %s: %w", path, err)
		}
		out = append(out, Result{Path: path, Changed: changed})
	}
	return out, nil
}
