package integration

//lint:file-ignore SA1019 v1 Endpoints default/kubernetes is the one member source a node may read without a grant (README, Permissions)

import (
	"context"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
)

// withoutRBAC removes the grant of manifests/rbac.yaml for the rest of the
// test and applies it again afterwards.
func withoutRBAC(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := harness.RemoveRBAC(ctx, client); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := harness.ApplyRBAC(ctx, client); err != nil {
			t.Error(err)
		}
	})
}

// waitAuthorized polls until path answers 200 to c: RBAC changes reach the
// apiserver's authorizer through its own informers, a moment later.
func waitAuthorized(t *testing.T, c *http.Client, path string) {
	t.Helper()
	if !harness.Poll(30*time.Second, 50*time.Millisecond, func() bool {
		resp, err := c.Get(cp.APIServers[0].URL + path)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("%s never became readable", path)
	}
}

// kubernetesEndpoints publishes addrs as the apiservers of the kubernetes
// Service, in its Endpoints and EndpointSlice, as kube-apiserver's lease
// reconciler does on a real cluster (the suite's apiserver on loopback runs
// without it). The API refuses loopback addresses there, so these are data
// only: nothing in this suite sends traffic to them. Removed at cleanup.
func (s *site) kubernetesEndpoints(addrs ...string) {
	s.t.Helper()
	ctx := context.Background()
	var epAddrs []corev1.EndpointAddress
	var sliceEPs []discoveryv1.Endpoint
	for _, a := range addrs {
		epAddrs = append(epAddrs, corev1.EndpointAddress{IP: a})
		sliceEPs = append(sliceEPs, discoveryv1.Endpoint{Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
	}
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
		Subsets: []corev1.EndpointSubset{{Addresses: epAddrs, Ports: []corev1.EndpointPort{{Name: "https", Port: int32(apiPort), Protocol: corev1.ProtocolTCP}}}}}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default",
			Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4, Endpoints: sliceEPs,
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(apiPort)), Protocol: ptr.To(corev1.ProtocolTCP)}}}
	if len(addrs) == 0 {
		ep.Subsets = nil
	}
	eps, slices := client.CoreV1().Endpoints("default"), client.DiscoveryV1().EndpointSlices("default")
	if old, err := eps.Get(ctx, "kubernetes", metav1.GetOptions{}); err == nil {
		ep.ResourceVersion = old.ResourceVersion
		_, err = eps.Update(ctx, ep, metav1.UpdateOptions{})
		if err != nil {
			s.t.Fatal(err)
		}
	} else if _, err := eps.Create(ctx, ep, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	if old, err := slices.Get(ctx, "kubernetes", metav1.GetOptions{}); err == nil {
		slice.ResourceVersion = old.ResourceVersion
		if _, err := slices.Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
			s.t.Fatal(err)
		}
	} else if _, err := slices.Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		for _, err := range []error{eps.Delete(ctx, "kubernetes", metav1.DeleteOptions{}), slices.Delete(ctx, "kubernetes", metav1.DeleteOptions{})} {
			if err != nil && !apierrors.IsNotFound(err) {
				s.t.Error(err)
			}
		}
	})
}
