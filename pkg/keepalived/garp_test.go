package keepalived_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
	"github.com/haproxy-monitor/haproxy-monitor/test/need"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
)

// After two nodes were both master (here: VRRP cut between them, as when
// two backups' timers run out together after a hand-over), the one with
// the lower priority steps down when it hears the other. If the clients
// heard its gratuitous ARPs last, they keep sending the VIP's traffic to
// it. With the shipped template the node stepping down sends one more
// advert, the holder answers it with gratuitous ARPs, and the client
// follows the holder at once. The control renders the template without
// vrrp_higher_prio_send_advert and shows the client left behind.
//
// To make the control deterministic the cut heals right after the loser's
// advert has gone out (seen on the wire), so the winner's next advert
// reaches the loser first: without the option the loser steps down
// without a word and the winner, which never hears it again, has no
// reason to announce itself.
func TestClientFollowsTheHolderAfterTwoMasters(t *testing.T) {
	need.Root(t)
	need.Tool(t, "keepalived", "ip", "nft", "tcpdump", "curl")
	t.Run("shipped", func(t *testing.T) {
		if got := twoMasters(t, true); got != "winner" {
			t.Fatalf("with the shipped template the client stayed on the %s after the loser stepped down; want the winner", got)
		}
	})
	t.Run("control-without-the-option", func(t *testing.T) {
		if got := twoMasters(t, false); got != "loser" {
			t.Fatalf("without vrrp_higher_prio_send_advert the client went to the %s; this test no longer shows what the option does", got)
		}
	})
}

const (
	garpSubnet = "198.18.210."
	garpVIP    = garpSubnet + "100"
)

// twoMasters runs the scenario and reports which node the client's
// neighbour entry for the VIP points to 2 s after the cut healed: "winner",
// "loser", or what it found instead.
func twoMasters(t *testing.T, option bool) string {
	t.Helper()
	lab, err := harness.NewLab(fmt.Sprintf("kg%d", os.Getpid()%10000), garpSubnet+"1/24")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.Close)
	dir := t.TempDir()
	addrs := map[string]string{"winner": garpSubnet + "11", "loser": garpSubnet + "10", "c": garpSubnet + "50"}
	for _, h := range []string{"winner", "loser", "c"} {
		if err := lab.AddHost(h, addrs[h]+"/24"); err != nil {
			t.Fatal(err)
		}
	}
	// The check script's URL: answered by this process on the lab network.
	ln, err := net.Listen("tcp", garpSubnet+"1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	// VRRP between the two is cut both ways from the start.
	cut := func(host, other string) {
		for _, c := range []string{
			"add table ip garpcut",
			"add chain ip garpcut in { type filter hook input priority 0 ; }",
			"add rule ip garpcut in ip protocol vrrp ip saddr " + addrs[other] + " drop",
		} {
			if out, err := lab.Run(host, append([]string{"nft"}, strings.Fields(c)...)...); err != nil {
				t.Fatalf("%s: nft %s: %v %s", host, c, err, out)
			}
		}
	}
	cut("winner", "loser")
	cut("loser", "winner")

	start := func(host string, priority int) {
		conf, err := keepalived.Render(filepath.Join("..", "..", "templates", "keepalived.conf.tmpl"), keepalived.Config{
			Interface: "eth0", VirtualRouterID: 61, Priority: priority, AuthPass: "garptest",
			HealthURL: "http://" + ln.Addr().String() + "/haproxy_ready", VIPs: []netip.Addr{netip.MustParseAddr(garpVIP)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(conf), "\n  vrrp_higher_prio_send_advert\n") {
			t.Fatal("the template no longer sets vrrp_higher_prio_send_advert")
		}
		if !option {
			conf = []byte(strings.Replace(string(conf), "\n  vrrp_higher_prio_send_advert\n", "\n", 1))
		}
		f := filepath.Join(dir, host+".conf")
		if err := os.WriteFile(f, conf, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := harness.StartProcess("keepalived-"+host, filepath.Join(dir, host+".log"), nil, lab.Wrap(host, []string{
			"keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp", "--use-file=" + f,
			"--pid=" + filepath.Join(dir, host+".pid"), "--vrrp_pid=" + filepath.Join(dir, host+"-vrrp.pid"),
		})...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Stop(5 * time.Second) })
	}
	log := func(host string) string { b, _ := os.ReadFile(filepath.Join(dir, host+".log")); return string(b) }
	mac := func(host string) string {
		a := lab.LinkAddr(host)
		if a == "" {
			t.Fatalf("no link-layer address for %s", host)
		}
		return a
	}
	neighbour := func() string { a, _ := lab.Neighbour("c", garpVIP); return a }

	// The winner takes the VIP; the client learns it.
	start("winner", 101)
	if !poll.Until(15*time.Second, 20*time.Millisecond, func() bool { return lab.HasAddr("winner", garpVIP) }) {
		t.Fatalf("the winner did not take the VIP\n%s", log("winner"))
	}
	// Any packet to the VIP resolves it (nothing listens on port 9: the
	// winner answers with a reset).
	_, _ = lab.Run("c", "curl", "-s", "--max-time", "2", "http://"+garpVIP+":9/")
	if got := neighbour(); got != mac("winner") {
		t.Fatalf("the client has %q for the VIP, want the winner's %s", got, mac("winner"))
	}
	// keepalived sends a second burst of gratuitous ARPs 5 s after it
	// becomes master (garp_master_delay): past it, the winner announces
	// itself again only for a reason (or the refresh, 60 s).
	if !poll.Until(15*time.Second, 50*time.Millisecond, func() bool {
		return strings.Count(log("winner"), "Sending/queueing gratuitous ARPs") >= 2
	}) {
		t.Fatalf("the winner's second burst of gratuitous ARPs did not come\n%s", log("winner"))
	}
	// Every advert on the wire, as the client's namespace sees it: which
	// node sent it, in order of arrival (the reader notes when).
	argv := lab.Wrap("c", []string{"tcpdump", "-l", "-n", "-tt", "-i", "eth0", "ip proto 112"})
	dump := exec.Command(argv[0], argv[1:]...)
	out, err := dump.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dump.Process.Kill(); _ = dump.Wait() })
	adverts := make(chan string, 64)
	go func() {
		defer close(adverts)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			for _, h := range []string{"winner", "loser"} {
				if strings.Contains(sc.Text(), " "+addrs[h]+" > ") {
					select {
					case adverts <- h:
					default: // nobody reads any more
					}
				}
			}
		}
	}()
	next := func(want string, within time.Duration) bool {
		deadline := time.After(within)
		for {
			select {
			case h, ok := <-adverts:
				if !ok {
					return false
				}
				if h == want {
					return true
				}
			case <-deadline:
				return false
			}
		}
	}

	// The loser, cut off, becomes master too, its adverts about 0.6 s (its
	// skew time) after the winner's: started right after one of the
	// winner's, it takes over 3 × 1 s + 0.61 s later. The client follows
	// its gratuitous ARPs.
	if !next("winner", 3*time.Second) {
		t.Fatal("no advert of the winner's on the wire")
	}
	start("loser", 100)
	if !poll.Until(15*time.Second, 20*time.Millisecond, func() bool { return neighbour() == mac("loser") }) {
		t.Fatalf("the client did not follow the loser's gratuitous ARPs (has %q)\n%s", neighbour(), log("loser"))
	}

	// Heal the cut right after one of the loser's adverts, the winner's
	// next one due before the loser's: the winner's side first, so that
	// neither hears the other before both can.
	var lastWinner time.Time
	healed := false
	for deadline := time.Now().Add(10 * time.Second); !healed && time.Now().Before(deadline); {
		h, ok := <-adverts
		switch {
		case !ok:
			t.Fatal("tcpdump stopped")
		case h == "winner":
			lastWinner = time.Now()
		case !lastWinner.IsZero() && time.Since(lastWinner) < 900*time.Millisecond:
			for _, h := range []string{"winner", "loser"} {
				if o, err := lab.Run(h, "nft", "delete", "table", "ip", "garpcut"); err != nil {
					t.Fatalf("%s: %v %s", h, err, o)
				}
			}
			healed = true
		}
	}
	if !healed {
		t.Fatal("no advert of the loser's came while the winner's next was due after it")
	}
	if !poll.Until(5*time.Second, 20*time.Millisecond, func() bool { return !lab.HasAddr("loser", garpVIP) }) {
		t.Fatalf("the loser kept the VIP after the cut healed\n%s", log("loser"))
	}
	// Gratuitous ARPs arrive within milliseconds; give them 2 s.
	poll.Until(2*time.Second, 20*time.Millisecond, func() bool { return neighbour() == mac("winner") })
	switch got := neighbour(); got {
	case mac("winner"):
		return "winner"
	case mac("loser"):
		return "loser"
	default:
		return fmt.Sprintf("address %q", got)
	}
}
