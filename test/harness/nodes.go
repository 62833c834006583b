package harness

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Role labels, as the monitor selects them.
const (
	MasterLabel       = "node-role.kubernetes.io/master"
	ControlPlaneLabel = "node-role.kubernetes.io/control-plane"
)

// NodeObject builds a Node with InternalIPs and an optional role label.
func NodeObject(name, label string, ips ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	if label != "" {
		n.Labels[label] = ""
	}
	for _, ip := range ips {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
	return n
}

// CreateNode creates n and sets its status (addresses live in status, which
// create ignores).
func CreateNode(ctx context.Context, c kubernetes.Interface, n *corev1.Node) error {
	status := n.Status
	created, err := c.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating node %s: %w", n.Name, err)
	}
	created.Status = status
	if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("setting status of node %s: %w", n.Name, err)
	}
	return nil
}

// UpdateNode applies mutate to the node's metadata and spec (labels, say),
// retrying on conflicts.
func UpdateNode(ctx context.Context, c kubernetes.Interface, name string, mutate func(*corev1.Node)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(n)
		_, err = c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// UpdateNodeStatus applies mutate to the node's status, retrying on conflicts.
func UpdateNodeStatus(ctx context.Context, c kubernetes.Interface, name string, mutate func(*corev1.Node)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(n)
		_, err = c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

// SetInternalIP replaces the node's InternalIPs.
func SetInternalIP(ctx context.Context, c kubernetes.Interface, name string, ips ...string) error {
	return UpdateNodeStatus(ctx, c, name, func(n *corev1.Node) {
		addrs := []corev1.NodeAddress{}
		for _, ip := range ips {
			addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
		}
		n.Status.Addresses = append(addrs, corev1.NodeAddress{Type: corev1.NodeHostName, Address: name})
	})
}

// Heartbeat does what the kubelet does every few seconds: bumps the Ready
// condition's heartbeat time in status.
func Heartbeat(ctx context.Context, c kubernetes.Interface, name string) error {
	return UpdateNodeStatus(ctx, c, name, func(n *corev1.Node) {
		now := metav1.NewTime(time.Now())
		n.Status.Conditions = []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: now, LastTransitionTime: now,
		}}
	})
}

// DeleteAllNodes removes every Node.
func DeleteAllNodes(ctx context.Context, c kubernetes.Interface) error {
	return c.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
}
