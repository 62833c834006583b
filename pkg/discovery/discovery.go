package discovery

import (
	"context"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
)

// Control-plane role labels; clusters carry one or both.
const (
	MasterLabel       = "node-role.kubernetes.io/master"
	ControlPlaneLabel = "node-role.kubernetes.io/control-plane"
)

// Snapshot is the cluster state the configuration is computed from.
type Snapshot struct {
	Nodes []lbconfig.Node // sorted by name, each node once
	// APIEndpoints are the ready addresses (host:port) of the kubernetes
	// Service's EndpointSlices: the apiservers that currently hold a lease.
	APIEndpoints []string
}

// Source runs the informers and signals relevant changes.
type Source struct {
	factories []informers.SharedInformerFactory
	nodes     []cache.SharedIndexInformer
	slices    cache.SharedIndexInformer
	changed   chan struct{}
	signals   atomic.Uint64
}

// New prepares informers on client; Start runs them.
func New(client kubernetes.Interface) *Source {
	s := &Source{changed: make(chan struct{}, 1)}
	// A label selector cannot OR two keys, so one informer per role label.
	for _, label := range []string{MasterLabel, ControlPlaneLabel} {
		f := informers.NewSharedInformerFactoryWithOptions(client, 0,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = label }),
			informers.WithTransform(stripNode))
		inf := f.Core().V1().Nodes().Informer()
		hasLabel := func(n *corev1.Node) bool { _, ok := n.Labels[label]; return ok }
		watchChanges(s, inf, hasLabel, func(a, b *corev1.Node) bool {
			return hasLabel(a) == hasLabel(b) && nodeEqual(nodeKey(a), nodeKey(b))
		})
		s.factories = append(s.factories, f)
		s.nodes = append(s.nodes, inf)
	}
	f := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(metav1.NamespaceDefault),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelServiceName + "=kubernetes"
		}),
		informers.WithTransform(stripSlice))
	s.slices = f.Discovery().V1().EndpointSlices().Informer()
	watchChanges(s, s.slices, func(*discoveryv1.EndpointSlice) bool { return true },
		func(a, b *discoveryv1.EndpointSlice) bool { return slices.Equal(sliceKey(a), sliceKey(b)) })
	s.factories = append(s.factories, f)
	return s
}

// Changes delivers at most one pending signal; a receiver then reads Snapshot.
func (s *Source) Changes() <-chan struct{} { return s.changed }

// Start runs the informers until ctx ends.
func (s *Source) Start(ctx context.Context) {
	for _, f := range s.factories {
		f.Start(ctx.Done())
	}
}

// Shutdown waits for the informer goroutines after ctx passed to Start ended.
func (s *Source) Shutdown() {
	for _, f := range s.factories {
		f.Shutdown()
	}
}

// HasSynced reports whether every informer has completed its first list.
func (s *Source) HasSynced() bool {
	for _, inf := range append(slices.Clone(s.nodes), s.slices) {
		if !inf.HasSynced() {
			return false
		}
	}
	return true
}

// WaitForSync blocks until HasSynced or ctx ends, and reports which.
func (s *Source) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), s.HasSynced)
}

// Snapshot reads the caches.
func (s *Source) Snapshot() Snapshot {
	byName := map[string]lbconfig.Node{}
	for _, inf := range s.nodes {
		for _, obj := range inf.GetStore().List() {
			// The apiserver filters by label already; checking again keeps a
			// watch that does not (fake clients, old proxies) from leaking workers.
			if n, ok := obj.(*corev1.Node); ok && isControlPlane(n) {
				byName[n.Name] = nodeKey(n)
			}
		}
	}
	snap := Snapshot{Nodes: make([]lbconfig.Node, 0, len(byName))}
	for _, n := range byName {
		snap.Nodes = append(snap.Nodes, n)
	}
	sort.Slice(snap.Nodes, func(i, j int) bool { return snap.Nodes[i].Name < snap.Nodes[j].Name })
	for _, obj := range s.slices.GetStore().List() {
		if es, ok := obj.(*discoveryv1.EndpointSlice); ok {
			snap.APIEndpoints = append(snap.APIEndpoints, sliceKey(es)...)
		}
	}
	sort.Strings(snap.APIEndpoints)
	snap.APIEndpoints = slices.Compact(snap.APIEndpoints)
	return snap
}

// watchChanges signals on changes to relevant objects: adds of relevant
// objects, all deletes, and updates that equal reports as a real change while
// either side is relevant. Everything else (heartbeats, condition flips, image
// lists, nodes outside the control plane) is dropped here, before any render.
func watchChanges[T any](s *Source, inf cache.SharedIndexInformer, relevant func(T) bool, equal func(a, b T) bool) {
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if o, ok := obj.(T); !ok || relevant(o) {
				s.signal()
			}
		},
		DeleteFunc: func(any) { s.signal() },
		UpdateFunc: func(oldObj, newObj any) {
			a, ok1 := oldObj.(T)
			b, ok2 := newObj.(T)
			if ok1 && ok2 && (equal(a, b) || !relevant(a) && !relevant(b)) {
				return
			}
			s.signal()
		},
	})
}

// Signals counts the relevant changes seen so far (adds, deletes, updates that
// alter a member); irrelevant updates do not count.
func (s *Source) Signals() uint64 { return s.signals.Load() }

func (s *Source) signal() {
	s.signals.Add(1)
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func nodeKey(n *corev1.Node) lbconfig.Node {
	out := lbconfig.Node{Name: n.Name}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			out.InternalIPs = append(out.InternalIPs, a.Address)
		}
	}
	return out
}

func isControlPlane(n *corev1.Node) bool {
	_, master := n.Labels[MasterLabel]
	_, cp := n.Labels[ControlPlaneLabel]
	return master || cp
}

func nodeEqual(a, b lbconfig.Node) bool {
	return a.Name == b.Name && slices.Equal(a.InternalIPs, b.InternalIPs)
}

func sliceKey(es *discoveryv1.EndpointSlice) []string {
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
	return out
}
