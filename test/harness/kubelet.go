package harness

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
)

// KubeletNode is one node's containerd and kubelet (v1.37, built like
// kube-apiserver), started in the node's network namespace with nsenter (ip
// netns exec would remount /sys and hide the cgroups from the kubelet). It
// sets what kubelets need on this kind of machine: cgroup v1 with the cgroupfs driver,
// containerd told not to lower oom_score_adj, a loopback-only CNI config for
// host-network pods, images imported from OCI tars.
type KubeletNode struct {
	Name   string
	NodeIP string
	Dir    string
	// ManifestDir is the kubelet's static pod directory.
	ManifestDir string
	// Kubeconfig is the kubelet's kubeconfig (system:node:<Name>), with its
	// client certificate under PKIDir: the monitor runs with it.
	Kubeconfig string
	PKIDir     string

	podRuntime
	cgroupRoot string
	containerd *Process
	kubelet    *Process
}

// podRuntime is what the lab reads of a node's pods: its containerd, the
// kubelet's pod volumes and logs, its network namespace.
type podRuntime struct {
	name        string
	netns       string // /run/netns/<name>
	sock        string // containerd's socket, a host path
	kubeletRoot string // the kubelet's root dir, a host path
	podLogs     string // the kubelet's /var/log/pods, a host path
}

// KubeletOptions shape a node.
type KubeletOptions struct {
	Name, NodeIP string
	// NetNS is the network namespace's name (under /run/netns).
	NetNS string
	// APIServer is the URL the kubelet registers with.
	APIServer string
	// Images are OCI tars to import (hack/build-images.sh).
	Images []string
	// Lab, if set, records the node's cgroups for ReapStaleLabs.
	Lab *Lab
}

// created paths the kubelet or containerd use whatever their root dir; the
// first node to create one removes it at teardown.
var sharedPaths = []string{"/var/log/containers", "/var/log/pods", "/var/lib/kubelet/device-plugins", "/var/lib/kubelet", "/run/containerd"}

// StartKubeletNode starts containerd, imports the images, and starts the
// kubelet, which registers the Node and runs what is in ManifestDir.
func StartKubeletNode(cp *ControlPlane, dir string, o KubeletOptions) (*KubeletNode, error) {
	if err := Require("kubelet", "containerd", "runc", "ctr", "nsenter"); err != nil {
		return nil, err
	}
	n := &KubeletNode{Name: o.Name, NodeIP: o.NodeIP, Dir: dir, ManifestDir: filepath.Join(dir, "manifests"),
		Kubeconfig: filepath.Join(dir, "kubelet", "kubeconfig"), PKIDir: filepath.Join(dir, "kubelet", "pki"),
		podRuntime: podRuntime{name: o.Name, netns: "/run/netns/" + o.NetNS, sock: filepath.Join(dir, "containerd", "containerd.sock"),
			kubeletRoot: filepath.Join(dir, "kubelet", "root"), podLogs: "/var/log/pods"},
		cgroupRoot: "/hapm-" + o.Name}
	for _, d := range []string{n.ManifestDir, filepath.Join(dir, "cni", "net.d"), filepath.Join(dir, "cni", "bin"),
		filepath.Join(dir, "containerd"), filepath.Join(dir, "kubelet", "root"), filepath.Join(dir, "volume-plugins")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if o.Lab != nil {
		o.Lab.AdoptCgroup(n.cgroupRoot)
	}
	if err := cgroupCreate(n.cgroupRoot); err != nil {
		return nil, err
	}
	// The certificate inline: the kubelet reads this file on the host and
	// the monitor in its container, where host paths do not exist.
	if err := os.MkdirAll(n.PKIDir, 0o700); err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := cp.CA.ClientCert("system:node:"+o.Name, []string{"system:nodes"})
	if err != nil {
		return nil, err
	}
	if err := cp.WriteKubeconfigUser(n.Kubeconfig, o.APIServer, fmt.Sprintf("{client-certificate-data: %s, client-key-data: %s}",
		base64.StdEncoding.EncodeToString(certPEM), base64.StdEncoding.EncodeToString(keyPEM))); err != nil {
		return nil, err
	}
	if err := n.writeConfigs(); err != nil {
		return nil, err
	}
	if err := n.startContainerd(); err != nil {
		return nil, err
	}
	if err := n.importImages(o.Images); err != nil {
		n.Stop()
		return nil, err
	}
	return n, n.StartKubelet()
}

func (n *KubeletNode) writeConfigs() error {
	d := n.Dir
	containerd := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:latest"
  # The machine lacks CAP_SYS_RESOURCE: a negative oom_score_adj makes runc fail.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[6]q
    conf_dir = %[7]q
`, filepath.Join(d, "containerd", "root"), filepath.Join(d, "containerd", "state"), n.sock,
		filepath.Join(d, "containerd", "ttrpc.sock"), filepath.Join(d, "containerd", "opt"),
		filepath.Join(d, "cni", "bin"), filepath.Join(d, "cni", "net.d"))
	// Host-network pods only: a loopback-only network makes the node Ready.
	cni := `{"cniVersion": "1.0.0", "name": "lab", "plugins": [{"type": "loopback"}]}`
	kubelet := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
cgroupRoot: %[1]q
staticPodPath: %[2]q
fileCheckFrequency: 1s
syncFrequency: 5s
address: %[3]q
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
volumePluginDir: %[4]q
containerRuntimeEndpoint: unix://%[5]s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
evictionHard: {"memory.available": "1Mi", "nodefs.available": "1%%", "imagefs.available": "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`, n.cgroupRoot, n.ManifestDir, n.NodeIP, filepath.Join(d, "volume-plugins"), n.sock)
	for path, text := range map[string]string{
		filepath.Join(d, "containerd", "config.toml"):       containerd,
		filepath.Join(d, "cni", "net.d", "10-lab.conflist"): cni,
		filepath.Join(d, "kubelet", "config.yaml"):          kubelet,
	} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (n *KubeletNode) nsenter(argv ...string) []string {
	return append([]string{"nsenter", "--net=" + n.netns, "--"}, argv...)
}

func (n *KubeletNode) startContainerd() error {
	var err error
	n.containerd, err = StartProcess("containerd-"+n.Name, filepath.Join(n.Dir, "containerd.log"), nil,
		n.nsenter("containerd", "--config", filepath.Join(n.Dir, "containerd", "config.toml"))...)
	if err != nil {
		return err
	}
	return n.waitContainerd(n.containerd)
}

// waitContainerd waits until containerd p answers on the node's socket.
func (n *podRuntime) waitContainerd(p *Process) error {
	if !Poll(30*time.Second, 50*time.Millisecond, func() bool {
		return exec.Command("ctr", "-a", n.sock, "version").Run() == nil || p.Exited()
	}) || p.Exited() {
		return fmt.Errorf("containerd on %s did not start:\n%s", n.name, p.Tail(20))
	}
	return nil
}

// importImages imports OCI tars into the node's containerd (k8s.io).
func (n *podRuntime) importImages(images []string) error {
	for _, img := range images {
		if out, err := n.Ctr("images", "import", img); err != nil {
			return fmt.Errorf("importing %s on %s: %v: %s", img, n.name, err, out)
		}
	}
	return nil
}

// StartKubelet (re)starts the kubelet.
func (n *KubeletNode) StartKubelet() error {
	bin, err := BinDir()
	if err != nil {
		return err
	}
	n.kubelet, err = StartProcess("kubelet-"+n.Name, filepath.Join(n.Dir, "kubelet.log"), nil, n.nsenter(
		filepath.Join(bin, "kubelet"), "--config", filepath.Join(n.Dir, "kubelet", "config.yaml"),
		"--kubeconfig", n.Kubeconfig, "--root-dir", filepath.Join(n.Dir, "kubelet", "root"),
		"--cert-dir", filepath.Join(n.Dir, "kubelet", "serving-certs"),
		"--node-ip", n.NodeIP, "--hostname-override", n.Name, "--v", "1")...)
	return err
}

// StopKubelet stops the kubelet only; its pods go on running.
func (n *KubeletNode) StopKubelet() {
	if n.kubelet != nil {
		n.kubelet.Stop(15 * time.Second)
	}
}

// Ctr runs ctr against the node's containerd in the k8s.io namespace.
func (n *podRuntime) Ctr(args ...string) (string, error) {
	out, err := exec.Command("ctr", append([]string{"-a", n.sock, "-n", "k8s.io"}, args...)...).CombinedOutput()
	return string(out), err
}

// ContainersNamed lists the running containers (tasks) of this node whose
// Kubernetes container name is one of names.
func (n *podRuntime) ContainersNamed(names ...string) []string {
	var out []string
	tasks, _ := n.Ctr("tasks", "list", "-q")
	for _, name := range names {
		list, err := n.Ctr("containers", "list", "-q", "labels.\"io.kubernetes.container.name\"=="+name)
		if err != nil {
			continue
		}
		for _, id := range strings.Fields(list) {
			if strings.Contains(tasks, id) {
				out = append(out, name+" "+id)
			}
		}
	}
	return out
}

// KillContainer kills (SIGKILL) the running task of the container named name
// in a pod of this node, as a crash would; the kubelet restarts it.
func (n *podRuntime) KillContainer(name string) error {
	out, err := n.Ctr("containers", "list", "labels.\"io.kubernetes.container.name\"=="+name)
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	var killed bool
	for _, line := range strings.Split(out, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if o, err := n.Ctr("tasks", "kill", "-s", "SIGKILL", f[0]); err == nil {
			killed = true
		} else if !strings.Contains(o, "not found") {
			return fmt.Errorf("killing %s: %v: %s", f[0], err, o)
		}
	}
	if !killed {
		return fmt.Errorf("no running container %s on %s", name, n.name)
	}
	return nil
}

// Stop stops the kubelet, removes every pod's containers (as a node going
// down), and stops containerd.
func (n *KubeletNode) Stop() {
	n.StopKubelet()
	if n.containerd != nil && !n.containerd.Exited() {
		n.killAllTasks()
		n.containerd.Stop(15 * time.Second)
	}
}

func (n *podRuntime) killAllTasks() {
	out, err := n.Ctr("tasks", "list", "-q")
	if err != nil {
		return
	}
	for _, id := range strings.Fields(out) {
		_, _ = n.Ctr("tasks", "kill", "-a", "-s", "SIGKILL", id)
	}
	Poll(10*time.Second, 100*time.Millisecond, func() bool {
		o, err := n.Ctr("tasks", "list", "-q")
		return err == nil && strings.TrimSpace(o) == ""
	})
}

// Teardown stops everything and undoes what the kubelet and containerd did
// to the host: the bind mount of the kubelet's root dir onto itself, their
// cgroups in every hierarchy. It does not restore sysctls: KubeletSysctls
// does that for the whole lab.
func (n *KubeletNode) Teardown() {
	n.Stop()
	UnmountBelow(n.Dir)
	cgroupRemove(n.cgroupRoot)
}

// UnmountBelow unmounts (lazily, deepest first) everything mounted at or
// below dir: the kubelet's bind mount of its root dir, the pods' volumes,
// containerd's sandbox shm mounts.
func UnmountBelow(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		// Octal escapes (\040 for a space) do not occur in the lab's paths.
		if p := f[4]; p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		_ = exec.Command("umount", "--lazy", p).Run()
	}
}

// KubeletSysctls saves what the kubelet rewrites on every start and returns
// the function that puts it back; rec, if set, records the same for
// ReapStaleLabs.
func KubeletSysctls(rec *Lab) (restore func()) {
	keys := []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"}
	saved := map[string][]byte{}
	for _, k := range keys {
		if b, err := os.ReadFile("/proc/sys/" + k); err == nil {
			saved[k] = b
			if rec != nil {
				rec.AdoptSysctl(k, strings.TrimSpace(string(b)))
			}
		}
	}
	var created []string
	for _, p := range sharedPaths {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			created = append(created, p)
			if rec != nil {
				rec.Adopt(p)
			}
		}
	}
	return func() {
		for k, b := range saved {
			_ = os.WriteFile("/proc/sys/"+k, b, 0o644)
		}
		for _, p := range created {
			_ = exec.Command("umount", "--recursive", "--lazy", p).Run()
			_ = os.RemoveAll(p)
		}
	}
}

// cgroupHierarchies lists the cgroup v1 hierarchies.
func cgroupHierarchies() []string {
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	return out
}

func cgroupCreate(root string) error {
	for _, h := range cgroupHierarchies() {
		if err := os.MkdirAll(filepath.Join(h, root), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("cgroup %s: %w", root, err)
		}
	}
	return nil
}

// cgroupPids lists the processes in root and below it, in every hierarchy:
// a pod's processes run in its own network namespace, outside the lab's,
// but in the cgroups below its node's root.
func cgroupPids(root string) []int {
	if r := filepath.Clean("/" + root); r == "/" {
		return nil // never the machine's own
	}
	seen := map[int]bool{}
	var out []int
	for _, h := range cgroupHierarchies() {
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					out = append(out, pid)
				}
			}
			return nil
		})
	}
	return out
}

// cgroupRemove removes root and everything below it, deepest first, in
// every hierarchy (a cgroup directory goes with rmdir, not its files).
func cgroupRemove(root string) {
	for _, h := range cgroupHierarchies() {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
	}
}

// podSocket finds a socket a pod of this node has in its emptyDir volume
// vol (for haproxy's runtime API: run-dir/haproxy-stats.sock), newest pod
// first, and calls f with a path to it short enough for a unix socket
// address (at most 108 bytes, which the kubelet's pod paths exceed): through
// /proc/self/fd and an open descriptor of its directory.
func (n *podRuntime) podSocket(vol, name string, f func(path string) error) error {
	matches, _ := filepath.Glob(filepath.Join(n.kubeletRoot, "pods", "*", "volumes", "kubernetes.io~empty-dir", vol, name))
	var best string
	var bestTime time.Time
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.Mode()&os.ModeSocket != 0 && st.ModTime().After(bestTime) {
			best, bestTime = m, st.ModTime()
		}
	}
	if best == "" {
		return fmt.Errorf("no %s/%s in %s's pods", vol, name, n.name)
	}
	dir, err := os.Open(filepath.Dir(best))
	if err != nil {
		return err
	}
	defer dir.Close()
	return f(fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), name))
}

// Servers reads "show servers state masters" from the haproxy the node's
// pod runs.
func (n *podRuntime) Servers() (map[string]runtimeapi.Server, error) {
	var s []runtimeapi.Server
	err := n.podSocket("run-dir", "haproxy-stats.sock", func(sock string) (err error) {
		s, err = runtimeapi.ServersState(context.Background(), sock, "masters")
		return err
	})
	return runtimeapi.ByName(s, "masters"), err
}

// ServersUp reports whether the pod's haproxy has exactly the given servers,
// all UP and none draining.
func (n *podRuntime) ServersUp(want ...string) bool {
	s, err := n.Servers()
	return err == nil && serversUp(s, false, want)
}

// Log is the tail of the kubelet's and containerd's logs, for failures.
func (n *KubeletNode) Log(lines int) string {
	var b strings.Builder
	for _, p := range []*Process{n.kubelet, n.containerd} {
		if p != nil {
			fmt.Fprintf(&b, "--- %s\n%s\n", p.Name, p.Tail(lines))
		}
	}
	return b.String()
}

// HAProxyInfo is one field of "show info" from the haproxy the node's pod
// runs (Pid, Uptime_sec, ...).
func (n *podRuntime) HAProxyInfo(field string) (string, error) {
	var out string
	err := n.podSocket("run-dir", "haproxy-stats.sock", func(sock string) (err error) {
		out, err = runtimeapi.Command(context.Background(), sock, "show info")
		return err
	})
	if err != nil {
		return "", err
	}
	return infoField(out, field)
}

// ContainerLog is the newest log file of a container of this node's static
// pod (the kubelet writes them under /var/log/pods whatever its root dir;
// mirror pods are named <pod>-<node>).
func (n *podRuntime) ContainerLog(pod, container string) string {
	matches, _ := filepath.Glob(filepath.Join(n.podLogs, "*_"+pod+"-"+n.name+"_*", container, "*.log"))
	var best string
	var bestTime time.Time
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.ModTime().After(bestTime) {
			best, bestTime = m, st.ModTime()
		}
	}
	if best == "" {
		return "(no log)"
	}
	b, _ := os.ReadFile(best)
	return string(b)
}

// Serving checks that the haproxy clients reach is the one whose runtime
// API the monitor and the lab read: exactly one process listens on lbPort
// in the node's network namespace, and it is the worker that the pod's
// stats socket answers for (its pid in the container's PID namespace, the
// last of /proc/<pid>/status NSpid). Two haproxy processes from two
// containers on one emptyDir, or a stats socket whose haproxy died while
// another serves, fail here with both named.
func (n *podRuntime) Serving(lbPort int) error {
	pid, err := n.HAProxyInfo("Pid")
	if err != nil {
		return fmt.Errorf("runtime API: %w", err)
	}
	out, err := exec.Command("nsenter", "--net="+n.netns, "--", "ss", "-Htlnp", fmt.Sprintf("sport = :%d", lbPort)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ss: %v: %s", err, out)
	}
	listeners := map[string]bool{}
	for _, m := range ssPID.FindAllStringSubmatch(string(out), -1) {
		listeners[m[1]] = true
	}
	var inner []string
	for hostPID := range listeners {
		b, err := os.ReadFile("/proc/" + hostPID + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" {
				inner = append(inner, f[len(f)-1])
			}
		}
	}
	if len(inner) != 1 || inner[0] != pid {
		return fmt.Errorf("the runtime API answers for haproxy pid %s, but on :%d listen %v (pids in their containers)", pid, lbPort, inner)
	}
	return nil
}

var ssPID = regexp.MustCompile(`pid=(\d+)`)
