package setup

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
)

// vrrp2 is an IPv4 packet carrying a VRRPv2 advertisement, as keepalived
// sends it (checksums are not checked by the parser and left zero).
func vrrp2(from string, vrid byte, pass string, addrs ...string) []byte {
	ip := make([]byte, 20)
	ip[0], ip[9] = 0x45, vrrpProto
	f := netip.MustParseAddr(from).As4()
	copy(ip[12:16], f[:])
	v := []byte{0x21, vrid, 100, byte(len(addrs)), 0, 1, 0, 0}
	if pass != "" {
		v[4] = 1
	}
	for _, a := range addrs {
		b := netip.MustParseAddr(a).As4()
		v = append(v, b[:]...)
	}
	auth := make([]byte, 8)
	copy(auth, pass)
	return append(append(ip, v...), auth...)
}

func TestParseVRRP4(t *testing.T) {
	a, err := parseVRRP4(vrrp2("198.18.0.10", 51, "labpass", "198.18.0.100", "198.18.0.101"))
	if err != nil {
		t.Fatal(err)
	}
	if a.From.String() != "198.18.0.10" || a.Version != 2 || a.RouterID != 51 || len(a.Addrs) != 2 ||
		a.Addrs[1].String() != "198.18.0.101" || !a.HasAuth || a.AuthPass != "labpass" {
		t.Fatalf("parsed %+v", a)
	}
	for name, pkt := range map[string][]byte{
		"short":        make([]byte, 10),
		"not VRRP":     append([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 0, 6}, make([]byte, 30)...),
		"count beyond": vrrp2("198.18.0.10", 51, "", "198.18.0.100")[:28],
	} {
		if _, err := parseVRRP4(pkt); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestARPProbeParsesBack(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	op, from, sender, ok := parseARP(arpProbe(mac, netip.MustParseAddr("198.18.0.100")))
	// A probe's sender address is 0.0.0.0: it claims nothing.
	if !ok || op != 1 || from.String() != mac.String() || sender.String() != "0.0.0.0" {
		t.Fatalf("op %d from %v sender %v ok %v", op, from, sender, ok)
	}
	if _, _, _, ok := parseARP(make([]byte, 27)); ok {
		t.Fatal("parsed a short packet")
	}
}

func TestJudgeNetwork(t *testing.T) {
	vip := netip.MustParseAddr("198.18.0.100")
	k := keepalived.Config{Interface: "eth0", VirtualRouterID: 51, AuthPass: "labpass", VIPs: []netip.Addr{vip}}
	holder := Advert{From: netip.MustParseAddr("198.18.0.10"), Version: 2, RouterID: 51, Addrs: []netip.Addr{vip}, HasAuth: true, AuthPass: "labpass"}
	someone := Answer{VIP: vip, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}}
	for name, tc := range map[string]struct {
		answers []Answer
		adverts []Advert
		want    string // "" accepts
	}{
		"nothing on the network":         {},
		"this cluster's holder":          {[]Answer{someone}, []Advert{holder}, ""},
		"another router id, no answer":   {nil, []Advert{{RouterID: 52, Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.200")}}}, ""},
		"another host has the VIP":       {[]Answer{someone}, nil, "VIP 198.18.0.100 is in use on eth0: 02:00:00:00:00:09 answers"},
		"another group on the router id": {nil, []Advert{{From: holder.From, Version: 2, RouterID: 51, Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.7")}}}, "another VRRP group uses this router id"},
		"another password":               {nil, []Advert{{From: holder.From, Version: 2, RouterID: 51, Addrs: holder.Addrs, HasAuth: true, AuthPass: "other"}}, "another -auth-pass"},
		"the VIP on another router id":   {[]Answer{someone}, []Advert{{From: holder.From, RouterID: 52, Addrs: holder.Addrs}}, "by 198.18.0.10 on virtual router 52, not 51: is -vrid right?"},
		"password cut to 8 on the wire":  {nil, []Advert{{Version: 2, RouterID: 51, Addrs: holder.Addrs, HasAuth: true, AuthPass: "12345678"}}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			k := k
			if name == "password cut to 8 on the wire" {
				k.AuthPass = "123456789"
			}
			err := judgeNetwork(k, tc.answers, tc.adverts)
			if tc.want == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestAdvertWindow(t *testing.T) {
	for in, want := range map[string]string{"1": "3.5s", "": "3.5s", "0.2": "1.1s", "x": "3.5s"} {
		if got := advertWindow(in).String(); got != want {
			t.Errorf("advertWindow(%q) = %s, want %s", in, got, want)
		}
	}
}
