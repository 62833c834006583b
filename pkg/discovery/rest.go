package discovery

//lint:file-ignore SA1019 v1 Endpoints default/kubernetes is the one member source a node may read without a grant (README, Permissions)

import (
	"context"
	"fmt"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// KubernetesName is the name of the Service, Endpoints and EndpointSlice the
// apiservers publish themselves in, in the default namespace.
const KubernetesName = "kubernetes"

// restClient lists and watches through REST clients whose scheme knows only
// the types discovery reads.
type restClient struct {
	core, disc, authn rest.Interface
	params            runtime.ParameterCodec
}

// NewRESTClient builds the production Client from cfg.
func NewRESTClient(cfg *rest.Config) (Client, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, discoveryv1.AddToScheme, authnv1.AddToScheme} {
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
		rc, err := rest.RESTClientFor(c)
		if err != nil {
			return nil, fmt.Errorf("API client for %s: %w", gv, err)
		}
		return rc, nil
	}
	rc := &restClient{params: runtime.NewParameterCodec(scheme)}
	var err error
	if rc.core, err = client(corev1.SchemeGroupVersion, "/api"); err != nil {
		return nil, err
	}
	if rc.disc, err = client(discoveryv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	if rc.authn, err = client(authnv1.SchemeGroupVersion, "/apis"); err != nil {
		return nil, err
	}
	return rc, nil
}

func (c *restClient) Nodes(selector string) cache.ListerWatcher {
	return c.listWatch(c.core, "", "nodes", selector, "", func() runtime.Object { return &corev1.NodeList{} })
}

func (c *restClient) KubernetesSlices() cache.ListerWatcher {
	return c.listWatch(c.disc, metav1.NamespaceDefault, "endpointslices", "", KubernetesName, func() runtime.Object { return &discoveryv1.EndpointSliceList{} })
}

func (c *restClient) KubernetesEndpoints(ctx context.Context) (*corev1.Endpoints, error) {
	out := &corev1.Endpoints{}
	err := c.core.Get().Namespace(metav1.NamespaceDefault).Resource("endpoints").Name(KubernetesName).Do(ctx).Into(out)
	return out, err
}

func (c *restClient) Node(ctx context.Context, name string) (*corev1.Node, error) {
	out := &corev1.Node{}
	err := c.core.Get().Resource("nodes").Name(name).Do(ctx).Into(out)
	return out, err
}

func (c *restClient) WhoAmI(ctx context.Context) (string, error) {
	out := &authnv1.SelfSubjectReview{}
	err := c.authn.Post().Resource("selfsubjectreviews").Body(&authnv1.SelfSubjectReview{}).Do(ctx).Into(out)
	return out.Status.UserInfo.Username, err
}

// listWatch filters by label and, when name is set, by metadata.name: the
// apiserver authorizes such a list or watch as a request for that one name,
// so an RBAC rule with resourceNames covers it.
func (c *restClient) listWatch(rc rest.Interface, ns, resource, labels, name string, newList func() runtime.Object) cache.ListerWatcher {
	filter := func(o *metav1.ListOptions) {
		o.LabelSelector = labels
		if name != "" {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			filter(&o)
			out := newList()
			err := rc.Get().Namespace(ns).Resource(resource).VersionedParams(&o, c.params).Do(ctx).Into(out)
			return out, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			filter(&o)
			o.Watch = true
			return rc.Get().Namespace(ns).Resource(resource).VersionedParams(&o, c.params).Watch(ctx)
		},
	}
}
