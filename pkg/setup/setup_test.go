package setup

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
)

// eth0 has an IPv4 /24 and an IPv6 /64; nothing else exists.
func prefixes(iface string) ([]netip.Prefix, error) {
	if iface != "eth0" {
		return nil, errors.New("no such network interface")
	}
	return []netip.Prefix{netip.MustParsePrefix("198.18.0.11/24"), netip.MustParsePrefix("fd00:198:18::11/64")}, nil
}

func options(installer string, vips ...string) Options {
	o := Options{Installer: installer, Image: "registry.example/haproxy-monitor:v1", Prefixes: prefixes,
		Keepalived: keepalived.Config{Interface: "eth0", VirtualRouterID: 51, Priority: 101, AuthPass: "s3cret", AdvertInt: "1"}}
	for _, v := range vips {
		o.Keepalived.VIPs = append(o.Keepalived.VIPs, netip.MustParseAddr(v))
	}
	return o
}

func decode(t *testing.T, files []File, name string) *corev1.Pod {
	t.Helper()
	for _, f := range files {
		if f.Path == filepath.Join(ManifestDir, name) {
			var p corev1.Pod
			if err := yaml.UnmarshalStrict(f.Data, &p); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return &p
		}
	}
	t.Fatalf("no %s planned", name)
	return nil
}

func TestPlanPerInstaller(t *testing.T) {
	for name, inst := range Installers {
		t.Run(name, func(t *testing.T) {
			files, err := Plan(options(name, "198.18.0.100", "fd00:198:18::100"))
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, f := range files {
				paths = append(paths, f.Path)
			}
			// The pods' inputs first, their manifests last, haproxy's at the very end.
			want := []string{HAProxyResource + "/haproxy.cfg.tmpl", KeepalivedConf, ManifestDir + "/keepalived.yaml", ManifestDir + "/haproxy.yaml"}
			if strings.Join(paths, " ") != strings.Join(want, " ") {
				t.Fatalf("planned %v, want %v", paths, want)
			}
			hap := decode(t, files, "haproxy.yaml")
			kad := decode(t, files, "keepalived.yaml")
			for _, p := range []*corev1.Pod{hap, kad} {
				if p.Namespace != inst.Namespace {
					t.Errorf("%s in namespace %q, want %q", p.Name, p.Namespace, inst.Namespace)
				}
				for _, c := range p.Spec.Containers {
					if c.Image != "registry.example/haproxy-monitor:v1" {
						t.Errorf("%s/%s runs %q", p.Name, c.Name, c.Image)
					}
				}
			}
			var kc string
			for _, v := range hap.Spec.Volumes {
				if v.Name == "kubelet-kubeconfig" {
					kc = v.HostPath.Path
				}
			}
			if kc != inst.Kubeconfig {
				t.Errorf("kubelet kubeconfig from %q, want %q", kc, inst.Kubeconfig)
			}
			var cmd string
			for _, c := range hap.Spec.Containers {
				if c.Name == "haproxy-monitor" {
					cmd = strings.Join(c.Command, " ")
				}
			}
			if !strings.Contains(cmd, "--api-vips 198.18.0.100,fd00:198:18::100 ") {
				t.Errorf("monitor command line without the VIPs: %s", cmd)
			}
			conf := string(files[1].Data)
			for _, s := range []string{"interface eth0", "priority 101", "198.18.0.100/32", "fd00:198:18::100/128", TrackFile, "http://127.0.0.1:9444/haproxy_ready"} {
				if !strings.Contains(conf, s) {
					t.Errorf("keepalived.conf lacks %q:\n%s", s, conf)
				}
			}
		})
	}
}

func TestPlanRefusesBadInput(t *testing.T) {
	cases := map[string]struct {
		edit func(*Options)
		want string
	}{
		"unknown installer":     {func(o *Options) { o.Installer = "kops" }, `unknown installer "kops"`},
		"missing interface":     {func(o *Options) { o.Keepalived.Interface = "eth9" }, `interface "eth9"`},
		"VIP outside subnets":   {func(o *Options) { o.Keepalived.VIPs = []netip.Addr{netip.MustParseAddr("198.19.0.100")} }, "in none of the subnets on eth0"},
		"IPv6 VIP outside":      {func(o *Options) { o.Keepalived.VIPs = []netip.Addr{netip.MustParseAddr("fd00:1::100")} }, "in none of the subnets"},
		"no VIP":                {func(o *Options) { o.Keepalived.VIPs = nil }, "no VIP"},
		"VIP twice":             {func(o *Options) { o.Keepalived.VIPs = append(o.Keepalived.VIPs, o.Keepalived.VIPs[0]) }, "given twice"},
		"priority 0":            {func(o *Options) { o.Keepalived.Priority = 0 }, "priority"},
		"priority 255":          {func(o *Options) { o.Keepalived.Priority = 255 }, "priority"},
		"no password for VRRP2": {func(o *Options) { o.Keepalived.AuthPass = "" }, "auth pass"},
		"no image":              {func(o *Options) { o.Image = "" }, "image"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o := options("kubeadm", "198.18.0.100")
			tc.edit(&o)
			files, err := Plan(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Plan = %d files, %v; want an error with %q", len(files), err, tc.want)
			}
		})
	}
}

// A second write of the same plan changes nothing, not even a file's time.
func TestWriteIsIdempotent(t *testing.T) {
	root := t.TempDir()
	files, err := Plan(options("kubeadm", "198.18.0.100"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := Write(context.Background(), root, files)
	if err != nil {
		t.Fatal(err)
	}
	stat := map[string]os.FileInfo{}
	for _, r := range first {
		if !r.Changed {
			t.Errorf("%s not written the first time", r.Path)
		}
		st, err := os.Stat(r.Path)
		if err != nil {
			t.Fatal(err)
		}
		stat[r.Path] = st
	}
	second, err := Write(context.Background(), root, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range second {
		st, err := os.Stat(r.Path)
		if err != nil {
			t.Fatal(err)
		}
		if r.Changed || !st.ModTime().Equal(stat[r.Path].ModTime()) {
			t.Errorf("%s changed by the second run", r.Path)
		}
	}
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(root, f.Path))
		if err != nil || !bytes.Equal(got, f.Data) {
			t.Errorf("%s holds other content (%v)", f.Path, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(root, ManifestDir))
	if len(entries) != 2 {
		t.Errorf("manifest dir holds %d entries, want the two manifests (no temporary files)", len(entries))
	}
}
