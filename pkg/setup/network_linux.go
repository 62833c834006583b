package setup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
)

// CheckNetwork listens on k's interface for VRRP advertisements of k's
// virtual router for three advert intervals (plus half a second), and sends
// ARP probes for its IPv4 VIPs meanwhile, then judges what it saw: a VIP
// another host has, or a router id another group announces, is refused.
// IPv6 VIPs are not probed. It needs CAP_NET_RAW (root).
func CheckNetwork(ctx context.Context, k keepalived.Config) error {
	ifi, err := net.InterfaceByName(k.Interface)
	if err != nil {
		return fmt.Errorf("interface %q: %w", k.Interface, err)
	}
	local, err := localAddrs()
	if err != nil {
		return err
	}
	window := advertWindow(k.AdvertInt)
	ctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()

	var (
		wg      sync.WaitGroup
		adverts []Advert
		answers []Answer
		vErr    error
		aErr    error
	)
	wg.Add(2)
	go func() { defer wg.Done(); adverts, vErr = listenVRRP(ctx, ifi) }()
	go func() {
		defer wg.Done()
		var probe []netip.Addr
		for _, v := range k.VIPs {
			// A VIP on this node is keepalived's here: nothing to ask.
			if v = v.Unmap(); v.Is4() && !local[v] {
				probe = append(probe, v)
			}
		}
		if len(probe) > 0 {
			answers, aErr = probeARP(ctx, ifi, probe)
		}
	}()
	wg.Wait()
	if err := errors.Join(vErr, aErr); err != nil {
		return fmt.Errorf("looking at %s before writing (-check-network=false skips this): %w", k.Interface, err)
	}
	return judgeNetwork(k, answers, adverts)
}

// advertWindow is how long to listen for a holder's adverts: three advert
// intervals and half a second, so one lost advert does not hide it.
func advertWindow(advertInt string) time.Duration {
	f, err := strconv.ParseFloat(advertInt, 64)
	if err != nil || f <= 0 {
		f = 1
	}
	return time.Duration(3*f*float64(time.Second)) + 500*time.Millisecond
}

func localAddrs() (map[netip.Addr]bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]bool{}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out[ip.Unmap()] = true
			}
		}
	}
	return out, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// readUntil reads packets from fd until ctx ends, handing each to got.
func readUntil(ctx context.Context, fd int, got func([]byte)) error {
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		got(buf[:n])
	}
	return nil
}

// listenVRRP collects the VRRP advertisements that reach ifi until ctx ends.
func listenVRRP(ctx context.Context, ifi *net.Interface) ([]Advert, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, vrrpProto)
	if err != nil {
		return nil, fmt.Errorf("VRRP socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.BindToDevice(fd, ifi.Name); err != nil {
		return nil, fmt.Errorf("VRRP socket on %s: %w", ifi.Name, err)
	}
	mreq := &unix.IPMreqn{Multiaddr: [4]byte{224, 0, 0, 18}, Ifindex: int32(ifi.Index)}
	if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq); err != nil {
		return nil, fmt.Errorf("joining VRRP's group on %s: %w", ifi.Name, err)
	}
	var out []Advert
	err = readUntil(ctx, fd, func(b []byte) {
		if a, err := parseVRRP4(b); err == nil {
			out = append(out, a)
		}
	})
	return out, err
}

// probeARP sends three ARP probes for each of vips on ifi, 200 ms apart, and
// collects every host that answers for one (or announces it) until ctx
// ends.
func probeARP(ctx context.Context, ifi *net.Interface, vips []netip.Addr) ([]Answer, error) {
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("%s has no Ethernet address to send ARP from", ifi.Name)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return nil, fmt.Errorf("ARP socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index}); err != nil {
		return nil, fmt.Errorf("ARP socket on %s: %w", ifi.Name, err)
	}
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6,
		Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	var sendErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 3 && ctx.Err() == nil; i++ {
			for _, v := range vips {
				if err := unix.Sendto(fd, arpProbe(ifi.HardwareAddr, v), 0, to); err != nil {
					sendErr = fmt.Errorf("sending ARP on %s: %w", ifi.Name, err)
					return
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	want := map[netip.Addr]bool{}
	for _, v := range vips {
		want[v] = true
	}
	var out []Answer
	seen := map[netip.Addr]bool{}
	err = readUntil(ctx, fd, func(b []byte) {
		_, mac, sender, ok := parseARP(b)
		if ok && want[sender] && !seen[sender] && mac.String() != ifi.HardwareAddr.String() {
			seen[sender] = true
			out = append(out, Answer{VIP: sender, MAC: mac})
		}
	})
	<-done
	return out, errors.Join(err, sendErr)
}
