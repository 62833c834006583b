package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/haproxy-monitor/haproxy-monitor/manifests"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
	"github.com/haproxy-monitor/haproxy-monitor/test/need"
)

// The kubelet lab runs beside the process lab, on addresses of its own.
var kubeletFam = family{name: "kubelet", vip: "198.19.0.100", host: "198.19.0.2", etcd: "198.19.0.5", client: "198.19.0.50",
	serviceCIDR: "198.19.128.0/24", bits: 24, nftFamily: "ip",
	master: func(i int) string { return fmt.Sprintf("198.19.0.%d", 10+i) }}

// podNamespace is the shipped manifests' namespace: the mirror pods go there.
const podNamespace = "openshift-openstack-infra"

// imageDir holds the OCI tars hack/build-images.sh makes.
func imageDir() string {
	if d := os.Getenv("HAPM_IMAGE_DIR"); d != "" {
		return d
	}
	return filepath.Join(repoRoot(), ".cache", "images")
}

// setupKubelet builds a lab whose masters each run containerd and a real
// kubelet, which runs manifests/haproxy.yaml and keepalived.yaml as static
// pods, as shipped but for the host paths (three nodes share one host) and
// the VIP. Each kubelet registers its own Node with its node identity
// through its local apiserver, as kubeadm's control-plane kubelets do in
// local mode (through the VIP nothing could start: keepalived gives the VIP
// only to a node whose haproxy serves, and haproxy serves only masters the
// kubelets have registered); the monitor runs with the same kubeconfig. The
// lab labels the registered Nodes as masters with its admin credentials, as
// an installer does: NodeRestriction forbids a kubelet the node-role labels.
func setupKubelet(fam family, tag string) (*lab, error) {
	images := []string{filepath.Join(imageDir(), "pause.tar"), filepath.Join(imageDir(), "haproxy-monitor.tar")}
	for _, img := range images {
		if _, err := os.Stat(img); err != nil {
			return nil, fmt.Errorf("image %s missing (hack/build-images.sh): %w", img, err)
		}
	}
	l, err := setupBase(fam, tag)
	if err != nil {
		return l, err
	}
	l.restore = harness.KubeletSysctls(l.net)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := l.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: podNamespace}}, metav1.CreateOptions{}); err != nil {
		return l, err
	}
	type started struct {
		m   *master
		err error
	}
	ch := make(chan started, len(masters))
	for i, name := range masters {
		go func() {
			m, err := l.startKubeletMaster(i, name, images)
			ch <- started{m, err}
		}()
	}
	var errs []string
	for range masters {
		s := <-ch
		if s.m != nil {
			l.masters = append(l.masters, s.m)
		}
		if s.err != nil {
			errs = append(errs, s.err.Error())
		}
	}
	if len(errs) > 0 {
		return l, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	for _, name := range masters {
		if !harness.Poll(60*time.Second, 200*time.Millisecond, func() bool {
			_, err := l.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			return err == nil
		}) {
			return l, fmt.Errorf("kubelet %s did not register its Node\n%s", name, l.diagnose())
		}
		if err := harness.UpdateNode(ctx, l.client, name, func(n *corev1.Node) { n.Labels[harness.MasterLabel] = "" }); err != nil {
			return l, err
		}
	}
	return l, l.converge()
}

// startKubeletMaster starts master i's containerd and kubelet and gives the
// kubelet the two static pods.
func (l *lab) startKubeletMaster(i int, name string, images []string) (*master, error) {
	dir := filepath.Join(l.dir, name)
	m := &master{name: name, index: i, dir: dir}
	node, err := harness.StartKubeletNode(l.cp, filepath.Join(dir, "node"), harness.KubeletOptions{
		Name: name, NodeIP: l.fam.master(i), NetNS: l.net.NS(name),
		APIServer: "https://" + net.JoinHostPort(l.fam.master(i), "6443"), Images: images, Lab: l.net,
	})
	m.node = node
	if err != nil {
		return m, err
	}
	return m, l.writeStaticPods(m, nil)
}

// The host paths of one kubelet master.
func (m *master) hostPaths() map[string]string {
	return map[string]string{
		"resources-haproxy":    filepath.Join(m.dir, "static-pod-resources", "haproxy"),
		"resources-keepalived": filepath.Join(m.dir, "static-pod-resources", "keepalived"),
		"etc-haproxy":          filepath.Join(m.dir, "etc-haproxy"),
		"run-haproxy-monitor":  filepath.Join(m.dir, "run-haproxy-monitor"),
	}
}

// writeStaticPods writes m's resources (the haproxy template, the rendered
// keepalived.conf) and both manifests into the kubelet's static pod
// directory; edit, when set, changes the haproxy pod first.
func (l *lab) writeStaticPods(m *master, edit func(*corev1.Pod)) error {
	p := m.hostPaths()
	for _, d := range p {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	tmpl, err := os.ReadFile(filepath.Join(repoRoot(), "templates", "haproxy.cfg.tmpl"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p["resources-haproxy"], "haproxy.cfg.tmpl"), tmpl, 0o644); err != nil {
		return err
	}
	// The paths as the keepalived container sees them.
	conf, err := keepalived.Render(filepath.Join(repoRoot(), "templates", "keepalived.conf.tmpl"), keepalived.Config{
		Interface: "eth0", VirtualRouterID: 51, Priority: priorityBase() + m.index, AuthPass: "hapmlab",
		HealthURL: "http://127.0.0.1:9444/haproxy_ready", VIPs: []netip.Addr{netip.MustParseAddr(l.vip)},
		TrackFile: "/var/run/haproxy-monitor/haproxy", AdvertInt: "1",
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(p["resources-keepalived"], "keepalived.conf"), conf, 0o644); err != nil {
		return err
	}
	hosts := map[string]string{
		"/etc/kubernetes/static-pod-resources/haproxy":    p["resources-haproxy"],
		"/etc/kubernetes/static-pod-resources/keepalived": p["resources-keepalived"],
		"/etc/haproxy":                p["etc-haproxy"],
		"/run/haproxy-monitor":        p["run-haproxy-monitor"],
		"/var/lib/kubelet/kubeconfig": m.node.Kubeconfig,
		"/var/lib/kubelet/pki":        m.node.PKIDir,
	}
	for _, f := range []string{"haproxy.yaml", "keepalived.yaml"} {
		pod, err := manifests.Pod(f)
		if err != nil {
			return err
		}
		if err := localize(pod, hosts, l.vip); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if edit != nil && f == "haproxy.yaml" {
			edit(pod)
		}
		if err := writeManifest(filepath.Join(m.node.ManifestDir, f), pod); err != nil {
			return err
		}
	}
	return nil
}

// localize points a shipped pod's host paths at this node's directories
// and its VIP at the lab's; a host path it does not know is an error, so a
// manifest change cannot slip past the lab onto the host.
func localize(pod *corev1.Pod, hosts map[string]string, vip string) error {
	for i, v := range pod.Spec.Volumes {
		if v.HostPath == nil {
			continue
		}
		to, ok := hosts[v.HostPath.Path]
		if !ok {
			return fmt.Errorf("volume %s: host path %s unknown to the lab", v.Name, v.HostPath.Path)
		}
		pod.Spec.Volumes[i].HostPath.Path = to
	}
	for i, c := range pod.Spec.Containers {
		for j, arg := range c.Command {
			pod.Spec.Containers[i].Command[j] = strings.ReplaceAll(arg, "--api-vips "+ipv4.vip, "--api-vips "+vip)
		}
	}
	return nil
}

// writeManifest writes a static pod file at once: the kubelet ignores
// dot-files, so a partial file is never read.
func writeManifest(path string, pod *corev1.Pod) error {
	b, err := yaml.Marshal(pod)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// mirrorPodsReady reports whether every master's two mirror pods are
// Running with every container ready.
func (l *lab) mirrorPodsReady(ctx context.Context) error {
	pods, err := l.client.CoreV1().Pods(podNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("pod %s is %s", p.Name, p.Status.Phase)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if !cs.Ready {
				return fmt.Errorf("pod %s: container %s not ready", p.Name, cs.Name)
			}
		}
		seen[p.Name] = true
	}
	for _, m := range masters {
		for _, p := range []string{"haproxy-" + m, "keepalived-" + m} {
			if !seen[p] {
				return fmt.Errorf("no mirror pod %s", p)
			}
		}
	}
	return nil
}

// haproxyPID is the pid of the haproxy worker serving m's runtime API, in
// its container's pid namespace: a reload or a restart changes it.
func (m *master) haproxyPID() (string, error) {
	return m.node.HAProxyInfo("Pid")
}

// TestKubeletLab runs the static pods under real kubelets and containerd:
// the images built without a registry, the kubelet's own kubeconfig and
// client certificate as the monitor's identity, the manifests' capabilities,
// probes and grace periods as the kubelet enforces them.
func TestKubeletLab(t *testing.T) {
	if err := harness.Require("kubelet", "containerd", "runc", "ctr", "nsenter"); err != nil {
		need.Missing(t, "%v", err)
	}
	start := time.Now()
	kl, err := setupKubelet(kubeletFam, "k")
	if kl != nil {
		defer kl.teardown()
	}
	if err != nil {
		if strings.Contains(err.Error(), "hack/build-images.sh") {
			need.Missing(t, "%v", err)
		}
		t.Fatal(err)
	}
	coldStart := time.Since(start)
	t.Run("cold-start", func(t *testing.T) { kl.kubeletColdStart(t, coldStart) })
	t.Run("kill-haproxy-container", kl.kubeletKillHAProxy)
	t.Run("kill-monitor-container", kl.kubeletKillMonitor)
	t.Run("kubelet-stopped", kl.kubeletStopped)
	t.Run("edit-manifest", kl.kubeletEditManifest)
	t.Run("remove-manifest", kl.kubeletRemoveManifest)
}

// K1. From nothing (network, control plane, containerd, kubelets, images
// imported) to every haproxy serving the three apiservers with the VIP on a
// master; then every mirror pod is Running and Ready and the client's load
// goes through.
func (l *lab) kubeletColdStart(t *testing.T, took time.Duration) {
	ctx := context.Background()
	var last error
	if !harness.Poll(60*time.Second, 200*time.Millisecond, func() bool { last = l.mirrorPodsReady(ctx); return last == nil }) {
		t.Fatalf("mirror pods: %v\n%s", last, l.diagnose())
	}
	// The holder's monitor redirects VIP traffic into haproxy after three
	// good observations, one per check interval (the manifest's default
	// 6 s): the scenarios below are about that path.
	holder := l.holder()
	if !harness.Poll(60*time.Second, 200*time.Millisecond, func() bool { return l.redirectActive(holder) }) {
		t.Fatalf("no VIP redirect on %s\n%s", holder, l.diagnose())
	}
	ld := l.startLoad(t, "kubelet-steady")
	time.Sleep(5 * time.Second) // the length of the check
	r := ld.stop(t)
	l.record(t, "K1", "cold start under kubelets, then steady load", r,
		fmt.Sprintf("lab up (3 kubelets, images imported, VIP on %s) in %v; mirror pods Running and Ready", holder, took.Round(time.Second)))
	if r.Failed != 0 || r.Sent < 50 {
		t.Fatalf("%d requests, %d failed: %v", r.Sent, r.Failed, r.Errors)
	}
}

// K2. The haproxy container on the VIP holder is killed (SIGKILL through
// containerd, as an OOM kill would): the monitor sees nothing listening,
// takes the redirect out and writes 253 (the local apiserver serves); the
// kubelet restarts the container, whose reloader starts haproxy from the
// file on disk, and the VIP stays unless that took longer than a backup's
// master-down interval.
func (l *lab) kubeletKillHAProxy(t *testing.T) {
	l.kubeletHealthy(t)
	holder := l.master(l.holder())
	if !harness.Poll(60*time.Second, 200*time.Millisecond, func() bool { return l.redirectActive(holder.name) }) {
		t.Fatalf("no VIP redirect on %s\n%s", holder.name, l.diagnose())
	}
	ld := l.startLoad(t, "kubelet-kill-haproxy")
	time.Sleep(2 * time.Second) // load running before the failure
	moved := l.watchHolder(t, holder.name)
	start := time.Now()
	mark(t, "haproxy container killed on "+holder.name, start)
	if err := holder.node.KillContainer("haproxy"); err != nil {
		t.Fatal(err)
	}
	var back time.Duration
	// Back: the restarted haproxy serves the three, and it is the one
	// clients reach (the only listener on the lb port), not a stats socket
	// of another.
	if !harness.Poll(60*time.Second, 20*time.Millisecond, func() bool {
		return holder.node.ServersUp(masters...) && holder.node.Serving(lbPort) == nil
	}) {
		t.Fatalf("haproxy on %s not back: %v\n%s", holder.name, holder.node.Serving(lbPort), l.diagnose())
	}
	back = time.Since(start)
	mark(t, "haproxy serving again", start.Add(back))
	l.waitSettled(t)
	time.Sleep(2 * time.Second) // load on past the VIP's return
	r := ld.stop(t)
	if err := holder.node.Serving(lbPort); err != nil {
		t.Errorf("after the restart on %s: %v\n%s", holder.name, err, l.diagnose())
	}
	monitorEvents(t, holder.name, holder.node.ContainerLog("haproxy", "haproxy-monitor"))
	vip := "the VIP stayed"
	if moved() {
		vip = "the VIP moved"
	}
	l.record(t, "K2", "haproxy container killed on the VIP holder", r,
		fmt.Sprintf("kubelet restarted it, serving again after %v; %s%s", back.Round(100*time.Millisecond), vip,
			redirectOutAfter(holder.node.ContainerLog("haproxy", "haproxy-monitor"))))
	// With the held connection: measured 0-4 failed, 0-90 ms in 10 runs; probing alone 6-17 failed, up to 133 ms (with
	// FAULT at once: 24-48, 1.2-1.3 s).
	l.bound(t, r, haproxyKilledFailed, haproxyKilledOutage)
	if t.Failed() {
		t.Log(l.diagnose())
	}
}

// K3. The monitor container on the VIP holder is killed: haproxy goes on
// serving and is not reloaded when the kubelet restarts the monitor (the
// file on disk is current; haproxy serves it), the VIP stays.
func (l *lab) kubeletKillMonitor(t *testing.T) {
	l.kubeletHealthy(t)
	holder := l.master(l.holder())
	before, err := holder.haproxyPID()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(holder.hostPaths()["etc-haproxy"], "haproxy.cfg")
	st0, err := os.Stat(cfg)
	if err != nil {
		t.Fatal(err)
	}
	restarts0 := l.restarts(t, "haproxy-"+holder.name, "haproxy-monitor")
	ld := l.startLoad(t, "kubelet-kill-monitor")
	time.Sleep(2 * time.Second) // load running before the failure
	moved := l.watchHolder(t, holder.name)
	if err := holder.node.KillContainer("haproxy-monitor"); err != nil {
		t.Fatal(err)
	}
	// Back: the kubelet counted the restart and the new monitor is ready.
	if !harness.Poll(60*time.Second, 100*time.Millisecond, func() bool {
		return l.restarts(t, "haproxy-"+holder.name, "haproxy-monitor") > restarts0 && strings.HasPrefix(l.readyz(holder.name), "200")
	}) {
		t.Fatalf("monitor on %s not restarted and ready: %s\n%s", holder.name, l.readyz(holder.name), l.diagnose())
	}
	time.Sleep(2 * time.Second) // load on past the monitor's start
	r := ld.stop(t)
	after, err := holder.haproxyPID()
	if err != nil {
		t.Fatal(err)
	}
	st1, err := os.Stat(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l.record(t, "K3", "monitor container killed on the VIP holder", r, "kubelet restarted it; haproxy not reloaded, file not rewritten, VIP stayed")
	if after != before {
		t.Errorf("haproxy worker pid %s → %s: the restarted monitor reloaded haproxy", before, after)
	}
	if !st1.ModTime().Equal(st0.ModTime()) {
		t.Errorf("haproxy.cfg rewritten by the restarted monitor")
	}
	if h := l.holder(); h != holder.name || moved() {
		t.Errorf("the VIP left %s (now on %q)", holder.name, h)
	}
	if r.Failed != 0 {
		t.Errorf("%d requests failed: %v", r.Failed, r.Errors)
	}
	if t.Failed() {
		t.Log(l.diagnose())
	}
}

// lbPort is the haproxy frontend's port (the manifests' default).
const lbPort = 9445

// kubeletHealthy fails t, naming what is wrong, unless every master's
// haproxy serves the three masters and is the one clients reach: a
// scenario that failed before must not leave the next to fail on a dead
// socket with no word of why.
func (l *lab) kubeletHealthy(t *testing.T) {
	t.Helper()
	var last error
	if !harness.Poll(60*time.Second, 100*time.Millisecond, func() bool {
		last = nil
		for _, m := range l.masters {
			if err := m.node.Serving(lbPort); err != nil {
				last = fmt.Errorf("%s: %w", m.name, err)
			} else if s, err := m.node.Servers(); err != nil || !m.node.ServersUp(masters...) {
				last = fmt.Errorf("%s: haproxy serves %v %v, want %v all UP", m.name, s, err, masters)
			} else if !l.redirectActive(m.name) {
				// A monitor puts its redirect in after three good checks
				// (--check-interval, 6 s): until then VIP:6443 reaches the
				// local apiserver directly, on a socket whose address is the
				// VIP, which dies with the VIP when it moves; and a backup
				// that wins the VIP for a moment does not take the traffic.
				last = fmt.Errorf("%s: the monitor's VIP redirect is not in yet", m.name)
			}
		}
		return last == nil
	}) {
		t.Fatalf("the lab is not healthy at the start of this scenario (one before may have left it so): %v\n%s", last, l.diagnose())
	}
	l.waitSettled(t)
}

// redirectActive reports whether the monitor on master name has its VIP
// redirect into haproxy in place (its metric follows the rules' real state).
func (l *lab) redirectActive(name string) bool {
	out, err := l.net.Run(name, "curl", "-s", "--max-time", "2", fmt.Sprintf("http://127.0.0.1:%d/metrics", monitorHealthPort))
	return err == nil && strings.Contains(out, "\nhaproxy_monitor_api_redirect_active 1\n")
}

// restarts is the kubelet's restart count of a container of a mirror pod.
func (l *lab) restarts(t *testing.T, pod, container string) int32 {
	t.Helper()
	p, err := l.client.CoreV1().Pods(podNamespace).Get(context.Background(), pod, metav1.GetOptions{})
	if err != nil {
		return -1
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == container {
			return cs.RestartCount
		}
	}
	return -1
}

// K4. The kubelet on the VIP holder stops (a kubelet upgrade, a crash): its
// pods go on running, its Node goes NotReady; nothing that still serves is
// removed from any haproxy, not one request fails. The kubelet starts again
// and adopts the running pods: haproxy is not restarted.
func (l *lab) kubeletStopped(t *testing.T) {
	l.kubeletHealthy(t)
	ctx := context.Background()
	holder := l.master(l.holder())
	before, err := holder.haproxyPID()
	if err != nil {
		t.Fatal(err)
	}
	ld := l.startLoad(t, "kubelet-stopped")
	time.Sleep(2 * time.Second) // load running before the stop
	holder.node.StopKubelet()
	// The lab runs no controller manager: set what its node lifecycle
	// controller sets once the heartbeats stop (after 40 s by default).
	if err := harness.UpdateNodeStatus(ctx, l.client, holder.name, func(n *corev1.Node) {
		for i, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				n.Status.Conditions[i].Status, n.Status.Conditions[i].Reason = corev1.ConditionUnknown, "NodeStatusUnknown"
				n.Status.Conditions[i].LastTransitionTime = metav1.Now()
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	// Every haproxy keeps serving all three for a while the NotReady Node
	// has reached every monitor.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		for _, m := range l.masters {
			if !m.node.ServersUp(masters...) {
				s, err := m.node.Servers()
				t.Fatalf("%s's haproxy changed while %s's kubelet was down: %v %v", m.name, holder.name, s, err)
			}
		}
	}
	restarted := time.Now().Truncate(time.Second)
	if err := holder.node.StartKubelet(); err != nil {
		t.Fatal(err)
	}
	// The new kubelet has reported its node Ready...
	if !harness.Poll(60*time.Second, 200*time.Millisecond, func() bool {
		n, err := l.client.CoreV1().Nodes().Get(ctx, holder.name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && !c.LastHeartbeatTime.Time.Before(restarted) {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no heartbeat from the restarted kubelet on %s\n%s", holder.name, l.diagnose())
	}
	// ...and is given a full pod sync period (syncFrequency 5 s) under
	// load: the window in which it would restart a container it did not
	// adopt.
	time.Sleep(6 * time.Second)
	var last error
	if !harness.Poll(60*time.Second, 200*time.Millisecond, func() bool { last = l.mirrorPodsReady(ctx); return last == nil }) {
		t.Fatalf("mirror pods after the kubelet's restart: %v\n%s", last, l.diagnose())
	}
	r := ld.stop(t)
	after, err := holder.haproxyPID()
	if err != nil {
		t.Fatal(err)
	}
	l.record(t, "K4", "kubelet on the VIP holder stopped, its Node NotReady, then started again", r,
		"every haproxy kept all three servers; the pods adopted: haproxy not restarted or reloaded")
	if after != before {
		t.Errorf("haproxy worker pid %s → %s across the kubelet's restart", before, after)
	}
	// Nothing changes for the data plane: measured 0 failed, once 1 (a
	// connection reset, 13 ms) that we could not tie to the kubelet.
	l.bound(t, r, 2, 200*time.Millisecond)
}

// K5. The haproxy pod's manifest is edited on the VIP holder (a
// configuration roll-out): the kubelet stops the old pod, SIGTERM to each
// container. The monitor holds new connections to the VIP, faults
// keepalived's track file and waits for the VIP to leave, the reloader keeps
// haproxy serving for its stop delay, then soft-stops it; the new pod
// starts and serves, and the VIP stays where it went.
func (l *lab) kubeletEditManifest(t *testing.T) {
	l.kubeletHealthy(t)
	holder := l.master(l.holder())
	ld := l.startLoadPath(t, "kubelet-edit-manifest", "/version")
	time.Sleep(2 * time.Second) // load running before the change
	start := time.Now()
	if err := l.writeStaticPods(holder, func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations["lab/rollout"] = start.Format(time.RFC3339Nano)
	}); err != nil {
		t.Fatal(err)
	}
	mark(t, "haproxy pod's manifest edited on "+holder.name, start)
	other, at := l.waitOtherHolder(t, holder.name)
	moved := at.Sub(start)
	mark(t, "VIP "+holder.name+" → "+other, start.Add(moved))
	// The new pod runs, is ready and serves; the VIP stays where it went.
	rollout := start.Format(time.RFC3339Nano)
	if !harness.Poll(120*time.Second, 100*time.Millisecond, func() bool {
		p, err := l.client.CoreV1().Pods(podNamespace).Get(context.Background(), "haproxy-"+holder.name, metav1.GetOptions{})
		if err != nil || p.Annotations["lab/rollout"] != rollout || p.Status.Phase != corev1.PodRunning {
			return false
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("new haproxy pod on %s not ready\n%s", holder.name, l.diagnose())
	}
	ready := time.Since(start)
	if !harness.Poll(60*time.Second, 100*time.Millisecond, func() bool { return holder.node.ServersUp(masters...) }) {
		t.Fatalf("new haproxy on %s does not serve\n%s", holder.name, l.diagnose())
	}
	time.Sleep(5 * time.Second) // load on past a backup's master-down interval
	r := ld.stop(t)
	now := l.holder()
	l.record(t, "K5", "haproxy pod manifest edited on the VIP holder (pod replaced)", r,
		fmt.Sprintf("VIP to %s after %v; new pod ready after %v; VIP then on %s", other, moved.Round(100*time.Millisecond),
			ready.Round(100*time.Millisecond), now))
	if now != other {
		t.Errorf("the VIP moved again, to %q, once %s served again: a holder that serves must keep it\n%s", now, holder.name, l.diagnose())
	}
	// Measured 0/0 in ten runs in a row (2026-12-03, afternoon). The
	// losses seen since (2 reset 5.7 s after the edit in one make test;
	// run alone, 2 failed or 4 with a 3 s outage) came from a backup that
	// won the VIP for a moment being the last to send gratuitous ARPs, and
	// from scenarios that started before the redirects were in
	// (docs/vip-failover.md, design history 8); both are fixed, and
	// clientFollows checks the first.
	l.bound(t, r, 0, 0)
}

// waitOtherHolder waits for the VIP to be on one master other than from,
// and only there, for holderStable: the master and when it was first seen
// there. Two backups whose priorities differ by a little (a skew time of
// advert_int/256 per point) can both become master after a hand-over, for
// the milliseconds until the lower one hears the higher's advert; the
// first to appear is not always the one that keeps it.
func (l *lab) waitOtherHolder(t *testing.T, from string) (string, time.Time) {
	t.Helper()
	var got string
	var since time.Time
	if !harness.Poll(60*time.Second, 10*time.Millisecond, func() bool {
		switch h := l.holder(); {
		case h == "" || h == from:
			got = ""
		case h != got:
			got, since = h, time.Now()
		}
		return got != "" && time.Since(since) >= holderStable
	}) {
		t.Fatalf("the VIP did not leave %s for one other master (on %v)\n%s", from, l.holders(), l.diagnose())
	}
	l.clientFollows(t, got)
	return got, since
}

// holderStable is how long a new holder must be the only one before a
// scenario takes it as where the VIP went.
const holderStable = 300 * time.Millisecond

// K6. Both static pods are removed from the VIP holder (a node taken out
// of the load balancer): the pods stop gracefully, the VIP moves, the other
// masters go on serving; put back, they return.
func (l *lab) kubeletRemoveManifest(t *testing.T) {
	l.kubeletHealthy(t)
	holder := l.master(l.holder())
	ld := l.startLoadPath(t, "kubelet-remove-manifest", "/version")
	time.Sleep(2 * time.Second) // load running before the removal
	start := time.Now()
	for _, f := range []string{"haproxy.yaml", "keepalived.yaml"} {
		if err := os.Rename(filepath.Join(holder.node.ManifestDir, f), filepath.Join(holder.dir, f+".removed")); err != nil {
			t.Fatal(err)
		}
	}
	mark(t, "both static pods removed from "+holder.name, start)
	other, at := l.waitOtherHolder(t, holder.name)
	moved := at.Sub(start)
	mark(t, "VIP "+holder.name+" → "+other, start.Add(moved))
	if !harness.Poll(120*time.Second, 100*time.Millisecond, func() bool {
		_, err := holder.node.Servers()
		return err != nil
	}) {
		t.Fatalf("haproxy on %s still running after its manifest was removed", holder.name)
	}
	gone := time.Since(start)
	r := ld.stop(t)
	l.record(t, "K6", "both static pods removed from the VIP holder", r,
		fmt.Sprintf("VIP to %s after %v, pods gone after %v", other, moved.Round(100*time.Millisecond), gone.Round(100*time.Millisecond)))
	// measured 0 in most runs, 1 in some, 3 once (make test on a fresh
	// clone, 2026-12-03: one reset, two connections that never finished
	// their TLS handshake): keepalived's pod stops together with the
	// monitor's, and a connection the holder accepted just before
	// keepalived dropped the VIP is cut, since the hold only keeps new
	// ones out. Before the hold: 0-4 failed, 0.7-2.05 s.
	l.bound(t, r, 6, vipMoveOutage)
	if err := l.writeStaticPods(holder, nil); err != nil {
		t.Fatal(err)
	}
	if !harness.Poll(120*time.Second, 100*time.Millisecond, func() bool { return holder.node.ServersUp(masters...) }) {
		t.Fatalf("haproxy on %s does not serve after its pods were put back\n%s", holder.name, l.diagnose())
	}
	l.waitSettled(t)
	l.afterwards(t, "kubelet-remove-manifest")
}
