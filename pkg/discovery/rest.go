package discovery

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// restClient lists and watches through two REST clients whose scheme knows
// only the types discovery reads.
type restClient struct {
	core, disc rest.Interface
	params     runtime.ParameterCodec
}

// NewRESTClient builds the production Client from cfg.
func NewRESTClient(cfg *rest.Config) (Client, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	codecs := serializer.NewCodecFactory(scheme).WithoutConversion()
	client := func(gv schema.GroupVersion, apiPath string) (rest.Interface, error) {
		c := rest.CopyConfig(cfg)
		c.GroupVersion, c.APIPath, c.NegotiatedSerializer = &gv, apiPath, codecs
		if c.UserAgent == "" {
			c.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		return rest.RESTClientFor(c)
	}
	core, err := client(corev1.SchemeGroupVersion, "/api")
	if err != nil {
		return nil, fmt.Errorf("API client for core/v1: %w", err)
	}
	disc, err := client(discoveryv1.SchemeGroupVersion, "/apis")
	if err != nil {
		return nil, fmt.Errorf("API client for discovery.k8s.io/v1: %w", err)
	}
	return &restClient{core: core, disc: disc, params: runtime.NewParameterCodec(scheme)}, nil
}

func (c *restClient) Nodes(selector string) cache.ListerWatcher {
	return c.listWatch(c.core, "", "nodes", selector, func() runtime.Object { return &corev1.NodeList{} })
}

func (c *restClient) EndpointSlices(namespace, selector string) cache.ListerWatcher {
	return c.listWatch(c.disc, namespace, "endpointslices", selector, func() runtime.Object { return &discoveryv1.EndpointSliceList{} })
}

func (c *restClient) listWatch(rc rest.Interface, ns, resource, selector string, newList func() runtime.Object) cache.ListerWatcher {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			out := newList()
			err := rc.Get().Namespace(ns).Resource(resource).VersionedParams(&o, c.params).Do(ctx).Into(out)
			return out, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector, o.Watch = selector, true
			return rc.Get().Namespace(ns).Resource(resource).VersionedParams(&o, c.params).Watch(ctx)
		},
	}
}
