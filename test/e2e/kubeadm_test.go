package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
	"github.com/haproxy-monitor/haproxy-monitor/test/load"
	"github.com/haproxy-monitor/haproxy-monitor/test/need"
)

// The kubeadm lab: three control-plane nodes and a worker that kubeadm
// builds, on addresses of their own.
const (
	kubeadmVIP     = "198.19.16.100"
	kubeadmHost    = "198.19.16.2"
	kubeadmClient  = "198.19.16.50"
	kubeadmWorker  = "w0"
	kubeadmSvcCIDR = "198.19.144.0/24"
	// kubeadmEtcdTag is our etcd build's image tag (hack/build-images.sh):
	// kubeadm 1.37.2 would ask for 3.7.0-0.
	kubeadmEtcdTag = "3.6.16-0"
)

var kubeadmMasters = []string{"k0", "k1", "k2"}

func kubeadmNodeIP(name string) string {
	if name == kubeadmWorker {
		return "198.19.16.20"
	}
	return fmt.Sprintf("198.19.16.%d", 10+int(name[1]-'0'))
}

// kubeadmPreflight are the preflight checks a host like the lab's fails and
// a user there passes with --ignore-preflight-errors (README, "Bootstrap a
// kubeadm HA cluster"): SystemVerification refuses cgroup v1 (the kubelet
// runs on it with failCgroupV1: false).
var kubeadmPreflight = []string{"SystemVerification"}

// kubeadmLab is the kubeadm lab's state.
type kubeadmLab struct {
	dir      string
	net      *harness.Lab
	nodes    map[string]*harness.KubeadmNode
	restore  []func()
	loadgen  string
	setupBin string
	caFile   string
	admin    kubernetes.Interface
	token    string
	certKey  string
	caHash   string
}

// K is the kubeadm lab while TestKubeadmLab runs.
var K *kubeadmLab

func (k *kubeadmLab) node(name string) *harness.KubeadmNode { return k.nodes[name] }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// setupKubeadm makes the lab's network, and on every node its namespaces,
// containerd with the images imported, and the kubelet "service" enabled
// (waiting, as after installing kubeadm's packages, for kubeadm to write
// its configuration). Nothing of Kubernetes runs yet.
func setupKubeadm() (*kubeadmLab, error) {
	for _, img := range []string{"pause-kubeadm.tar", "kubernetes.tar", "haproxy-monitor.tar"} {
		if _, err := os.Stat(filepath.Join(imageDir(), img)); err != nil {
			return nil, fmt.Errorf("image %s missing (hack/build-images.sh): %w", img, err)
		}
	}
	dir, err := os.MkdirTemp("", "hapm-kubeadm")
	if err != nil {
		return nil, err
	}
	k := &kubeadmLab{dir: dir, nodes: map[string]*harness.KubeadmNode{},
		token: randomHex(3) + "." + randomHex(8), certKey: randomHex(32)}
	if k.net, err = harness.NewLab(fmt.Sprintf("hb%d", os.Getpid()%10000), kubeadmHost+"/24"); err != nil {
		return k, err
	}
	k.net.Adopt(dir)
	if err := k.net.AddHost("c", kubeadmClient+"/24"); err != nil {
		return k, err
	}
	k.restore = append(k.restore, harness.KubeletSysctls(k.net))
	undo, err := harness.PrepareKubeadmHost(k.net)
	if err != nil {
		return k, err
	}
	k.restore = append(k.restore, undo)
	if k.loadgen, err = buildTool(dir, "./test/e2e/loadgen", "loadgen"); err != nil {
		return k, err
	}
	if k.setupBin, err = buildTool(dir, "./cmd/node-setup", "node-setup"); err != nil {
		return k, err
	}
	names := append(append([]string{}, kubeadmMasters...), kubeadmWorker)
	for _, name := range names {
		if err := k.net.AddHost(name, kubeadmNodeIP(name)+"/24"); err != nil {
			return k, err
		}
		// kubeadm's prerequisite on every node (its preflight checks it).
		if out, err := k.net.Run(name, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
			return k, fmt.Errorf("%s: %v: %s", name, err, out)
		}
	}
	type started struct {
		name string
		n    *harness.KubeadmNode
		err  error
	}
	ch := make(chan started, len(names))
	for _, name := range names {
		images := []string{filepath.Join(imageDir(), "pause-kubeadm.tar"), filepath.Join(imageDir(), "kubernetes.tar")}
		if name != kubeadmWorker {
			images = append(images, filepath.Join(imageDir(), "haproxy-monitor.tar"))
		}
		go func() {
			n, err := harness.StartKubeadmNode(filepath.Join(dir, name), harness.KubeadmOptions{
				Name: name, NodeIP: kubeadmNodeIP(name), NetNS: k.net.NS(name), Images: images, Lab: k.net})
			ch <- started{name, n, err}
		}()
	}
	var errs []string
	for range names {
		s := <-ch
		if s.n != nil {
			k.nodes[s.name] = s.n
		}
		if s.err != nil {
			errs = append(errs, s.err.Error())
		}
	}
	if len(errs) > 0 {
		return k, errors.New(strings.Join(errs, "\n"))
	}
	for _, n := range k.nodes {
		n.EnableKubelet()
	}
	return k, nil
}

func (k *kubeadmLab) teardown() {
	for _, n := range k.nodes {
		n.Teardown()
	}
	for i := len(k.restore) - 1; i >= 0; i-- {
		k.restore[i]()
	}
	if k.net != nil {
		k.net.Close()
	}
	if os.Getenv("LAB_KEEP") == "" {
		os.RemoveAll(k.dir)
	}
}

// nodeSetup runs the set-up command on a control-plane node, as the README
// tells a user to before kubeadm.
func (k *kubeadmLab) nodeSetup(ctx context.Context, name string, extra ...string) (string, error) {
	prio := 100 - 10*int(name[1]-'0')
	argv := append([]string{k.setupBin, "-installer", "kubeadm", "-interface", "eth0", "-vips", kubeadmVIP,
		"-auth-pass", "labpass", "-priority", fmt.Sprint(prio), "-image", "localhost/haproxy-monitor:latest"}, extra...)
	return k.node(name).Run(ctx, argv...)
}

// patches writes the node's kubeadm patches: what differs between nodes
// that share one machine (each kubelet's cgroup root; the volume plugin
// directory kept under the node's /var/lib/kubelet).
func (k *kubeadmLab) patches(name string) (string, error) {
	dir := filepath.Join(k.dir, name, "patches")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	text := fmt.Sprintf("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupRoot: %s\nvolumePluginDir: /var/lib/kubelet/volume-plugins\n",
		k.node(name).CgroupRoot())
	return dir, os.WriteFile(filepath.Join(dir, "kubeletconfiguration+strategic.yaml"), []byte(text), 0o644)
}

func yamlList(items []string) string { return "[" + strings.Join(items, ", ") + "]" }

// nodeRegistration is the part of InitConfiguration and JoinConfiguration
// that names the node.
func nodeRegistration(name string) string {
	return fmt.Sprintf(`nodeRegistration:
  name: %s
  criSocket: unix:///run/containerd/containerd.sock
  ignorePreflightErrors: %s
  kubeletExtraArgs:
  - {name: node-ip, value: %s}
`, name, yamlList(kubeadmPreflight), kubeadmNodeIP(name))
}

// initConfig is kubeadm init's configuration on the first node.
func (k *kubeadmLab) initConfig(name string) (string, error) {
	patches, err := k.patches(name)
	if err != nil {
		return "", err
	}
	text := fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: %[1]s
  ttl: 2h0m0s
certificateKey: %[2]s
localAPIEndpoint: {advertiseAddress: %[3]s, bindPort: 6443}
%[4]spatches: {directory: %[5]s}
skipPhases: [addon/coredns]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
controlPlaneEndpoint: %[6]s
networking: {serviceSubnet: %[7]s}
etcd:
  local: {imageTag: %[8]s}
controllerManager:
  extraArgs:
  - {name: node-monitor-grace-period, value: 20s}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
rotateCertificates: true
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, k.token, k.certKey, kubeadmNodeIP(name), nodeRegistration(name), patches,
		net.JoinHostPort(kubeadmVIP, "6443"), kubeadmSvcCIDR, kubeadmEtcdTag)
	path := filepath.Join(k.dir, name, "kubeadm-init.yaml")
	return path, os.WriteFile(path, []byte(text), 0o644)
}

// joinConfig is kubeadm join's configuration: through the VIP, the cluster
// CA pinned by its hash, as a control plane or a worker.
func (k *kubeadmLab) joinConfig(name string, controlPlane bool) (string, error) {
	patches, err := k.patches(name)
	if err != nil {
		return "", err
	}
	cp := ""
	if controlPlane {
		cp = fmt.Sprintf("controlPlane:\n  localAPIEndpoint: {advertiseAddress: %s, bindPort: 6443}\n  certificateKey: %s\n",
			kubeadmNodeIP(name), k.certKey)
	}
	text := fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: %s
    token: %s
    caCertHashes: [%s]
%s%spatches: {directory: %s}
`, net.JoinHostPort(kubeadmVIP, "6443"), k.token, k.caHash, nodeRegistration(name), cp, patches)
	path := filepath.Join(k.dir, name, "kubeadm-join.yaml")
	return path, os.WriteFile(path, []byte(text), 0o644)
}

// readCA reads the cluster CA kubeadm made on the first node: the lab's
// clients trust it, and joins pin its public key.
func (k *kubeadmLab) readCA() error {
	k.caFile = k.node(kubeadmMasters[0]).HostPath("/etc/kubernetes/pki/ca.crt")
	b, err := os.ReadFile(k.caFile)
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return fmt.Errorf("%s: no PEM", k.caFile)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	k.caHash = "sha256:" + hex.EncodeToString(sum[:])
	return nil
}

// adminClient is the lab's own view of the cluster (admin.conf of the first
// node, through the VIP): it checks what the monitor does, the monitor
// never uses it.
func (k *kubeadmLab) adminClient() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", k.node(kubeadmMasters[0]).HostPath("/etc/kubernetes/admin.conf"))
	if err != nil {
		return err
	}
	cfg.Timeout = 10 * time.Second
	k.admin, err = kubernetes.NewForConfig(cfg)
	return err
}

// kubectl runs kubectl on the first node with its admin.conf.
func (k *kubeadmLab) kubectl(ctx context.Context, args ...string) (string, error) {
	bin, err := harness.BinDir()
	if err != nil {
		return "", err
	}
	return k.node(kubeadmMasters[0]).Run(ctx, append([]string{filepath.Join(bin, "kubectl"), "--kubeconfig", "/etc/kubernetes/admin.conf"}, args...)...)
}

// nodesReady reports which of names are not Ready yet.
func (k *kubeadmLab) nodesNotReady(ctx context.Context, names ...string) []string {
	var out []string
	for _, name := range names {
		n, err := k.admin.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil || !nodeReady(n) {
			out = append(out, name)
		}
	}
	return out
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// holder is the node holding the VIP, or "".
func (k *kubeadmLab) holder() string {
	for _, name := range kubeadmMasters {
		if k.net.HasAddr(name, kubeadmVIP) {
			return name
		}
	}
	return ""
}

// serving reports the masters whose haproxy does not serve exactly the
// given backends, all UP, as the one clients reach.
func (k *kubeadmLab) notServing(want ...string) []string {
	var out []string
	for _, name := range kubeadmMasters {
		n := k.node(name)
		if n.Serving(lbPort) != nil || !n.ServersUp(want...) {
			out = append(out, name)
		}
	}
	return out
}

func (k *kubeadmLab) diagnose() string {
	var b strings.Builder
	fmt.Fprintf(&b, "VIP on %q\n", k.holder())
	for _, name := range append(append([]string{}, kubeadmMasters...), kubeadmWorker) {
		n := k.node(name)
		if n == nil {
			continue
		}
		s, err := n.Servers()
		fmt.Fprintf(&b, "%s: servers %v %v\n  monitor: %s\n  keepalived: %s\n%s", name, s, err,
			tail(n.ContainerLog("haproxy", "haproxy-monitor"), 8), tail(n.ContainerLog("keepalived", "keepalived"), 4), n.Log(8))
		tasks, _ := n.Ctr("tasks", "list")
		fmt.Fprintf(&b, "  containerd tasks:\n%s\n", tasks)
	}
	return b.String()
}

func (k *kubeadmLab) startLoad(t *testing.T, name string) *runningLoad {
	t.Helper()
	out := filepath.Join(k.dir, "load-"+name+".json")
	if _, err := os.Stat(out); err == nil {
		t.Fatalf("a load named %q ran before in this lab: give each its own name", name)
	}
	p, err := harness.StartProcess("loadgen", out, nil, k.net.Wrap("c", []string{
		k.loadgen, "-url", "https://" + net.JoinHostPort(kubeadmVIP, "6443") + "/version", "-ca", k.caFile, "-duration", "5m", "-workers", "4",
	})...)
	if err != nil {
		t.Fatal(err)
	}
	return &runningLoad{proc: p, out: out}
}

func (k *kubeadmLab) record(t *testing.T, scenario string, r load.Result, note string) {
	scenario += " (kubeadm)"
	results = append(results, resultRow{cells: fmt.Sprintf("%s | %d | %s | %.0f ms | %.0f ms | %s", scenario, r.Sent, failed(r), r.LongestOutageMS, r.SlowestMS, note)})
	t.Logf("%s: %d requests, %d failed, longest outage %.0f ms, slowest request %.0f ms %s %v", scenario, r.Sent, r.Failed, r.LongestOutageMS, r.SlowestMS, note, r.Errors)
}

func TestKubeadmLab(t *testing.T) {
	if err := harness.Require("kubelet", "kubeadm", "kubectl", "containerd", "runc", "ctr", "nsenter"); err != nil {
		need.Missing(t, "%v", err)
	}
	k, err := setupKubeadm()
	if k != nil {
		defer k.teardown()
	}
	if err != nil {
		if strings.Contains(err.Error(), "hack/build-images.sh") {
			need.Missing(t, "%v", err)
		}
		t.Fatal(err)
	}
	K = k
	defer func() { K = nil }()
	if !t.Run("bootstrap", kubeadmBootstrap) {
		return
	}
}

// B1. kubeadm builds the cluster through the VIP: the set-up command on
// each control-plane node, kubeadm init on the first, the RBAC applied,
// the others joined as control planes, the worker joined; then three Ready
// control planes, every haproxy serving all three, the worker Ready.
func kubeadmBootstrap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	for _, name := range kubeadmMasters {
		if out, err := K.nodeSetup(ctx, name); err != nil {
			t.Fatalf("node-setup on %s: %v\n%s", name, err, out)
		}
	}
	first := kubeadmMasters[0]
	cfg, err := K.initConfig(first)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := K.node(first).Kubeadm(ctx, "init", "--config", cfg, "--upload-certs")
	if err != nil {
		t.Fatalf("kubeadm init: %v\n%s\n%s", err, out, K.diagnose())
	}
	initTook := time.Since(start)
	t.Logf("kubeadm init took %v", initTook.Round(100*time.Millisecond))
	if err := K.readCA(); err != nil {
		t.Fatal(err)
	}
	if err := K.adminClient(); err != nil {
		t.Fatal(err)
	}
	// What a user's kubectl would meet right after kubeadm init: the VIP
	// answering, or not yet.
	var vipWait time.Duration
	if _, err := K.admin.Discovery().ServerVersion(); err != nil {
		t0 := time.Now()
		if !harness.Poll(time.Minute, 100*time.Millisecond, func() bool { _, err := K.admin.Discovery().ServerVersion(); return err == nil }) {
			t.Fatalf("the VIP does not answer after kubeadm init: %v\n%s", err, K.diagnose())
		}
		vipWait = time.Since(t0)
	}
	t.Logf("the VIP answered %v after kubeadm init returned", vipWait.Round(100*time.Millisecond))
	// From here clients use the API through the VIP while the cluster grows.
	ld := K.startLoad(t, "bootstrap")
	if out, err := K.kubectl(ctx, "apply", "-f", filepath.Join(repoRoot(), "manifests", "rbac.yaml")); err != nil {
		t.Fatalf("kubectl apply rbac: %v\n%s", err, out)
	}
	for _, name := range kubeadmMasters[1:] {
		cfg, err := K.joinConfig(name, true)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if out, err := K.node(name).Kubeadm(ctx, "join", "--config", cfg); err != nil {
			t.Fatalf("kubeadm join %s: %v\n%s\n%s", name, err, out, K.diagnose())
		}
		t.Logf("kubeadm join %s (control plane) took %v", name, time.Since(t0).Round(100*time.Millisecond))
	}
	cfg, err = K.joinConfig(kubeadmWorker, false)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if out, err := K.node(kubeadmWorker).Kubeadm(ctx, "join", "--config", cfg); err != nil {
		t.Fatalf("kubeadm join %s: %v\n%s\n%s", kubeadmWorker, err, out, K.diagnose())
	}
	t.Logf("kubeadm join %s (worker) took %v", kubeadmWorker, time.Since(t0).Round(100*time.Millisecond))
	all := append(append([]string{}, kubeadmMasters...), kubeadmWorker)
	var notReady, notServing []string
	if !harness.Poll(5*time.Minute, 500*time.Millisecond, func() bool {
		notReady, notServing = K.nodesNotReady(ctx, all...), K.notServing(kubeadmMasters...)
		return len(notReady) == 0 && len(notServing) == 0 && K.holder() != ""
	}) {
		t.Fatalf("not Ready: %v; haproxy not serving all three: %v\n%s", notReady, notServing, K.diagnose())
	}
	took := time.Since(start)
	r := ld.stop(t)
	retries := 0
	for _, name := range all {
		b, _ := os.ReadFile(filepath.Join(K.node(name).Dir, "kubeadm.log"))
		retries += strings.Count(string(b), "retrying")
	}
	K.record(t, "B1. bootstrap: kubeadm init, two control planes and a worker joined through the VIP", r,
		fmt.Sprintf("up %v after kubeadm init began (init %v; the VIP answered %v after it returned); 4 kubeadm runs, none repeated, no manual step; kubeadm's own retries: %d",
			took.Round(time.Second), initTook.Round(100*time.Millisecond), vipWait.Round(100*time.Millisecond), retries))
	if vipWait > 0 {
		t.Errorf("the VIP did not answer when kubeadm init returned (it did %v later): a user's next command would fail", vipWait.Round(100*time.Millisecond))
	}
	bound(t, r, 0, 0)
}
