// Package clientset adapts a client-go clientset (typically the fake one in
// tests) to discovery.Client. The monitor binary does not import it: the full
// clientset's scheme costs ~10 MB of resident memory.
package clientset

//lint:file-ignore SA1019 v1 Endpoints default/kubernetes is the one member source a node may read without a grant (README, Permissions)

import (
	"context"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
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
	return wrap(a.c, func(o *metav1.ListOptions) { o.LabelSelector = selector },
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return nodes.List(ctx, o) },
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return nodes.Watch(ctx, o) })
}

func (a adapter) KubernetesSlices() cache.ListerWatcher {
	es := a.c.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault)
	byName := fields.OneTermEqualSelector("metadata.name", discovery.KubernetesName).String()
	return wrap(a.c, func(o *metav1.ListOptions) { o.FieldSelector = byName },
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return es.List(ctx, o) },
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return es.Watch(ctx, o) })
}

func (a adapter) KubernetesEndpoints(ctx context.Context) (*corev1.Endpoints, error) {
	return a.c.CoreV1().Endpoints(metav1.NamespaceDefault).Get(ctx, discovery.KubernetesName, metav1.GetOptions{})
}

func (a adapter) Node(ctx context.Context, name string) (*corev1.Node, error) {
	return a.c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
}

func (a adapter) WhoAmI(ctx context.Context) (string, error) {
	r, err := a.c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return r.Status.UserInfo.Username, nil
}

func wrap(c kubernetes.Interface, filter func(*metav1.ListOptions), list cache.ListWithContextFunc, w cache.WatchFuncWithContext) cache.ListerWatcher {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			filter(&o)
			return list(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			filter(&o)
			return w(ctx, o)
		},
	}
	// Tells the reflector whether the client can stream the initial list
	// (the fake clientset cannot).
	return cache.ToListWatcherWithWatchListSemantics(lw, c)
}
