package discovery

import (
	"context"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"

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

// Snapshot is the cluster state the configuration is computed from.
type Snapshot struct {
	Nodes []lbconfig.Node // sorted by name, each node once
	// APIEndpoints are the ready addresses (host:port) of the kubernetes
	// Service's EndpointSlices: the apiservers that currently hold a lease.
	APIEndpoints []string
}

// Source watches the API and signals relevant changes.
type Source struct {
	nodes      []*projStore[lbconfig.Node]
	slices     *projStore[[]string]
	reflectors []*cache.Reflector
	changed    chan struct{}
	signals    atomic.Uint64
	wg         sync.WaitGroup
}

// Client hands out the list/watch functions discovery runs on. The monitor
// builds them from a minimal REST client (only core/v1 and discovery/v1 in its
// scheme: the full clientset costs ~10 MB of resident memory); tests adapt a
// clientset with FromClientset.
type Client interface {
	// Nodes lists and watches Nodes matching labelSelector.
	Nodes(labelSelector string) cache.ListerWatcher
	// EndpointSlices lists and watches EndpointSlices in namespace matching
	// labelSelector.
	EndpointSlices(namespace, labelSelector string) cache.ListerWatcher
}

// New prepares the watches on client; Start runs them.
func New(client Client) *Source {
	s := &Source{changed: make(chan struct{}, 1)}
	// A label selector cannot OR two keys, so one watch per role label; the
	// apiserver filters, so workers are never sent.
	for _, label := range []string{MasterLabel, ControlPlaneLabel} {
		store := newProjStore(projectNode(label), nodeEqual, s.signal)
		s.add(client.Nodes(label), &corev1.Node{}, store, "nodes["+label+"]")
		s.nodes = append(s.nodes, store)
	}
	s.slices = newProjStore(projectSlice, slices.Equal[[]string], s.signal)
	lw := client.EndpointSlices(metav1.NamespaceDefault, discoveryv1.LabelServiceName+"=kubernetes")
	s.add(lw, &discoveryv1.EndpointSlice{}, s.slices, "endpointslices[default/kubernetes]")
	return s
}

func (s *Source) add(lw cache.ListerWatcher, typ runtime.Object, store cache.ReflectorStore, name string) {
	backoff := RetryBackoff
	s.reflectors = append(s.reflectors, cache.NewReflectorWithOptions(lw, typ, store, cache.ReflectorOptions{
		Name: name, Backoff: &backoff,
	}))
}

// Changes delivers at most one pending signal; a receiver then reads Snapshot.
func (s *Source) Changes() <-chan struct{} { return s.changed }

// Start runs the watches until ctx ends.
func (s *Source) Start(ctx context.Context) {
	for _, r := range s.reflectors {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			r.RunWithContext(ctx)
		}()
	}
}

// Shutdown waits for the watches after the context passed to Start ended.
func (s *Source) Shutdown() { s.wg.Wait() }

// HasSynced reports whether every watch has completed its first list.
func (s *Source) HasSynced() bool {
	for _, n := range s.nodes {
		if !n.hasSynced() {
			return false
		}
	}
	return s.slices.hasSynced()
}

// WaitForSync blocks until HasSynced or ctx ends, and reports which.
func (s *Source) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), s.HasSynced)
}

// Snapshot reads the stores.
func (s *Source) Snapshot() Snapshot {
	byName := map[string]lbconfig.Node{}
	for _, st := range s.nodes {
		st.each(func(name string, n lbconfig.Node) { byName[name] = n })
	}
	snap := Snapshot{Nodes: make([]lbconfig.Node, 0, len(byName))}
	for _, n := range byName {
		snap.Nodes = append(snap.Nodes, n)
	}
	sort.Slice(snap.Nodes, func(i, j int) bool { return snap.Nodes[i].Name < snap.Nodes[j].Name })
	s.slices.each(func(_ string, eps []string) { snap.APIEndpoints = append(snap.APIEndpoints, eps...) })
	sort.Strings(snap.APIEndpoints)
	snap.APIEndpoints = slices.Compact(snap.APIEndpoints)
	return snap
}

// LastContact is the last time any watch heard from the API (an event, a
// bookmark or a list); zero before the first.
func (s *Source) LastContact() time.Time {
	last := s.slices.lastContact()
	for _, n := range s.nodes {
		if t := n.lastContact(); t.After(last) {
			last = t
		}
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
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				out.InternalIPs = append(out.InternalIPs, a.Address)
			}
		}
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
