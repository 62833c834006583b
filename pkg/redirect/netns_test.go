package redirect

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/haproxy-monitor/haproxy-monitor/test/need"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
)

// netns creates a network namespace for the test and returns its name and an
// open fd; both go away at cleanup.
func netns(t *testing.T) (string, int) {
	t.Helper()
	need.Tool(t, "ip", "nft")
	need.Root(t)
	name := fmt.Sprintf("hapm-fw-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return name, int(f.Fd())
}

func run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func ruleset(t *testing.T, ns string) string {
	return run(t, "ip", "netns", "exec", ns, "nft", "list", "ruleset")
}

func vips(ss ...string) []netip.Addr {
	out := []netip.Addr{}
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// The rules are what the original installs, as nft itself prints them, and
// ensuring again (a restart, a race) adds nothing.
func TestEnsureIsIdempotentAndMatchesNft(t *testing.T) {
	ns, fd := netns(t)
	r := &Redirect{VIPs: vips("198.18.0.100", "fd00::100"), APIPort: 6443, LBPort: 9445, NetNSFd: fd}
	if err := r.Ensure(); err != nil {
		t.Fatal(err)
	}
	// With handles: a rule deleted and added again would show a new one.
	first := run(t, "ip", "netns", "exec", ns, "nft", "-a", "list", "ruleset")
	for i := 0; i < 2; i++ {
		if err := r.Ensure(); err != nil {
			t.Fatal(err)
		}
	}
	if again := run(t, "ip", "netns", "exec", ns, "nft", "-a", "list", "ruleset"); again != first {
		t.Errorf("ensuring again changed the ruleset:\n%s\n---\n%s", first, again)
	}
	out := ruleset(t, ns)
	for _, want := range []string{
		"table ip ocp_nat", "table ip6 ocp_nat",
		"chain ocp_prerouting", "chain ocp_output",
		"type nat hook prerouting priority dstnat", "type nat hook output priority -100",
		`ip daddr 198.18.0.100 tcp dport 6443 redirect to :9445 comment "OCP_API_LB_REDIRECT"`,
		`ip6 daddr fd00::100 tcp dport 6443 redirect to :9445 comment "OCP_API_LB_REDIRECT"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "OCP_API_LB_REDIRECT"); n != 4 {
		t.Fatalf("%d redirect rules after three Ensure calls, want 4 (2 VIPs x 2 chains):\n%s", n, out)
	}
}

// Duplicates left by someone else, stale VIPs and changed ports are repaired.
func TestEnsureRepairs(t *testing.T) {
	ns, fd := netns(t)
	r := &Redirect{VIPs: vips("198.18.0.100"), APIPort: 6443, LBPort: 9445, NetNSFd: fd}
	if err := r.Ensure(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		run(t, "ip", "netns", "exec", ns, "nft", "add", "rule", "ip", "ocp_nat", "ocp_prerouting",
			"ip", "daddr", "198.18.0.100", "tcp", "dport", "6443", "redirect", "to", ":9445", "comment", `"OCP_API_LB_REDIRECT"`)
	}
	run(t, "ip", "netns", "exec", ns, "nft", "add", "rule", "ip", "ocp_nat", "ocp_output",
		"ip", "daddr", "198.18.0.99", "tcp", "dport", "6443", "redirect", "to", ":9445", "comment", `"OCP_API_LB_REDIRECT"`)
	run(t, "ip", "netns", "exec", ns, "nft", "add", "rule", "ip", "ocp_nat", "ocp_output",
		"ip", "daddr", "198.18.0.7", "tcp", "dport", "22", "accept", "comment", `"someone else"`)
	r.LBPort = 9446
	if err := r.Ensure(); err != nil {
		t.Fatal(err)
	}
	out := ruleset(t, ns)
	if n := strings.Count(out, "OCP_API_LB_REDIRECT"); n != 2 || !strings.Contains(out, "redirect to :9446") || strings.Contains(out, "198.18.0.99") {
		t.Fatalf("after repair want one rule per chain to :9446 for 198.18.0.100 only:\n%s", out)
	}
	if !strings.Contains(out, `comment "someone else"`) {
		t.Fatalf("a rule that is not ours was removed:\n%s", out)
	}
}

// A family without VIPs gets no table.
func TestEnsureOneFamily(t *testing.T) {
	ns, fd := netns(t)
	r := &Redirect{VIPs: vips("198.18.0.100"), APIPort: 6443, LBPort: 9445, NetNSFd: fd}
	if err := r.Ensure(); err != nil {
		t.Fatal(err)
	}
	if out := ruleset(t, ns); !strings.Contains(out, "table ip ocp_nat") || strings.Contains(out, "table ip6") {
		t.Fatalf("an IPv4 VIP only, want the ip table only:\n%s", out)
	}
}

func TestRemove(t *testing.T) {
	ns, fd := netns(t)
	r := &Redirect{VIPs: vips("198.18.0.100", "fd00::100"), APIPort: 6443, LBPort: 9445, NetNSFd: fd}
	if err := r.Remove(); err != nil {
		t.Fatalf("remove with nothing installed: %v", err)
	}
	if err := r.Ensure(); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(); err != nil {
		t.Fatal(err)
	}
	if out := ruleset(t, ns); strings.Contains(out, "ocp_nat") {
		t.Fatalf("tables left after Remove:\n%s", out)
	}
}

// Traffic to VIP:api-port from inside the namespace lands on the lb-port
// listener while the rule is in, and on the api-port one once it is out.
func TestRedirectCarriesTraffic(t *testing.T) {
	ns, fd := netns(t)
	if _, err := exec.LookPath("socat"); err != nil {
		t.Skip("socat not installed")
	}
	run(t, "ip", "-n", ns, "addr", "add", "198.18.0.100/32", "dev", "lo")
	serve := func(port, reply string) {
		cmd := exec.Command("ip", "netns", "exec", ns, "socat", "TCP-LISTEN:"+port+",bind=0.0.0.0,reuseaddr,fork", "SYSTEM:echo "+reply)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	serve("9445", "lb")
	serve("6443", "direct")
	get := func() string {
		var got string
		poll.Until(5*time.Second, 20*time.Millisecond, func() bool {
			out, err := exec.Command("ip", "netns", "exec", ns, "socat", "-T1", "-u", "TCP:198.18.0.100:6443,connect-timeout=1", "STDOUT").Output()
			got = strings.TrimSpace(string(out))
			return err == nil && got != ""
		})
		return got
	}
	if got := get(); got != "direct" {
		t.Fatalf("before the rule: %q, want direct", got)
	}
	r := &Redirect{VIPs: vips("198.18.0.100"), APIPort: 6443, LBPort: 9445, NetNSFd: fd}
	if err := r.Ensure(); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "lb" {
		t.Fatalf("with the rule: %q, want lb", got)
	}
	if err := r.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "direct" {
		t.Fatalf("after removal: %q, want direct", got)
	}
}

// The switch puts real rules in after OnAfter good observations and takes
// them out after OffAfter bad ones, one observation per interval (probes in
// between count once); a haproxy found gone takes them out at once.
func TestSwitchWithRealRules(t *testing.T) {
	_, fd := netns(t)
	r := &Redirect{VIPs: vips("198.18.0.100"), APIPort: 6443, LBPort: 9445, NetNSFd: fd}
	var installed []bool
	log := logrus.New()
	log.SetOutput(io.Discard)
	sw := NewSwitch(SwitchOptions{Rules: r, OnAfter: 3, OffAfter: 11, Interval: time.Second, Log: log,
		Installed: func(on bool) { installed = append(installed, on) }})
	present := func() bool {
		rules, err := r.Rules()
		return err == nil && len(rules[PreroutingName]) == 1 && len(rules[OutputName]) == 1
	}
	now := time.Unix(1000, 0)
	bad := errors.New("haproxy says no backend")
	observe := func(n int, err error) {
		for range n {
			now = now.Add(time.Second)
			sw.Observe(now, err, false, time.Time{})
			// A probe within the same interval counts nothing.
			sw.Observe(now.Add(100*time.Millisecond), err, false, time.Time{})
		}
	}
	if sw.TakeOver(now, false); present() {
		t.Fatal("rules in before any probe")
	}
	observe(2, nil)
	if present() {
		t.Fatal("rules in after 2 good observations, want 3")
	}
	observe(1, nil)
	if !present() {
		t.Fatal("rules not in after 3 good observations")
	}
	observe(10, bad)
	if !present() {
		t.Fatal("rules out after 10 bad observations, want 11")
	}
	observe(1, bad)
	if present() {
		t.Fatal("rules in after 11 bad observations")
	}
	observe(3, nil)
	if !present() {
		t.Fatal("rules not back after 3 good observations")
	}
	now = now.Add(time.Millisecond) // within the interval: gone counts at once
	sw.Observe(now, syscall.ECONNREFUSED, true, time.Time{})
	if present() {
		t.Fatal("rules in with haproxy gone")
	}
	if fmt.Sprint(installed) != "[true false true false]" {
		t.Fatalf("reported %v", installed)
	}
	if err := sw.Remove(); err != nil || present() {
		t.Fatalf("remove: %v, present %v", err, present())
	}
}

// A monitor restarted on the VIP holder (killed, its container restarted)
// finds the redirect as its predecessor left it, maybe with the hold of a
// hand-over it did not finish. When haproxy serves, the switch keeps the
// rules and releases the hold; when it does not, the leftovers come out.
func TestSwitchTakesOverFromAPredecessor(t *testing.T) {
	for _, tc := range []struct {
		name    string
		serving bool
	}{{"haproxy serves", true}, {"haproxy does not serve", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ns, fd := netns(t)
			r := &Redirect{VIPs: vips("198.18.0.100", "fd00::100"), APIPort: 6443, LBPort: 9445, NetNSFd: fd}
			if err := r.Ensure(); err != nil { // the predecessor's
				t.Fatal(err)
			}
			if err := r.Hold(); err != nil { // killed while handing over
				t.Fatal(err)
			}
			var installed []bool
			log := logrus.New()
			log.SetOutput(io.Discard)
			sw := NewSwitch(SwitchOptions{Rules: r, OnAfter: 3, OffAfter: 11, Interval: time.Second, Log: log,
				Installed: func(on bool) { installed = append(installed, on) }})
			kept := sw.TakeOver(time.Unix(1000, 0), tc.serving)
			present, err := r.Present()
			if err != nil {
				t.Fatal(err)
			}
			if out := ruleset(t, ns); strings.Contains(out, HoldTableName) {
				t.Errorf("the predecessor's hold is still in:\n%s", out)
			}
			if kept != tc.serving || present != tc.serving || sw.Active() != tc.serving || sw.Installed() != tc.serving {
				t.Errorf("kept %v, present %v, active %v, installed %v; want %v", kept, present, sw.Active(), sw.Installed(), tc.serving)
			}
			if tc.serving && fmt.Sprint(installed) != "[true]" {
				t.Errorf("reported %v, want [true]", installed)
			}
		})
	}
}

// The hold drops new connections from other hosts to VIP:api-port, so their
// SYNs are sent again later, while connections already established go on;
// Remove releases it with the redirect.
func TestHoldDropsNewConnectionsOnly(t *testing.T) {
	if _, err := exec.LookPath("socat"); err != nil {
		t.Skip("socat not installed")
	}
	node, fd := netns(t)
	client, _ := netns(t)
	a, b := fmt.Sprintf("hh%d", os.Getpid()%100000), fmt.Sprintf("hc%d", os.Getpid()%100000)
	run(t, "ip", "link", "add", a, "netns", node, "type", "veth", "peer", "name", b, "netns", client)
	run(t, "ip", "-n", node, "addr", "add", "198.18.9.1/24", "dev", a)
	run(t, "ip", "-n", node, "addr", "add", "198.18.9.100/32", "dev", a)
	run(t, "ip", "-n", client, "addr", "add", "198.18.9.2/24", "dev", b)
	run(t, "ip", "-n", node, "link", "set", a, "up")
	run(t, "ip", "-n", client, "link", "set", b, "up")
	echo := exec.Command("ip", "netns", "exec", node, "socat", "TCP-LISTEN:9445,bind=0.0.0.0,reuseaddr,fork", "EXEC:cat")
	if err := echo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = echo.Process.Kill(); _ = echo.Wait() })
	r := &Redirect{VIPs: vips("198.18.9.100"), APIPort: 6443, LBPort: 9445, NetNSFd: fd}
	if err := r.Ensure(); err != nil {
		t.Fatal(err)
	}
	connect := func() error {
		out, err := exec.Command("ip", "netns", "exec", client, "bash", "-c",
			"echo ping | socat -T1 - TCP:198.18.9.100:6443,connect-timeout=0.5").CombinedOutput()
		if err == nil && strings.TrimSpace(string(out)) != "ping" {
			err = fmt.Errorf("echoed %q", out)
		}
		return err
	}
	if !poll.Until(5*time.Second, time.Millisecond, func() bool { return connect() == nil }) {
		t.Fatalf("no connection through the redirect: %v", connect())
	}
	// An established connection: a socat kept open on a pipe.
	kept := exec.Command("ip", "netns", "exec", client, "socat", "-", "TCP:198.18.9.100:6443")
	in, err := kept.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := kept.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := kept.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kept.Process.Kill(); _ = kept.Wait() })
	lines := make(chan string, 4)
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := outPipe.Read(buf)
			if err != nil {
				close(lines)
				return
			}
			lines <- strings.TrimSpace(string(buf[:n]))
		}
	}()
	say := func(word string) {
		t.Helper()
		if _, err := io.WriteString(in, word+"\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-lines:
			if got != word {
				t.Fatalf("established connection echoed %q, want %q", got, word)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("established connection did not echo %q", word)
		}
	}
	say("before")

	if err := r.Hold(); err != nil {
		t.Fatal(err)
	}
	if err := r.Hold(); err != nil { // idempotent
		t.Fatal(err)
	}
	out := ruleset(t, node)
	if n := strings.Count(out, "drop"); n != 1 || !strings.Contains(out, "table ip "+HoldTableName) {
		t.Fatalf("want one hold rule after two Hold calls:\n%s", out)
	}
	if err := connect(); err == nil || !strings.Contains(err.Error(), "exit status") {
		t.Fatalf("a new connection went through the hold: %v", err)
	}
	if !strings.Contains(ruleset(t, node), "packets 1") && !strings.Contains(ruleset(t, node), "packets 2") {
		t.Fatalf("the hold counted no SYN:\n%s", ruleset(t, node))
	}
	say("during")
	// Local clients are not held (the node's own traffic to the VIP).
	if out, err := exec.Command("ip", "netns", "exec", node, "bash", "-c",
		"echo ping | socat -T1 - TCP:198.18.9.100:6443,connect-timeout=0.5").CombinedOutput(); err != nil {
		t.Fatalf("a local connection was held: %v %s", err, out)
	}

	if err := r.Remove(); err != nil {
		t.Fatal(err)
	}
	if out := ruleset(t, node); strings.Contains(out, HoldTableName) {
		t.Fatalf("hold left after Remove:\n%s", out)
	}
}
