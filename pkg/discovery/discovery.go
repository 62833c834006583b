package discovery

//lint:file-ignore SA1019 v1 Endpoints default/kubernetes is the one member source a node may read without a grant (README, Permissions)

import (
	"context"
	"fmt"
	"net"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
)

// Control-plane role labels; clusters carry one or both.
const (
	MasterLabel       = "node-role.kubernetes.io/master"
	ControlPlaneLabel = "node-role.kubernetes.io/control-plane"
)

// RetryBackoff is how the watches retry while the API is unreachable. The
// client-go default grows to 30 s, so a change made right after an outage
// would wait up to half a minute; capped at 3 s, recovery takes seconds, and
// each retry of a refused connection costs the apiservers nothing.
var RetryBackoff = wait.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 1 << 30, Cap: 3 * time.Second}

// Mode is where the members come from.
type Mode int

const (
	// ModeNone: no source has answered yet.
	ModeNone Mode = iota
	// ModeWatch: watches on the control-plane Nodes.
	ModeWatch
	// ModeDegraded: Nodes are forbidden; the apiservers of the
	// default/kubernetes Endpoints, polled.
	ModeDegraded
)

func (m Mode) String() string {
	switch m {
	case ModeWatch:
		return "watch"
	case ModeDegraded:
		return "degraded"
	}
	return "none"
}

// Snapshot is the cluster state the configuration is computed from.
type Snapshot struct {
	Mode Mode
	// Nodes are the control-plane Nodes, sorted by name (ModeWatch).
	Nodes []lbconfig.Node
	// APIServers are the ready IPs of the default/kubernetes Endpoints,
	// sorted (ModeDegraded).
	APIServers []string
	// Self is this node as the API describes it, when the identity is a
	// node's (ModeDegraded); zero otherwise.
	Self lbconfig.Node
	// APIEndpoints are the apiservers' host:port from the kubernetes
	// EndpointSlice, or from the Endpoints in ModeDegraded.
	APIEndpoints []string
	// SlicesCurrent says the EndpointSlice watch is synced: APIEndpoints
	// are then the ready apiservers as the API sees them now.
	SlicesCurrent bool
}

// Status says which sources the API refuses, for logs and readiness.
type Status struct {
	Mode Mode
	// Identity is the API user, once learnt (only asked in degraded mode).
	Identity string
	// NodesForbidden and SlicesForbidden are the 403s that stopped the
	// watches; nil while they may run.
	NodesForbidden  error
	SlicesForbidden error
	// DegradedErr is the last failure reading the Endpoints while degraded.
	DegradedErr error
}

// Options shape the sources.
type Options struct {
	// PollInterval is how often the degraded source is read, and how often
	// a forbidden watch asks again whether it is allowed.
	PollInterval time.Duration
	// Clock ticks those intervals; nil: the real clock.
	Clock clock.WithTicker
}

// Source watches the API and signals relevant changes. The stores, the
// guards of the watches and the degraded poller only poke; one goroutine
// owns the mode (it switches the degraded poller on and off) and publishes
// an immutable view, which Snapshot and Status read whole.
type Source struct {
	nodes     []*guardedWatch
	slices    *guardedWatch
	nodeSt    []*projStore[lbconfig.Node]
	sliceSt   *projStore[[]string]
	deg       *degraded
	poke      chan struct{}
	changed   chan struct{}
	signals   atomic.Uint64
	published atomic.Pointer[view]
	wg        sync.WaitGroup
}

// view is one published reading of every source.
type view struct {
	snap   Snapshot
	status Status
}

// Client hands out what discovery reads. The monitor builds it on a minimal
// REST client (only the types read here in its scheme: the full clientset
// costs ~10 MB of resident memory); tests adapt a clientset with
// clientset.New.
type Client interface {
	// Nodes lists and watches Nodes matching labelSelector.
	Nodes(labelSelector string) cache.ListerWatcher
	// KubernetesSlices lists and watches the EndpointSlice named kubernetes
	// in default, by name, so that a grant limited to that name suffices.
	KubernetesSlices() cache.ListerWatcher
	// KubernetesEndpoints gets the default/kubernetes Endpoints.
	KubernetesEndpoints(ctx context.Context) (*corev1.Endpoints, error)
	// Node gets one Node.
	Node(ctx context.Context, name string) (*corev1.Node, error)
	// WhoAmI returns the API user of the client's credentials.
	WhoAmI(ctx context.Context) (string, error)
}

// New prepares the watches on client; Start runs them.
func New(client Client, opts Options) *Source {
	if opts.PollInterval <= 0 {
		opts.PollInterval = 6 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	s := &Source{poke: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
	s.published.Store(&view{})
	s.deg = newDegraded(client, opts.PollInterval, opts.Clock, s.poked)
	// A label selector cannot OR two keys, so one watch per role label; the
	// apiserver filters, so workers are never sent.
	for _, label := range []string{MasterLabel, ControlPlaneLabel} {
		store := newProjStore(projectNode(label), nodeEqual, s.poked)
		s.nodeSt = append(s.nodeSt, store)
		s.nodes = append(s.nodes, &guardedWatch{name: "nodes[" + label + "]", inner: client.Nodes(label),
			typ: &corev1.Node{}, store: store, recheck: opts.PollInterval, clock: opts.Clock, changed: s.poked})
	}
	s.sliceSt = newProjStore(projectSlice, slices.Equal[[]string], s.poked)
	s.slices = &guardedWatch{name: "endpointslices[default/kubernetes]", inner: client.KubernetesSlices(),
		typ: &discoveryv1.EndpointSlice{}, store: s.sliceSt, recheck: opts.PollInterval, clock: opts.Clock, changed: s.poked}
	return s
}

// Changes delivers at most one pending signal; a receiver then reads Snapshot.
func (s *Source) Changes() <-chan struct{} { return s.changed }

// Start runs the watches until ctx ends.
func (s *Source) Start(ctx context.Context) {
	for _, g := range append(slices.Clone(s.nodes), s.slices) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			g.run(ctx)
		}()
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.deg.run(ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.own(ctx)
	}()
}

// poked tells the owner that a source changed; it never blocks.
func (s *Source) poked() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// own is the one goroutine that decides the mode and publishes the view,
// after every poke.
func (s *Source) own(ctx context.Context) {
	for {
		s.publish()
		select {
		case <-ctx.Done():
			return
		case <-s.poke:
		}
	}
}

// publish reads every source once, decides the mode, and publishes the
// view; the monitor is signalled when it differs from the last one. The
// degraded source polls while the Node watches are forbidden, and keeps
// standing in after a grant until they have synced.
func (s *Source) publish() {
	switch {
	case s.nodesForbidden() != nil:
		s.deg.setActive(true)
	case s.nodesCurrent():
		s.deg.setActive(false)
	}
	v := &view{snap: s.read(), status: s.readStatus()}
	v.status.Mode = v.snap.Mode
	if old := s.published.Swap(v); !sameView(old, v) {
		s.signal()
	}
}

func sameView(a, b *view) bool {
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	sa, sb := a.status, b.status
	return reflect.DeepEqual(a.snap, b.snap) && sa.Mode == sb.Mode && sa.Identity == sb.Identity &&
		errText(sa.NodesForbidden) == errText(sb.NodesForbidden) && errText(sa.SlicesForbidden) == errText(sb.SlicesForbidden) &&
		errText(sa.DegradedErr) == errText(sb.DegradedErr)
}

// Shutdown waits for the watches after the context passed to Start ended.
func (s *Source) Shutdown() { s.wg.Wait() }

// HasSynced reports whether a source of members has answered: the Node
// watches, or the degraded source. The EndpointSlices are optional.
func (s *Source) HasSynced() bool { return s.published.Load().snap.Mode != ModeNone }

// WaitForSync blocks until HasSynced or ctx ends, and reports which.
func (s *Source) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), s.HasSynced)
}

func (s *Source) nodesCurrent() bool {
	for _, g := range s.nodes {
		if !g.current() {
			return false
		}
	}
	return true
}

func (s *Source) nodesForbidden() error {
	for _, g := range s.nodes {
		if err := g.Forbidden(); err != nil {
			return err
		}
	}
	return nil
}

func (s *Source) mode() Mode {
	switch {
	case s.nodesCurrent():
		return ModeWatch
	case s.deg.view().answered:
		return ModeDegraded
	}
	return ModeNone
}

// Status reports the sources' state as last published.
func (s *Source) Status() Status { return s.published.Load().status }

// Snapshot is the cluster state as last published: one reading of every
// source, whole.
func (s *Source) Snapshot() Snapshot { return s.published.Load().snap }

func (s *Source) readStatus() Status {
	v := s.deg.view()
	return Status{Identity: v.identity, NodesForbidden: s.nodesForbidden(), SlicesForbidden: s.slices.Forbidden(), DegradedErr: v.err}
}

// read reads the stores.
func (s *Source) read() Snapshot {
	snap := Snapshot{Mode: s.mode()}
	switch snap.Mode {
	case ModeWatch:
		byName := map[string]lbconfig.Node{}
		for _, st := range s.nodeSt {
			st.each(func(name string, n lbconfig.Node) { byName[name] = n })
		}
		snap.Nodes = make([]lbconfig.Node, 0, len(byName))
		for _, n := range byName {
			snap.Nodes = append(snap.Nodes, n)
		}
		sort.Slice(snap.Nodes, func(i, j int) bool { return snap.Nodes[i].Name < snap.Nodes[j].Name })
	case ModeDegraded:
		v := s.deg.view()
		snap.APIServers, snap.Self = v.addrs, v.self
		snap.APIEndpoints = append(snap.APIEndpoints, v.endpoints...)
	}
	if snap.SlicesCurrent = s.slices.current(); snap.SlicesCurrent {
		s.sliceSt.each(func(_ string, eps []string) { snap.APIEndpoints = append(snap.APIEndpoints, eps...) })
	}
	sort.Strings(snap.APIEndpoints)
	snap.APIEndpoints = slices.Compact(snap.APIEndpoints)
	return snap
}

// LastContact is the last time the API told discovery anything (an event, a
// bookmark, a list or a degraded poll); zero before the first.
func (s *Source) LastContact() time.Time {
	last := s.sliceSt.lastContact()
	for _, n := range s.nodeSt {
		if t := n.lastContact(); t.After(last) {
			last = t
		}
	}
	if t := s.deg.lastContact(); t.After(last) {
		last = t
	}
	return last
}

// Signals counts the relevant changes seen so far.
func (s *Source) Signals() uint64 { return s.signals.Load() }

func (s *Source) signal() {
	s.signals.Add(1)
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// projectNode keeps a node's name and InternalIPs while it carries label.
// The apiserver filters by label already; checking again keeps a watch that
// does not (fake clients, old proxies) from leaking workers.
func projectNode(label string) func(any) (string, lbconfig.Node, bool) {
	return func(obj any) (string, lbconfig.Node, bool) {
		n, ok := obj.(*corev1.Node)
		if !ok {
			return "", lbconfig.Node{}, false
		}
		out := lbconfig.Node{Name: n.Name}
		if _, ok := n.Labels[label]; !ok {
			return n.Name, out, false
		}
		out.InternalIPs = internalIPs(n)
		return n.Name, out, true
	}
}

func nodeEqual(a, b lbconfig.Node) bool {
	return a.Name == b.Name && slices.Equal(a.InternalIPs, b.InternalIPs)
}

func projectSlice(obj any) (string, []string, bool) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return "", nil, false
	}
	var out []string
	for _, p := range es.Ports {
		if p.Port == nil {
			continue
		}
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, addr := range ep.Addresses {
				out = append(out, net.JoinHostPort(addr, strconv.Itoa(int(*p.Port))))
			}
		}
	}
	sort.Strings(out)
	return es.Namespace + "/" + es.Name, out, true
}

// NothingReadable reports that the API refuses both sources of members.
func (st Status) NothingReadable() bool {
	return st.NodesForbidden != nil && apierrors.IsForbidden(st.DegradedErr)
}

// Describe explains a status in one line for logs and readiness.
func (st Status) Describe() string {
	who := st.Identity
	if who == "" {
		who = "this identity"
	}
	switch {
	case st.NothingReadable():
		return fmt.Sprintf("%s may read neither the Nodes (%v) nor the default/kubernetes Endpoints (%v): apply manifests/rbac.yaml", who, st.NodesForbidden, st.DegradedErr)
	case st.NodesForbidden != nil && st.DegradedErr != nil:
		return fmt.Sprintf("%s may not list and watch Nodes, and reading the default/kubernetes Endpoints failed: %v", who, st.DegradedErr)
	case st.Mode == ModeDegraded:
		return fmt.Sprintf("degraded discovery: %s may not list and watch Nodes, backends are the apiservers of the default/kubernetes Endpoints, polled (apply manifests/rbac.yaml to watch Nodes)", who)
	}
	return ""
}
