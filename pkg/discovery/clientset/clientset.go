// Package clientset adapts a client-go clientset (typically the fake one in
// tests) to discovery.Client. The monitor binary does not import it: the full
// clientset's scheme costs ~10 MB of resident memory.
package clientset

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery"
)

type adapter struct{ c kubernetes.Interface }

// New returns a discovery.Client over c.
func New(c kubernetes.Interface) discovery.Client { return adapter{c} }

func (a adapter) Nodes(selector string) cache.ListerWatcher {
	nodes := a.c.CoreV1().Nodes()
	return wrap(a.c, selector,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return nodes.List(ctx, o) },
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return nodes.Watch(ctx, o) })
}

func (a adapter) EndpointSlices(ns, selector string) cache.ListerWatcher {
	es := a.c.DiscoveryV1().EndpointSlices(ns)
	return wrap(a.c, selector,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return es.List(ctx, o) },
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return es.Watch(ctx, o) })
}

func wrap(c kubernetes.Interface, selector string, list cache.ListWithContextFunc, w cache.WatchFuncWithContext) cache.ListerWatcher {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			return list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector
			return w(ctx, o)
		},
	}
	// Tells the reflector whether the client can stream the initial list
	// (the fake clientset cannot).
	return cache.ToListWatcherWithWatchListSemantics(lw, c)
}
