package main

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
)

func eth0(iface string) ([]netip.Prefix, error) {
	if iface != "eth0" {
		return nil, errors.New("no such network interface")
	}
	return []netip.Prefix{netip.MustParsePrefix("198.18.0.11/24")}, nil
}

// quiet is a network with nothing on it.
func quiet(context.Context, keepalived.Config) error { return nil }

// files lists what is under root.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			out = append(out, strings.TrimPrefix(p, root))
		}
		return nil
	})
	return out
}

func TestRunTwiceChangesNothing(t *testing.T) {
	root := t.TempDir()
	args := []string{"-interface", "eth0", "-vips", "198.18.0.100", "-priority", "101", "-auth-pass", "s3cret", "-root", root}
	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut, eth0, quiet); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if n := strings.Count(out.String(), "written "); n != 4 {
		t.Fatalf("first run wrote %d files:\n%s", n, out.String())
	}
	out.Reset()
	if code := run(args, &out, &errOut, eth0, quiet); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if n := strings.Count(out.String(), "unchanged "); n != 4 || strings.Contains(out.String(), "written") {
		t.Fatalf("second run:\n%s", out.String())
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	root := t.TempDir()
	var out, errOut bytes.Buffer
	code := run([]string{"-interface", "eth0", "-vips", "198.18.0.100", "-auth-pass", "s3cret", "-root", root, "-dry-run"}, &out, &errOut, eth0, quiet)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if got := files(t, root); len(got) != 0 {
		t.Fatalf("dry run wrote %v", got)
	}
	for _, f := range []string{"/etc/kubernetes/manifests/haproxy.yaml", "/etc/kubernetes/manifests/keepalived.yaml",
		"/etc/kubernetes/static-pod-resources/keepalived/keepalived.conf", "/etc/kubernetes/static-pod-resources/haproxy/haproxy.cfg.tmpl"} {
		if !strings.Contains(out.String(), "--- "+root+f+" (dry run") {
			t.Errorf("dry run does not show %s", f)
		}
	}
}

// Bad input is refused before anything is written, with the cause named.
func TestBadInputWritesNothing(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown installer": {[]string{"-installer", "kops", "-interface", "eth0", "-vips", "198.18.0.100", "-auth-pass", "x"}, "unknown installer"},
		"no interface":      {[]string{"-interface", "eth1", "-vips", "198.18.0.100", "-auth-pass", "x"}, `interface "eth1"`},
		"VIP off subnet":    {[]string{"-interface", "eth0", "-vips", "198.19.0.100", "-auth-pass", "x"}, "in none of the subnets"},
		"priority":          {[]string{"-interface", "eth0", "-vips", "198.18.0.100", "-auth-pass", "x", "-priority", "255"}, "priority"},
		"bad VIP":           {[]string{"-interface", "eth0", "-vips", "198.18.0", "-auth-pass", "x"}, "-vips"},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			var out, errOut bytes.Buffer
			code := run(append(tc.args, "-root", root), &out, &errOut, eth0, quiet)
			if code == 0 || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want a failure naming %q", code, errOut.String(), tc.want)
			}
			if got := files(t, root); len(got) != 0 {
				t.Fatalf("wrote %v", got)
			}
		})
	}
}

// What the look at the network refuses writes nothing either, and
// -check-network=false skips the look.
func TestNetworkRefusalWritesNothing(t *testing.T) {
	taken := func(_ context.Context, k keepalived.Config) error {
		return errors.New("VIP " + k.VIPs[0].String() + " is in use on eth0")
	}
	args := []string{"-interface", "eth0", "-vips", "198.18.0.100", "-auth-pass", "x"}
	root := t.TempDir()
	var out, errOut bytes.Buffer
	if code := run(append(args, "-root", root), &out, &errOut, eth0, taken); code != 1 || !strings.Contains(errOut.String(), "nothing written: VIP 198.18.0.100 is in use") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if got := files(t, root); len(got) != 0 {
		t.Fatalf("wrote %v", got)
	}
	if code := run(append(args, "-root", root, "-check-network=false"), &out, &errOut, eth0, taken); code != 0 {
		t.Fatalf("-check-network=false: exit %d, stderr %q", code, errOut.String())
	}
	if got := files(t, root); len(got) != 4 {
		t.Fatalf("-check-network=false wrote %v", got)
	}
}
