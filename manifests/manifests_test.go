package manifests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	corev1 "k8s.io/api/core/v1"
)

func TestHAProxyPodDecodesStrictly(t *testing.T) {
	pod, err := Pod("haproxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !pod.Spec.HostNetwork || pod.Spec.PriorityClassName != "system-node-critical" {
		t.Error("static pod must run on the host network as system-node-critical")
	}
	names := map[string]corev1.Container{}
	for _, c := range pod.Spec.Containers {
		names[c.Name] = c
	}
	mon, ok := names["haproxy-monitor"]
	if !ok {
		t.Fatal("no haproxy-monitor container")
	}
	for what, p := range map[string]*corev1.Probe{"liveness": mon.LivenessProbe, "readiness": mon.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("monitor has no HTTP %s probe", what)
		}
	}
	if mon.LivenessProbe.HTTPGet.Path != "/healthz" || mon.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("monitor probes must use /healthz and /readyz")
	}
	script, err := Script(pod, "haproxy-monitor")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(script, "/var/lib/kubelet/kubeconfig /config/haproxy.cfg.tmpl /etc/haproxy/haproxy.cfg") {
		t.Error("monitor is not called with the original's three positional arguments")
	}
	volumes := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = true
		if v.HostPath == nil && v.EmptyDir == nil {
			t.Errorf("volume %s has no source", v.Name)
		}
	}
	for _, c := range pod.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				t.Errorf("container %s mounts unknown volume %s", c.Name, m.Name)
			}
		}
	}
}

func TestStrictDecodeCatchesTypos(t *testing.T) {
	b, _ := files.ReadFile("haproxy.yaml")
	broken := strings.Replace(string(b), "emptyDir: {}", "empty-dir: {}", 1)
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict([]byte(broken), &pod); err == nil {
		t.Fatal("the seed article's empty-dir typo decoded without error")
	}
}

// The reloader script must at least parse as bash.
func TestReloaderScriptParses(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	pod, err := Pod("haproxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"haproxy", "haproxy-monitor"} {
		script, err := Script(pod, c)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), c+".sh")
		_ = os.WriteFile(f, []byte(script), 0o644)
		if out, err := exec.Command(bash, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s script: %v: %s", c, err, out)
		}
	}
}

func TestKeepalivedPodDecodesStrictly(t *testing.T) {
	pod, err := Pod("keepalived.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(pod.Spec.Containers) != 1 || !pod.Spec.HostNetwork {
		t.Fatal("keepalived must be one container on the host network")
	}
	c := pod.Spec.Containers[0]
	if c.Command[0] != "/usr/sbin/keepalived" || !strings.Contains(strings.Join(c.Command, " "), "--use-file=/etc/keepalived/keepalived.conf") {
		t.Errorf("keepalived command %v", c.Command)
	}
	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Error("keepalived needs privileges to add the VIP and send VRRP")
	}
}

// Every manifest in the directory decodes strictly; a new one cannot slip by.
func TestAllManifestsDecode(t *testing.T) {
	entries, err := files.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, err := Pod(e.Name()); err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
}
