package discovery

//lint:file-ignore SA1019 v1 Endpoints default/kubernetes is the one member source a node may read without a grant (README, Permissions)

import (
	"context"
	"k8s.io/utils/clock"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
)

// NodeUserPrefix is how the Node authorizer recognises a kubelet's identity.
const NodeUserPrefix = "system:node:"

// degraded is what a node identity may read without any grant: the
// default/kubernetes Endpoints (the apiservers holding a lease) and its own
// Node. It is polled, like the original's LIST, while Nodes are forbidden.
type degraded struct {
	client   Client
	interval time.Duration
	clock    clock.WithTicker
	changed  func()

	wake chan struct{}

	mu        sync.Mutex
	active    bool
	identity  string // the API user, once known
	answered  bool   // the Endpoints answered since activation
	addrs     []string
	endpoints []string // host:port
	self      lbconfig.Node
	err       error // the last poll's failure, nil after a success
	contact   time.Time
}

type degradedView struct {
	answered  bool
	addrs     []string
	endpoints []string
	self      lbconfig.Node
	identity  string
	err       error
}

func newDegraded(c Client, interval time.Duration, clk clock.WithTicker, changed func()) *degraded {
	return &degraded{client: c, interval: interval, clock: clk, changed: changed, wake: make(chan struct{}, 1)}
}

// setActive starts or stops polling. Stopping forgets the answers: when the
// Nodes are forbidden again later, stale Endpoints must not stand in for them.
func (d *degraded) setActive(on bool) {
	d.mu.Lock()
	if d.active == on {
		d.mu.Unlock()
		return
	}
	d.active = on
	if !on {
		d.answered, d.addrs, d.endpoints, d.self, d.err = false, nil, nil, lbconfig.Node{}, nil
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *degraded) view() degradedView {
	d.mu.Lock()
	defer d.mu.Unlock()
	return degradedView{answered: d.answered, addrs: d.addrs, endpoints: d.endpoints, self: d.self, identity: d.identity, err: d.err}
}

func (d *degraded) lastContact() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.contact
}

func (d *degraded) run(ctx context.Context) {
	t := d.clock.NewTicker(d.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-t.C():
		}
		d.mu.Lock()
		active := d.active
		d.mu.Unlock()
		if active {
			d.poll(ctx)
		}
	}
}

// poll reads the Endpoints, and the own Node when the apiservers changed or
// it is not known yet.
func (d *degraded) poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout(d.interval))
	defer cancel()
	d.learnIdentity(ctx)
	ep, err := d.client.KubernetesEndpoints(ctx)
	if apierrors.IsNotFound(err) {
		ep, err = &corev1.Endpoints{}, nil // no apiserver holds a lease: an empty set
	}
	if err != nil {
		d.fail(err)
		return
	}
	addrs, endpoints := readyAddresses(ep)
	d.mu.Lock()
	same := d.answered && slices.Equal(addrs, d.addrs) && d.self.Name != ""
	node := strings.TrimPrefix(d.identity, NodeUserPrefix)
	if node == d.identity {
		node = ""
	}
	d.mu.Unlock()
	var self lbconfig.Node
	if node != "" && !same {
		if n, err := d.client.Node(ctx, node); err == nil {
			self = lbconfig.Node{Name: n.Name, InternalIPs: internalIPs(n)}
		}
	}
	d.mu.Lock()
	changed := !d.answered || !slices.Equal(addrs, d.addrs) || d.err != nil || (!same && !nodeEqual(self, d.self))
	d.answered, d.addrs, d.endpoints, d.err, d.contact = true, addrs, endpoints, nil, time.Now()
	if !same {
		d.self = self
	}
	active := d.active
	d.mu.Unlock()
	if changed && active {
		d.changed()
	}
}

func (d *degraded) fail(err error) {
	d.mu.Lock()
	first := d.err == nil
	d.err = err
	d.mu.Unlock()
	if first {
		d.changed()
	}
}

// learnIdentity asks the API who we are (a SelfSubjectReview, allowed to
// every authenticated user), once.
func (d *degraded) learnIdentity(ctx context.Context) {
	d.mu.Lock()
	known := d.identity != ""
	d.mu.Unlock()
	if known {
		return
	}
	if user, err := d.client.WhoAmI(ctx); err == nil && user != "" {
		d.mu.Lock()
		d.identity = user
		d.mu.Unlock()
	}
}

// readyAddresses lists the ready apiserver IPs of the kubernetes Endpoints,
// sorted, and the same as host:port for every port.
func readyAddresses(ep *corev1.Endpoints) (addrs, endpoints []string) {
	for _, ss := range ep.Subsets {
		for _, a := range ss.Addresses {
			addrs = append(addrs, a.IP)
			for _, p := range ss.Ports {
				endpoints = append(endpoints, net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
			}
		}
	}
	sort.Strings(addrs)
	sort.Strings(endpoints)
	return slices.Compact(addrs), slices.Compact(endpoints)
}

func internalIPs(n *corev1.Node) []string {
	var out []string
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			out = append(out, a.Address)
		}
	}
	return out
}
