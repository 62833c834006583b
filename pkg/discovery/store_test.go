package discovery

//lint:file-ignore SA1019 the stub implements the Client, whose degraded source is the v1 Endpoints

import (
	"context"
	"errors"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
)

func testNode(name string, labelled bool, ips ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if labelled {
		n.Labels[MasterLabel] = ""
	}
	for _, ip := range ips {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	return n
}

func TestProjStoreSignalsOnlyRealChanges(t *testing.T) {
	changes := 0
	s := newProjStore(projectNode(MasterLabel), nodeEqual, func() { changes++ })
	step := func(what string, want int, f func()) {
		t.Helper()
		before := changes
		f()
		if got := changes - before; got != want {
			t.Errorf("%s: %d change signals, want %d", what, got, want)
		}
	}
	step("first list", 1, func() {
		_ = s.Replace([]any{testNode("m1", true, "198.18.0.1"), testNode("w1", false, "198.18.0.9")}, "1")
	})
	step("identical relist", 0, func() { _ = s.Replace([]any{testNode("m1", true, "198.18.0.1")}, "2") })
	if !s.hasSynced() {
		t.Fatal("not synced after a list")
	}
	beat := testNode("m1", true, "198.18.0.1")
	beat.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	beat.Annotations = map[string]string{"x": "y"}
	step("heartbeat update", 0, func() { _ = s.Update(beat) })
	step("worker update", 0, func() { _ = s.Update(testNode("w1", false, "198.18.0.10")) })
	step("address change", 1, func() { _ = s.Update(testNode("m1", true, "198.18.0.2")) })
	step("relabelled away", 1, func() { _ = s.Update(testNode("m1", false, "198.18.0.2")) })
	step("delete of an unknown node", 0, func() { _ = s.Delete(testNode("m1", false)) })
	step("add back", 1, func() { _ = s.Add(testNode("m1", true, "198.18.0.2")) })
	step("tombstone delete", 1, func() { _ = s.Delete(cache.DeletedFinalStateUnknown{Key: "m1", Obj: testNode("m1", true)}) })
	step("relist with a new member", 1, func() { _ = s.Replace([]any{testNode("m2", true, "198.18.0.3")}, "3") })

	var names []string
	s.each(func(k string, n lbconfig.Node) { names = append(names, k+"="+n.InternalIPs[0]) })
	if len(names) != 1 || names[0] != "m2=198.18.0.3" {
		t.Fatalf("store holds %v after the relist", names)
	}
	before := s.lastContact()
	_ = s.Bookmark("4")
	if !s.lastContact().After(before) {
		t.Error("a bookmark did not count as contact with the API")
	}
}

// The original lists only Nodes labelled node-role.kubernetes.io/master;
// kubeadm since 1.24 labels control-plane only, so we watch both.
func TestDifferenceBothRoleLabels(t *testing.T) {
	for _, label := range []string{MasterLabel, ControlPlaneLabel} {
		n := testNode("m1", false, "198.18.0.1")
		n.Labels[label] = ""
		if _, _, ok := projectNode(label)(n); !ok {
			t.Errorf("a node labelled %s is not a member", label)
		}
	}
	var asked []string
	New(stubClient{nodes: func(sel string) { asked = append(asked, sel) }}, Options{})
	if !reflect.DeepEqual(asked, []string{MasterLabel, ControlPlaneLabel}) {
		t.Fatalf("watches asked for %v, want one per role label", asked)
	}
}

// stubClient records what is asked of it and serves nothing.
type stubClient struct{ nodes func(selector string) }

func (s stubClient) Nodes(sel string) cache.ListerWatcher {
	s.nodes(sel)
	return &cache.ListWatch{}
}
func (stubClient) KubernetesSlices() cache.ListerWatcher { return &cache.ListWatch{} }
func (stubClient) KubernetesEndpoints(context.Context) (*corev1.Endpoints, error) {
	return nil, errors.New("stub")
}
func (stubClient) Node(context.Context, string) (*corev1.Node, error) { return nil, errors.New("stub") }
func (stubClient) WhoAmI(context.Context) (string, error)             { return "", errors.New("stub") }
