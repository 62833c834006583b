package harness

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/haproxy-monitor/haproxy-monitor/manifests"
)

// ApplyRBAC creates what manifests/rbac.yaml holds, as "kubectl apply" would
// on a cluster without it; objects that exist already are left alone.
func ApplyRBAC(ctx context.Context, c kubernetes.Interface) error {
	r, err := manifests.LoadRBAC()
	if err != nil {
		return err
	}
	rb := c.RbacV1()
	var errs []error
	for i := range r.ClusterRoles {
		_, err := rb.ClusterRoles().Create(ctx, &r.ClusterRoles[i], metav1.CreateOptions{})
		errs = append(errs, err)
	}
	for i := range r.ClusterRoleBindings {
		_, err := rb.ClusterRoleBindings().Create(ctx, &r.ClusterRoleBindings[i], metav1.CreateOptions{})
		errs = append(errs, err)
	}
	for i := range r.Roles {
		_, err := rb.Roles(r.Roles[i].Namespace).Create(ctx, &r.Roles[i], metav1.CreateOptions{})
		errs = append(errs, err)
	}
	for i := range r.RoleBindings {
		_, err := rb.RoleBindings(r.RoleBindings[i].Namespace).Create(ctx, &r.RoleBindings[i], metav1.CreateOptions{})
		errs = append(errs, err)
	}
	for _, err := range errs {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("applying manifests/rbac.yaml: %w", err)
		}
	}
	return nil
}

// RemoveRBAC deletes the bindings of manifests/rbac.yaml (the roles stay, as
// an operator revoking the grant would leave them).
func RemoveRBAC(ctx context.Context, c kubernetes.Interface) error {
	r, err := manifests.LoadRBAC()
	if err != nil {
		return err
	}
	rb := c.RbacV1()
	var errs []error
	for _, b := range r.ClusterRoleBindings {
		errs = append(errs, rb.ClusterRoleBindings().Delete(ctx, b.Name, metav1.DeleteOptions{}))
	}
	for _, b := range r.RoleBindings {
		errs = append(errs, rb.RoleBindings(b.Namespace).Delete(ctx, b.Name, metav1.DeleteOptions{}))
	}
	for _, err := range errs {
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("removing the bindings of manifests/rbac.yaml: %w", err)
		}
	}
	return nil
}
