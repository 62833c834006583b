// Package manifests embeds the static pod manifests so tests and the lab use
// the shipped files, not copies that could drift.
package manifests

import (
	"bytes"
	"embed"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

//go:embed *.yaml
var files embed.FS

// Pod decodes the named manifest strictly: an unknown or misspelt field (the
// seed article's "empty-dir") is an error, as it would be lost on the node.
func Pod(name string) (*corev1.Pod, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(b, &pod); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", name, err)
	}
	return &pod, nil
}

// Script returns the shell script a container runs as "bash -c <script>".
func Script(pod *corev1.Pod, container string) (string, error) {
	for _, c := range pod.Spec.Containers {
		if c.Name != container {
			continue
		}
		if len(c.Command) != 3 || c.Command[1] != "-c" {
			return "", fmt.Errorf("container %s does not run a bash -c script", container)
		}
		return c.Command[2], nil
	}
	return "", fmt.Errorf("no container %s in pod %s", container, pod.Name)
}

// Capabilities is what a container keeps: its securityContext must drop
// ALL, and these are the ones it adds back.
func Capabilities(pod *corev1.Pod, container string) ([]string, error) {
	for _, c := range pod.Spec.Containers {
		if c.Name != container {
			continue
		}
		sc := c.SecurityContext
		if sc == nil || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			return nil, fmt.Errorf("container %s does not drop ALL capabilities", container)
		}
		out := []string{}
		for _, c := range sc.Capabilities.Add {
			out = append(out, string(c))
		}
		return out, nil
	}
	return nil, fmt.Errorf("no container %s in pod %s", container, pod.Name)
}

// RBAC is manifests/rbac.yaml decoded strictly.
type RBAC struct {
	ClusterRoles        []rbacv1.ClusterRole
	ClusterRoleBindings []rbacv1.ClusterRoleBinding
	Roles               []rbacv1.Role
	RoleBindings        []rbacv1.RoleBinding
}

// LoadRBAC decodes every document of rbac.yaml; a kind it does not expect
// is an error.
func LoadRBAC() (*RBAC, error) {
	b, err := files.ReadFile("rbac.yaml")
	if err != nil {
		return nil, err
	}
	out := &RBAC{}
	for i, doc := range bytes.Split(b, []byte("\n---\n")) {
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, fmt.Errorf("rbac.yaml document %d: %w", i, err)
		}
		var target any
		switch meta.Kind {
		case "ClusterRole":
			out.ClusterRoles = append(out.ClusterRoles, rbacv1.ClusterRole{})
			target = &out.ClusterRoles[len(out.ClusterRoles)-1]
		case "ClusterRoleBinding":
			out.ClusterRoleBindings = append(out.ClusterRoleBindings, rbacv1.ClusterRoleBinding{})
			target = &out.ClusterRoleBindings[len(out.ClusterRoleBindings)-1]
		case "Role":
			out.Roles = append(out.Roles, rbacv1.Role{})
			target = &out.Roles[len(out.Roles)-1]
		case "RoleBinding":
			out.RoleBindings = append(out.RoleBindings, rbacv1.RoleBinding{})
			target = &out.RoleBindings[len(out.RoleBindings)-1]
		default:
			return nil, fmt.Errorf("rbac.yaml document %d: unexpected kind %q", i, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, target); err != nil {
			return nil, fmt.Errorf("rbac.yaml document %d: %w", i, err)
		}
	}
	return out, nil
}
