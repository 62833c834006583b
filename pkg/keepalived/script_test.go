package keepalived

import (
	"context"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/manifests"
	"github.com/haproxy-monitor/haproxy-monitor/test/need"
)

// keepalived 2.2 drops its groups (setgroups) before it runs a check
// script, also for script_user root; when that fails for want of SETGID it
// logs it and counts the script as succeeded without running it, so the
// haproxy_ready fallback would never give the VIP up. The shipped template,
// run with exactly the keepalived container's capabilities, must run its
// script: a check that cannot succeed must be reported failed. The control
// drops SETGID and shows what this test would catch.
func TestCheckScriptRunsWithTheManifestsCapabilities(t *testing.T) {
	caps := keepalivedCaps(t)
	var without []string
	for _, c := range caps {
		if c != "SETGID" {
			without = append(without, c)
		}
	}
	t.Run("manifest", func(t *testing.T) {
		if got := scriptVerdict(t, caps, ""); got != "failed" {
			t.Fatalf("with the manifest's capabilities %v the check script %s; want failed (it cannot succeed)", caps, got)
		}
	})
	t.Run("control-without-SETGID", func(t *testing.T) {
		if got := scriptVerdict(t, without, ""); got != "succeeded without running" {
			t.Fatalf("without SETGID the check script %s; this keepalived no longer needs SETGID: revisit the manifest", got)
		}
	})
}

// With haproxy not serving, the check passes exactly while the monitor's
// track file says 253 (the local apiserver serves and VIP:6443 reaches it):
// the first control plane of a new cluster takes the VIP before any Node is
// a backend. Any other level leaves the check to haproxy alone.
func TestCheckScriptPassesWhileOnlyTheLocalAPIServerServes(t *testing.T) {
	caps := keepalivedCaps(t)
	for level, want := range map[Level]string{LocalOnly: "succeeded", Serving: "failed", Holding: "failed", Fault: "failed"} {
		t.Run(strconv.Itoa(int(level)), func(t *testing.T) {
			if got := scriptVerdict(t, caps, strconv.Itoa(int(level))); got != want {
				t.Fatalf("haproxy down, track file %d: the check %s, want %s", level, got, want)
			}
		})
	}
}

// keepalivedCaps skips without root and the tools, and returns the
// keepalived container's capabilities from the shipped manifest.
func keepalivedCaps(t *testing.T) []string {
	t.Helper()
	need.Root(t)
	need.Tool(t, "keepalived", "setpriv", "unshare", "ip", "curl")
	pod, err := manifests.Pod("keepalived.yaml")
	if err != nil {
		t.Fatal(err)
	}
	caps, err := manifests.Capabilities(pod, "keepalived")
	if err != nil {
		t.Fatal(err)
	}
	return caps
}

// scriptVerdict runs keepalived with the shipped template in a private
// network namespace, bounded to caps, its check pointing at a URL that does
// not exist, and reports what keepalived made of the first check. track,
// if set, is the monitor's track file's content.
func scriptVerdict(t *testing.T, caps []string, track string) string {
	t.Helper()
	dir := t.TempDir()
	// Nothing listens on port 1 in the namespace: the check cannot pass.
	cfg := Config{Interface: "d0", VirtualRouterID: 51, Priority: 100, AuthPass: "hapm1234",
		HealthURL: "http://127.0.0.1:1/haproxy_ready", VIPs: []netip.Addr{netip.MustParseAddr("198.18.99.100")}}
	if track != "" {
		cfg.TrackFile = filepath.Join(dir, "track")
		if err := os.WriteFile(cfg.TrackFile, []byte(track+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf, err := Render(tmpl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keepalived.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	set := "-all"
	for _, c := range caps {
		set += ",+" + strings.ToLower(c)
	}
	script := `ip link set lo up && ip link add d0 type veth peer name d1 && ip link set d0 up && ip link set d1 up &&
ip addr add 198.18.99.2/24 dev d0 &&
exec setpriv --no-new-privs --bounding-set "$CAPS" --inh-caps -all -- keepalived --dont-fork --log-console --vrrp \
  -f "$DIR/keepalived.conf" -p "$DIR/keepalived.pid" -r "$DIR/vrrp.pid"`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", "--", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "CAPS="+set, "DIR="+dir)
	logPath := filepath.Join(dir, "log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	var verdict string
	if !poll.Until(20*time.Second, 50*time.Millisecond, func() bool {
		b, _ := os.ReadFile(logPath)
		log := string(b)
		switch {
		case strings.Contains(log, "VRRP_Script(chk_haproxy) failed"):
			verdict = "failed"
		case strings.Contains(log, "VRRP_Script(chk_haproxy) succeeded") && strings.Contains(log, "Couldn't setgroups"):
			verdict = "succeeded without running"
		case strings.Contains(log, "VRRP_Script(chk_haproxy) succeeded"):
			verdict = "succeeded"
		}
		return verdict != ""
	}) {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("keepalived reported no check within 20 s:\n%s", b)
	}
	return verdict
}
