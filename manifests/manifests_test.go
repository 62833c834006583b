package manifests

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
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
}

// Least privilege: no container privileged or able to gain privileges, no
// host root mounted, read-only root filesystems, and exactly the capabilities
// each needs (the lab runs each component with these and no others).
func TestLeastPrivilege(t *testing.T) {
	want := map[string]string{"haproxy": "", "haproxy-monitor": "NET_ADMIN", "keepalived": "NET_ADMIN,NET_RAW,NET_BROADCAST,SETGID"}
	for _, name := range []string{"haproxy.yaml", "keepalived.yaml"} {
		pod, err := Pod(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range pod.Spec.Volumes {
			if v.HostPath != nil && (v.HostPath.Path == "/" || v.HostPath.Path == "/var/lib/kubelet" || v.HostPath.Path == "/etc") {
				t.Errorf("%s mounts the host's %s", name, v.HostPath.Path)
			}
		}
		for _, c := range pod.Spec.Containers {
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s/%s has no securityContext", name, c.Name)
				continue
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s/%s is privileged", name, c.Name)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s/%s may gain privileges", name, c.Name)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s/%s has a writable root filesystem", name, c.Name)
			}
			caps, err := Capabilities(pod, c.Name)
			if err != nil {
				t.Error(err)
			}
			if got := strings.Join(caps, ","); got != want[c.Name] {
				t.Errorf("%s/%s capabilities %q, want %q", name, c.Name, got, want[c.Name])
			}
		}
	}
}

// Every manifest in the directory decodes strictly; a new one cannot slip by.
func TestAllManifestsDecode(t *testing.T) {
	entries, err := files.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		var err error
		if e.Name() == "rbac.yaml" {
			_, err = LoadRBAC()
		} else {
			_, err = Pod(e.Name())
		}
		if err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
}

// The grant is least privilege: read-only verbs, Nodes cluster-wide (RBAC
// cannot narrow a list to a label), the EndpointSlice only by the name
// kubernetes in default, every binding to system:nodes.
func TestRBACIsLeastPrivilege(t *testing.T) {
	r, err := LoadRBAC()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.ClusterRoles) != 1 || len(r.Roles) != 1 || len(r.ClusterRoleBindings) != 1 || len(r.RoleBindings) != 1 {
		t.Fatalf("want one ClusterRole, Role and binding each: %+v", r)
	}
	cr := r.ClusterRoles[0].Rules
	if len(cr) != 1 || strings.Join(cr[0].Resources, ",") != "nodes" || strings.Join(cr[0].Verbs, ",") != "list,watch" || len(cr[0].APIGroups) != 1 || cr[0].APIGroups[0] != "" {
		t.Errorf("ClusterRole rules %+v, want list and watch of core nodes only", cr)
	}
	role := r.Roles[0]
	rr := role.Rules
	if role.Namespace != "default" || len(rr) != 1 || strings.Join(rr[0].Resources, ",") != "endpointslices" ||
		strings.Join(rr[0].ResourceNames, ",") != "kubernetes" || strings.Join(rr[0].Verbs, ",") != "get,list,watch" {
		t.Errorf("Role %s/%s rules %+v, want get/list/watch of the endpointslice kubernetes in default", role.Namespace, role.Name, rr)
	}
	for _, s := range append(r.ClusterRoleBindings[0].Subjects, r.RoleBindings[0].Subjects...) {
		if s.Kind != "Group" || s.Name != "system:nodes" {
			t.Errorf("binding subject %+v, want the group system:nodes", s)
		}
	}
	if r.ClusterRoleBindings[0].RoleRef.Name != r.ClusterRoles[0].Name || r.RoleBindings[0].RoleRef.Name != role.Name || r.RoleBindings[0].Namespace != "default" {
		t.Error("bindings do not refer to the roles")
	}
}

// Each container mounts exactly the host paths docs/deploying.md lists for
// it ("What each container may do"), read-only where it says so.
func TestHostPathsAsDocumented(t *testing.T) {
	want := map[string][]string{
		"haproxy/haproxy": {"/etc/haproxy (ro)"},
		"haproxy/haproxy-monitor": {"/etc/haproxy", "/etc/kubernetes/static-pod-resources/haproxy (ro)",
			"/run/haproxy-monitor", "/var/lib/kubelet/kubeconfig (ro)", "/var/lib/kubelet/pki (ro)"},
		"keepalived/keepalived": {"/etc/kubernetes/static-pod-resources/keepalived (ro)", "/run/haproxy-monitor (ro)"},
	}
	got := map[string][]string{}
	for _, name := range []string{"haproxy.yaml", "keepalived.yaml"} {
		pod, err := Pod(name)
		if err != nil {
			t.Fatal(err)
		}
		host := map[string]string{}
		for _, v := range pod.Spec.Volumes {
			if v.HostPath != nil {
				host[v.Name] = v.HostPath.Path
			}
		}
		for _, c := range pod.Spec.Containers {
			key := strings.TrimSuffix(name, ".yaml") + "/" + c.Name
			for _, m := range c.VolumeMounts {
				p, ok := host[m.Name]
				if !ok {
					continue
				}
				if m.ReadOnly {
					p += " (ro)"
				}
				got[key] = append(got[key], p)
			}
			slices.Sort(got[key])
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("host paths:\n got %v\nwant %v", got, want)
	}
}
