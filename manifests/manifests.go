// Package manifests embeds the static pod manifests so tests and the lab use
// the shipped files, not copies that could drift.
package manifests

import (
	"embed"
	"fmt"

	corev1 "k8s.io/api/core/v1"
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
