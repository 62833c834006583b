package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Lab is a set of network namespaces on one bridge: the bridge lives in a
// "switch" namespace of its own, each host gets a namespace with an eth0 on
// it, and the test process reaches them through one veth whose peer is on
// the bridge. Deleting the namespaces removes everything, host veth included.
type Lab struct {
	Prefix string
	hosts  []string
}

func sh(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// NewLab creates the switch and gives the test process hostAddrs (CIDR) on
// the lab network. prefix keeps namespace and interface names apart from
// other runs; it must be short (interface names have 15 characters).
func NewLab(prefix string, hostAddrs ...string) (*Lab, error) {
	ReapStaleLabs(func(f string, a ...any) { fmt.Fprintf(os.Stderr, "lab: "+f+"\n", a...) })
	for _, a := range hostAddrs {
		in, err := subnetInUse(a)
		if err != nil {
			return nil, err
		}
		if in != "" {
			return nil, fmt.Errorf("lab subnet of %s is already on this host's %s: another lab is running, or one was left without a record (ip link del it)", a, in)
		}
	}
	l := &Lab{Prefix: prefix}
	if err := l.openRecord(); err != nil {
		return nil, fmt.Errorf("lab record: %w", err)
	}
	sw := l.NS("sw")
	steps := [][]string{
		{"ip", "netns", "add", sw},
		{"ip", "-n", sw, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", sw, "link", "set", "br0", "up"},
		{"ip", "link", "add", prefix + "h0", "type", "veth", "peer", "name", prefix + "h0p"},
		{"ip", "link", "set", prefix + "h0p", "netns", sw},
		{"ip", "-n", sw, "link", "set", prefix + "h0p", "master", "br0", "up"},
		{"ip", "link", "set", prefix + "h0", "up"},
	}
	for _, a := range hostAddrs {
		steps = append(steps, []string{"ip", "addr", "add", a, "dev", prefix + "h0", "nodad"})
	}
	for _, s := range steps {
		if err := sh(s...); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// NS is the namespace name of host.
func (l *Lab) NS(host string) string { return l.Prefix + "-" + host }

// AddHost creates host's namespace with eth0 on the bridge carrying addrs.
func (l *Lab) AddHost(host string, addrs ...string) error {
	ns, sw := l.NS(host), l.NS("sw")
	peer := l.Prefix + host + "p"
	steps := [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"},
		{"ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", peer, "netns", sw},
		{"ip", "-n", sw, "link", "set", peer, "master", "br0", "up"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
	}
	for _, a := range addrs {
		steps = append(steps, []string{"ip", "-n", ns, "addr", "add", a, "dev", "eth0", "nodad"})
	}
	l.hosts = append(l.hosts, host)
	for _, s := range steps {
		if err := sh(s...); err != nil {
			return fmt.Errorf("lab host %s: %w", host, err)
		}
	}
	return nil
}

// Exec is the command prefix that runs a program in host's namespace.
func (l *Lab) Exec(host string) []string { return []string{"ip", "netns", "exec", l.NS(host)} }

// Wrap prefixes argv to run in host's namespace.
func (l *Lab) Wrap(host string, argv []string) []string {
	return append(l.Exec(host), argv...)
}

// SetLink takes host's eth0 up or down (a cut cable).
func (l *Lab) SetLink(host string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	return sh("ip", "-n", l.NS(host), "link", "set", "eth0", state)
}

// HasAddr reports whether host's eth0 carries addr (keepalived's VIP).
func (l *Lab) HasAddr(host, addr string) bool {
	out, err := exec.Command("ip", "-n", l.NS(host), "-o", "addr", "show", "dev", "eth0").Output()
	return err == nil && strings.Contains(string(out), " "+addr+"/")
}

// LinkAddr is the link-layer address of host's eth0 ("" when it cannot be
// read).
func (l *Lab) LinkAddr(host string) string {
	out, _ := exec.Command("ip", "-n", l.NS(host), "-o", "link", "show", "eth0").Output()
	return after(string(out), "link/ether")
}

// Neighbour is host's neighbour entry for addr: the link-layer address its
// packets to addr go to, and the entry's state (REACHABLE, STALE, FAILED...);
// "", "" without one.
func (l *Lab) Neighbour(host, addr string) (lladdr, state string) {
	out, _ := exec.Command("ip", "-n", l.NS(host), "neigh", "show", addr).Output()
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "", ""
	}
	return after(string(out), "lladdr"), f[len(f)-1]
}

// after is the word after key in out, "" without one.
func after(out, key string) string {
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == key {
			return f[i+1]
		}
	}
	return ""
}

// Run runs argv in host's namespace and returns its output.
func (l *Lab) Run(host string, argv ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", l.NS(host)}, argv...)...).CombinedOutput()
	return string(out), err
}

// Close deletes every namespace of the lab and its record; processes still
// running in them must have been stopped first, and what was adopted
// removed.
func (l *Lab) Close() {
	for _, h := range l.hosts {
		_ = sh("ip", "netns", "del", l.NS(h))
	}
	_ = sh("ip", "netns", "del", l.NS("sw"))
	_ = sh("ip", "link", "del", l.Prefix+"h0") // normally gone with its peer
	l.closeRecord()
}
