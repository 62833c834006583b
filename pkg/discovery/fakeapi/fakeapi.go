// Package fakeapi is a fake clientset for tests of discovery and the monitor
// that refuses resources with 403 as the Node authorizer does.
package fakeapi

//lint:file-ignore SA1019 v1 Endpoints default/kubernetes is the one member source a node may read without a grant (README, Permissions)

import (
	"sync/atomic"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery"
)

// Cluster is a fake API with two masters (m1 198.18.0.11, m2 198.18.0.12), a
// worker, the kubernetes Endpoints and EndpointSlice, and a switch per
// resource (nodes, endpointslices, endpoints) that makes it answer 403 as the
// Node authorizer does to a node without a grant.
type Cluster struct {
	Client *fake.Clientset
	// Deny switches 403s on, by resource.
	Deny map[string]*atomic.Bool
	// watches are the open node watches, to end them as a timeout would.
	watches chan *watch.RaceFreeFakeWatcher
}

// New returns the cluster as seen by user (the SelfSubjectReview answer).
func New(user string) *Cluster {
	master := func(name, ip string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{discovery.MasterLabel: ""}},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}}}
	}
	worker := master("w1", "198.18.0.21")
	worker.Labels = nil
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "198.18.0.12"}, {IP: "198.18.0.11"}},
			Ports:     []corev1.EndpointPort{{Port: 6443}}}}}
	slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"198.18.0.11"}}, {Addresses: []string{"198.18.0.12"}}},
		Ports:       []discoveryv1.EndpointPort{{Port: ptr.To(int32(6443))}}}
	c := &Cluster{
		Client:  fake.NewClientset(master("m1", "198.18.0.11"), master("m2", "198.18.0.12"), worker, ep, slice),
		Deny:    map[string]*atomic.Bool{"nodes": {}, "endpointslices": {}, "endpoints": {}},
		watches: make(chan *watch.RaceFreeFakeWatcher, 16),
	}
	for res, deny := range c.Deny {
		forbid := func(a k8stesting.Action) (bool, runtime.Object, error) {
			if !deny.Load() {
				return false, nil, nil
			}
			// The Node authorizer lets a node get its own Node.
			if g, ok := a.(k8stesting.GetAction); ok && res == "nodes" && "system:node:"+g.GetName() == user {
				return false, nil, nil
			}
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: res}, "", nil)
		}
		c.Client.PrependReactor("*", res, forbid)
		c.Client.PrependWatchReactor(res, func(a k8stesting.Action) (bool, watch.Interface, error) {
			_, _, err := forbid(a)
			if err != nil {
				return true, nil, err
			}
			if res != "nodes" {
				return false, nil, nil
			}
			w := watch.NewRaceFreeFake()
			c.watches <- w
			return true, w, nil
		})
	}
	c.Client.PrependReactor("create", "selfsubjectreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, &authnv1.SelfSubjectReview{Status: authnv1.SelfSubjectReviewStatus{UserInfo: authnv1.UserInfo{Username: user}}}, nil
	})
	return c
}

// EndWatches closes the open node watches, as their timeout would: the
// reflectors list again.
func (c *Cluster) EndWatches() {
	for {
		select {
		case w := <-c.watches:
			w.Stop()
		default:
			return
		}
	}
}
