package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// KubeadmNode is one host of a cluster that kubeadm builds: a network
// namespace, a UTS namespace (its hostname), and a mount namespace in which the host paths kubeadm, the
// kubelet and containerd use (NodePaths) are this node's own directories
// (under Dir/root), so several nodes share one machine and none touches the
// machine's own /etc/kubernetes. containerd runs there with its default
// paths; the kubelet is started the way kubeadm's systemd drop-in starts it,
// from the files kubeadm writes, and started again whenever it exits
// (Restart=always), once /var/lib/kubelet/config.yaml exists. Nothing here
// does what kubeadm does: certificates, kubeconfigs, static pods and the
// kubelet's configuration all come from kubeadm.
type KubeadmNode struct {
	podRuntime
	Name, NodeIP, Dir string
	// Env is added to the environment of every command run in the node
	// (PATH with the test binaries: kubeadm runs "kubelet --version").
	Env []string

	mntns      string
	cgroupRoot string
	podCIDR    string
	containerd *Process

	mu      sync.Mutex
	kubelet *Process
	wanted  bool // the kubelet "service" is enabled
	starts  int
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
}

// NodePaths are the host paths each kubeadm node has of its own.
var NodePaths = []string{
	"/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "/etc/haproxy", "/run/haproxy-monitor",
	"/var/log/pods", "/var/log/containers", "/run/containerd", "/var/lib/containerd", "/etc/cni/net.d",
	// The pod network: host-local's allocations, and the pods' network
	// namespaces (containerd mounts them under /run/netns).
	"/var/lib/cni", "/run/netns",
}

// KubeletRestartDelay is how long the supervisor waits before starting an
// exited kubelet again (kubeadm's unit file says 10 s; the lab is faster).
const KubeletRestartDelay = time.Second

// KubeadmOptions shape a kubeadm node.
type KubeadmOptions struct {
	Name, NodeIP string
	// NetNS is the network namespace's name (under /run/netns).
	NetNS string
	// Images are OCI tars to import.
	Images []string
	// Lab records the node's cgroups and mount points for ReapStaleLabs.
	Lab *Lab
	// PodCIDR is the node's pod range. Pods off the host network get
	// addresses from it on a bridge, through the CNI plugins bridge,
	// host-local and loopback (CNIBinDir); the routes between the nodes'
	// ranges are the lab's to make. Empty: host-network pods only.
	PodCIDR string
}

// PrepareKubeadmHost makes the mount points of NodePaths that the machine
// lacks (empty directories, recorded so the reaper removes them) and
// returns the function that removes them again.
func PrepareKubeadmHost(rec *Lab) (func(), error) {
	var created []string
	for _, p := range NodePaths {
		var made []string
		for d := p; d != "/"; d = filepath.Dir(d) {
			if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
				made = append(made, d)
			}
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, err
		}
		for _, d := range made { // deepest first
			rec.AdoptMountPoint(d)
			created = append(created, d)
		}
	}
	return func() {
		for _, d := range created {
			_ = os.Remove(d)
		}
	}, nil
}

// StartKubeadmNode makes the node's namespaces and directories, starts
// containerd and imports the images. The kubelet starts when kubeadm has
// written its configuration.
func StartKubeadmNode(dir string, o KubeadmOptions) (*KubeadmNode, error) {
	if err := Require("kubelet", "kubeadm", "containerd", "runc", "ctr", "nsenter", "unshare"); err != nil {
		return nil, err
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	n := &KubeadmNode{Name: o.Name, NodeIP: o.NodeIP, Dir: dir, podCIDR: o.PodCIDR, mntns: filepath.Join(dir, "ns", "mnt"),
		cgroupRoot: "/hapm-" + o.Name, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		Env: []string{"PATH=" + bin + ":" + os.Getenv("PATH")}}
	n.podRuntime = podRuntime{name: o.Name, netns: "/run/netns/" + o.NetNS,
		sock: n.HostPath("/run/containerd/containerd.sock"), kubeletRoot: n.HostPath("/var/lib/kubelet"),
		podLogs: n.HostPath("/var/log/pods")}
	go n.superviseKubelet()
	if o.Lab != nil {
		o.Lab.AdoptCgroup(n.cgroupRoot)
	}
	if err := cgroupCreate(n.cgroupRoot); err != nil {
		return n, err
	}
	if err := n.makeMountNS(); err != nil {
		return n, err
	}
	if err := n.StartContainerd(); err != nil {
		return n, err
	}
	return n, n.importImages(o.Images)
}

// HostPath is where the node's path p (one of NodePaths or below) is on
// the machine.
func (n *KubeadmNode) HostPath(p string) string { return filepath.Join(n.Dir, "root", p) }

// CgroupRoot is the node's own cgroup root; its kubelet must use it.
func (n *KubeadmNode) CgroupRoot() string { return n.cgroupRoot }

func (n *KubeadmNode) utsns() string { return filepath.Join(filepath.Dir(n.mntns), "uts") }

// makeMountNS pins a new mount namespace at Dir/ns/mnt (on a private mount,
// as a namespace file must be) and mounts the node's directories over
// NodePaths in it; and a UTS namespace with the node's name as hostname.
func (n *KubeadmNode) makeMountNS() error {
	nsdir := filepath.Dir(n.mntns)
	if err := os.MkdirAll(nsdir, 0o755); err != nil {
		return err
	}
	for _, s := range [][]string{{"mount", "--bind", nsdir, nsdir}, {"mount", "--make-private", nsdir}} {
		if err := sh(s...); err != nil {
			return err
		}
	}
	if err := os.WriteFile(n.mntns, nil, 0o644); err != nil {
		return err
	}
	if err := sh("unshare", "--mount="+n.mntns, "--propagation", "private", "true"); err != nil {
		return err
	}
	// Its own hostname too: kubeadm names the node, and the controller-
	// manager and scheduler their leases, after it.
	if err := os.WriteFile(n.utsns(), nil, 0o644); err != nil {
		return err
	}
	if err := sh("unshare", "--uts="+n.utsns(), "hostname", n.Name); err != nil {
		return err
	}
	for _, p := range NodePaths {
		if err := os.MkdirAll(n.HostPath(p), 0o755); err != nil {
			return err
		}
		if err := sh("nsenter", "--mount="+n.mntns, "--", "mount", "--bind", n.HostPath(p), p); err != nil {
			return err
		}
	}
	return nil
}

// Wrap prefixes argv to run in the node's network, mount and UTS
// namespaces.
func (n *KubeadmNode) Wrap(argv ...string) []string {
	return append([]string{"nsenter", "--net=" + n.netns, "--mount=" + n.mntns, "--uts=" + n.utsns(), "--"}, argv...)
}

// Run runs argv in the node and returns its combined output.
func (n *KubeadmNode) Run(ctx context.Context, argv ...string) (string, error) {
	w := n.Wrap(argv...)
	cmd := exec.CommandContext(ctx, w[0], w[1:]...)
	cmd.Env = append(os.Environ(), n.Env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Kubeadm runs kubeadm in the node, its output appended to Dir/kubeadm.log
// and returned.
func (n *KubeadmNode) Kubeadm(ctx context.Context, args ...string) (string, error) {
	bin, err := BinDir()
	if err != nil {
		return "", err
	}
	out, err := n.Run(ctx, append([]string{filepath.Join(bin, "kubeadm")}, args...)...)
	if f, ferr := os.OpenFile(filepath.Join(n.Dir, "kubeadm.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); ferr == nil {
		fmt.Fprintf(f, "=== %s kubeadm %s\n%s", time.Now().UTC().Format(time.RFC3339Nano), strings.Join(args, " "), out)
		f.Close()
	}
	return out, err
}

// StartContainerd starts containerd with the default paths (the node's).
func (n *KubeadmNode) StartContainerd() error {
	bin, err := BinDir()
	if err != nil {
		return err
	}
	cfg := filepath.Join(n.Dir, "containerd.toml")
	text := fmt.Sprintf(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10.2"
  # The machine lacks CAP_SYS_RESOURCE: a negative oom_score_adj makes runc fail.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    # hack/build-test-binaries.sh's build; a host has them in /opt/cni/bin.
    bin_dir = %q
    conf_dir = "/etc/cni/net.d"
`, CNIBinDir(bin))
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.HostPath("/etc/cni/net.d"), "10-lab.conflist"), []byte(cniConfig(n.podCIDR)), 0o644); err != nil {
		return err
	}
	n.containerd, err = StartProcess("containerd-"+n.Name, filepath.Join(n.Dir, "containerd.log"), nil,
		n.Wrap("containerd", "--config", cfg)...)
	if err != nil {
		return err
	}
	return n.waitContainerd(n.containerd)
}

// CNIBinDir is where hack/build-test-binaries.sh puts the CNI plugins.
func CNIBinDir(bin string) string { return filepath.Join(bin, "cni") }

// cniConfig is the node's CNI network: a bridge (cni0, the node its
// gateway) with addresses from podCIDR, or, without a range, loopback only
// (host-network pods; containerd still reports the network ready).
func cniConfig(podCIDR string) string {
	if podCIDR == "" {
		return `{"cniVersion": "1.0.0", "name": "lab", "plugins": [{"type": "loopback"}]}`
	}
	return fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "lab", "plugins": [{"type": "bridge", "bridge": "cni0",
  "isGateway": true, "hairpinMode": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}
`, podCIDR)
}

// EnableKubelet is "systemctl enable --now kubelet": the supervisor starts
// the kubelet as soon as its configuration exists, and again after it
// exits. kubeadm's packages enable the service before kubeadm runs.
func (n *KubeadmNode) EnableKubelet() {
	n.mu.Lock()
	n.wanted = true
	n.mu.Unlock()
	n.poke()
}

// StopKubelet is "systemctl stop kubelet": the kubelet stops and stays
// stopped until EnableKubelet; its pods go on running.
func (n *KubeadmNode) StopKubelet() {
	n.mu.Lock()
	n.wanted = false
	p := n.kubelet
	n.mu.Unlock()
	if p != nil {
		p.Stop(15 * time.Second)
	}
}

// KubeletStarts counts the kubelet's starts by the supervisor.
func (n *KubeadmNode) KubeletStarts() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.starts
}

func (n *KubeadmNode) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// superviseKubelet plays systemd's part for the kubelet unit of kubeadm's
// packages (kubelet.service with the 10-kubeadm.conf drop-in).
func (n *KubeadmNode) superviseKubelet() {
	defer close(n.done)
	config := n.HostPath("/var/lib/kubelet/config.yaml")
	for {
		n.mu.Lock()
		wanted := n.wanted
		n.mu.Unlock()
		if _, err := os.Stat(config); err == nil && wanted {
			if p, err := n.startKubelet(); err == nil {
				select {
				case <-p.done:
				case <-n.quit:
					p.Stop(15 * time.Second)
					return
				}
			}
			select {
			case <-time.After(KubeletRestartDelay):
			case <-n.quit:
				return
			}
			continue
		}
		select {
		case <-n.wake:
		case <-time.After(200 * time.Millisecond):
		case <-n.quit:
			return
		}
	}
}

// startKubelet runs the drop-in's command line:
// kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS,
// the kubeadm args from /var/lib/kubelet/kubeadm-flags.env.
func (n *KubeadmNode) startKubelet() (*Process, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	argv := []string{filepath.Join(bin, "kubelet"),
		"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--kubeconfig=/etc/kubernetes/kubelet.conf",
		"--config=/var/lib/kubelet/config.yaml"}
	flags, err := envFileArgs(n.HostPath("/var/lib/kubelet/kubeadm-flags.env"), "KUBELET_KUBEADM_ARGS")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	argv = append(argv, flags...)
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.wanted {
		return nil, errors.New("kubelet disabled")
	}
	p, err := StartProcess("kubelet-"+n.Name, filepath.Join(n.Dir, "kubelet.log"), n.Env, n.Wrap(argv...)...)
	if err != nil {
		return nil, err
	}
	n.kubelet = p
	n.starts++
	return p, nil
}

// envFileArgs reads NAME="..." from a systemd environment file and splits
// the value on spaces, as systemd does for an unquoted $NAME in ExecStart.
func envFileArgs(path, name string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if ok && k == name {
			return strings.Fields(strings.Trim(v, `"`)), nil
		}
	}
	return nil, sc.Err()
}

// Stop stops the kubelet, kills every container (a node going down) and
// stops containerd; Start brings them back.
func (n *KubeadmNode) Stop() {
	n.StopKubelet()
	if n.containerd != nil && !n.containerd.Exited() {
		n.killAllTasks()
		n.containerd.Stop(15 * time.Second)
	}
}

// Start starts containerd again and enables the kubelet (a boot).
func (n *KubeadmNode) Start() error {
	if err := n.StartContainerd(); err != nil {
		return err
	}
	n.EnableKubelet()
	return nil
}

// Teardown stops everything, ends the supervisor and releases the mount
// namespace (with it every mount the kubelet and containerd made) and the
// node's cgroups.
func (n *KubeadmNode) Teardown() {
	n.Stop()
	select {
	case <-n.quit:
	default:
		close(n.quit)
	}
	<-n.done
	killPids(cgroupPids(n.cgroupRoot)) // what a task kill missed
	UnmountBelow(n.Dir)
	cgroupRemove(n.cgroupRoot)
}

// Log is the tail of the kubelet's and containerd's logs, for failures.
func (n *KubeadmNode) Log(lines int) string {
	var b strings.Builder
	n.mu.Lock()
	procs := []*Process{n.kubelet, n.containerd}
	n.mu.Unlock()
	for _, p := range procs {
		if p != nil {
			fmt.Fprintf(&b, "--- %s\n%s\n", p.Name, p.Tail(lines))
		}
	}
	return b.String()
}
