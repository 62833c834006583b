package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
	"github.com/haproxy-monitor/haproxy-monitor/test/need"
)

// The kind lab runs hack/kind/up.sh as a user runs it, against a Docker
// engine the test starts in a namespace of its own (Debian's dockerd, every
// address in 198.18.240.0/20), with a kind node image assembled here
// (hack/kind/node-image.sh) and a stand-in for kind's load-balancer image
// (test/kindlb, never in the measured path: the VIP is kubeadm's endpoint).
const (
	kindVIP     = "198.18.248.250"
	kindSubnet  = "198.18.248.0/24"
	kindIPRange = "198.18.248.0/25" // docker hands out .1-.127; the VIP is above
	kindCluster = "hapm"
	kindImage   = "localhost/hapm-kind-node:v1.37.2"
)

var kindNodes = []string{kindCluster + "-control-plane", kindCluster + "-control-plane2", kindCluster + "-control-plane3"}

type kindLab struct {
	dir, state, caFile, loadgen, kubectl string
	net                                  *harness.Lab
	docker                               *harness.Docker
	bin                                  string
}

func TestKindLab(t *testing.T) {
	if err := harness.Require("kubectl", "kind", "dockerd"); err != nil {
		need.Missing(t, "%v", err)
	}
	for _, img := range []string{"kind-node.tar", "kind-lb.tar"} {
		if _, err := os.Stat(filepath.Join(imageDir(), img)); err != nil {
			need.Missing(t, "image %s missing (hack/kind/node-image.sh): %v", img, err)
		}
	}
	k, err := setupKind()
	if k != nil {
		defer func() {
			k.teardown()
			if left := k.leftovers(); left != "" {
				t.Errorf("the kind lab left behind: %s", left)
			}
		}()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Run("refused-before-anything", k.kindRefused)
	if !t.Run("up", k.kindUp) {
		return
	}
	t.Run("same-name-refused", k.kindSameName)
	t.Run("holder-stopped", k.kindHolderStopped)
	t.Run("delete", k.kindDelete)
}

func setupKind() (*kindLab, error) {
	dir, err := os.MkdirTemp("", "hapm-kind")
	if err != nil {
		return nil, err
	}
	bin, err := harness.BinDir()
	if err != nil {
		return nil, err
	}
	k := &kindLab{dir: dir, state: filepath.Join(dir, "state"), bin: bin, kubectl: filepath.Join(bin, "kubectl")}
	prefix := fmt.Sprintf("hk%d", os.Getpid()%10000)
	if k.net, err = harness.NewLab(prefix); err != nil {
		return k, err
	}
	k.net.Adopt(dir)
	shim, err := harness.Build(dir, "./test/runcshim", "runcshim")
	if err != nil {
		return k, err
	}
	if k.loadgen, err = harness.Build(dir, "./test/e2e/loadgen", "loadgen"); err != nil {
		return k, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	k.docker, err = k.net.StartDocker(ctx, harness.DockerOptions{Host: "dk", Addr: "198.18.240.2/24",
		Bridge: "198.18.241.1/24", Pools: []string{"198.18.244.0/22"}, Dir: filepath.Join(dir, "docker"),
		Runtime: shim, CgroupParent: "/" + prefix + "-docker"})
	if err != nil {
		return k, err
	}
	for _, img := range []string{"kind-node.tar", "kind-lb.tar", "haproxy-monitor.tar"} {
		if _, err := k.docker.Run(ctx, "load", "-q", "-i", filepath.Join(imageDir(), img)); err != nil {
			return k, err
		}
	}
	return k, nil
}

// leftovers names what the lab's teardown should have removed and did not:
// its namespaces, its engine's cgroup, its directory.
func (k *kindLab) leftovers() string {
	var left []string
	if k.net != nil {
		if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), k.net.Prefix+"-") {
			left = append(left, "network namespaces "+k.net.Prefix+"-*")
		}
		if m, _ := filepath.Glob("/sys/fs/cgroup/*/" + k.net.Prefix + "-docker"); len(m) > 0 {
			left = append(left, "cgroups "+strings.Join(m, " "))
		}
	}
	if _, err := os.Stat(k.dir); err == nil && os.Getenv("LAB_KEEP") == "" {
		left = append(left, k.dir)
	}
	return strings.Join(left, ", ")
}

func (k *kindLab) teardown() {
	if k.docker != nil {
		k.docker.Stop()
	}
	if k.net != nil {
		k.net.Close()
	}
	if os.Getenv("LAB_KEEP") == "" {
		os.RemoveAll(k.dir)
	}
}

// upSh runs hack/kind/up.sh with args where the engine's networks are, as a
// user's shell would: docker, kind and kubectl on PATH, DOCKER_HOST set.
func (k *kindLab) upSh(ctx context.Context, env []string, args ...string) (string, error) {
	argv := append(k.docker.Enter(), append([]string{"/bin/bash", filepath.Join(repoRoot(), "hack", "kind", "up.sh")}, args...)...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), k.docker.Env()...),
		"PATH=/usr/bin:/usr/sbin:"+k.bin+":"+os.Getenv("PATH"), "KUBECONFIG="+filepath.Join(k.dir, "kubeconfig"))
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// docker runs the docker CLI against the lab's engine.
func (k *kindLab) dockerRun(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return k.docker.Run(ctx, args...)
}

// containers lists every container of the engine, running or not.
func (k *kindLab) containers() string {
	out, _ := k.dockerRun("ps", "-a", "--format", "{{.Names}}")
	return strings.TrimSpace(out)
}

// Faults a user can make, each refused with a clear message before anything
// exists: no container, no network, no state directory.
func (k *kindLab) kindRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// A kind that reports an old version: a script on PATH ahead of ours.
	old := filepath.Join(k.dir, "old-kind")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "kind"), []byte("#!/bin/sh\necho 'kind v0.30.0 go1.24.0 linux/amd64'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"docker missing", []string{"PATH=" + k.bin}, []string{"--vip", kindVIP}, "docker is required"},
		{"kind too old", []string{"PATH=" + old + ":/usr/bin:/usr/sbin:" + k.bin}, []string{"--vip", kindVIP, "--subnet", kindSubnet},
			"kind v0.30.0 is too old"},
		{"VIP in docker's range", nil, []string{"--vip", "198.18.248.20", "--subnet", kindSubnet, "--ip-range", kindIPRange},
			"198.18.248.20 is inside --ip-range 198.18.248.0/25"},
		{"VIP outside the subnet", nil, []string{"--vip", "198.18.249.250", "--subnet", kindSubnet}, "is not inside --subnet"},
		{"no VIP", nil, nil, "--vip is required"},
		{"not a network", nil, []string{"--vip", kindVIP, "--subnet", "198.18.248.0/33"}, "198.18.248.0/33 is not an IPv4 network"},
		{"not an address", nil, []string{"--vip", "198.18.248.300", "--subnet", kindSubnet}, "is not an IPv4 address"},
	} {
		before := k.containers()
		out, err := k.upSh(ctx, c.env, append(c.args, "--state-dir", k.state, "--image", kindImage)...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %v, want a refusal saying %q:\n%s", c.name, err, c.want, out)
		}
		if after := k.containers(); after != before {
			t.Errorf("%s: containers before %q, after %q", c.name, before, after)
		}
		if nets, _ := k.dockerRun("network", "ls", "--filter", "name=^kind$", "-q"); strings.TrimSpace(nets) != "" {
			t.Errorf("%s: the network kind was created", c.name)
		}
		if _, err := os.Stat(k.state); err == nil {
			t.Errorf("%s: %s was created", c.name, k.state)
		}
	}
}

// KD1. up.sh builds three control planes through the VIP: the first node's
// kubeadm init uses VIP:6443 as its endpoint, the others join through it,
// and the smoke test sees haproxy count a request to the VIP.
func (k *kindLab) kindUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	patch := filepath.Join(k.dir, "etcd-tag.yaml")
	// The node image carries our etcd build under the tag the kubeadm lab
	// uses, not kubeadm's default one.
	if err := os.WriteFile(patch, []byte("kind: ClusterConfiguration\netcd:\n  local:\n    imageTag: 3.6.16-0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := k.upSh(ctx, nil, "--vip", kindVIP, "--subnet", kindSubnet, "--ip-range", kindIPRange, "--name", kindCluster,
		"--image", kindImage, "--no-cni", "--kubeadm-patch", patch, "--state-dir", k.state)
	took := time.Since(start)
	t.Logf("hack/kind/up.sh (%v):\n%s", took.Round(time.Second), out)
	if err != nil {
		t.Fatalf("up.sh: %v\n%s", err, k.diagnose())
	}
	if !strings.Contains(out, "smoke test passed") {
		t.Fatalf("up.sh exited 0 without its smoke test passing\n%s", k.diagnose())
	}
	if _, err := k.dockerRun("cp", kindNodes[0]+":/etc/kubernetes/pki/ca.crt", filepath.Join(k.dir, "ca.crt")); err != nil {
		t.Fatal(err)
	}
	k.caFile = filepath.Join(k.dir, "ca.crt")
	// up.sh's kubeadm patch gave every apiserver its shutdown delay.
	for _, n := range kindNodes {
		if m, err := k.dockerRun("exec", n, "cat", "/etc/kubernetes/manifests/kube-apiserver.yaml"); err != nil || !strings.Contains(m, "--shutdown-delay-duration=5s") {
			t.Errorf("%s's kube-apiserver runs without --shutdown-delay-duration=5s: %v", n, err)
		}
	}
	addRow(t, row{lab: "kind", id: "KD1", title: "hack/kind/up.sh: three control planes, kubeadm init and joins through the VIP",
		note: fmt.Sprintf("cluster up and the smoke test through haproxy passed in %v", took.Round(time.Second))})
}

// A second up.sh with the name of the running cluster is refused before it
// touches anything: the cluster's containers and the state directory stay.
func (k *kindLab) kindSameName(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	before := k.containers()
	out, err := k.upSh(ctx, nil, "--vip", kindVIP, "--name", kindCluster, "--image", kindImage, "--state-dir", k.state)
	if err == nil || !strings.Contains(out, "a kind cluster named "+kindCluster+" exists already") {
		t.Errorf("up.sh for a cluster that exists: exit %v, want a refusal naming it:\n%s", err, out)
	}
	if after := k.containers(); after != before {
		t.Errorf("containers before %q, after %q", before, after)
	}
	for _, n := range kindNodes {
		if _, err := os.Stat(filepath.Join(k.state, strings.TrimPrefix(n, kindCluster+"-"), "etc/kubernetes/manifests/haproxy.yaml")); err != nil {
			t.Errorf("the running cluster's files: %v", err)
		}
	}
}

// hasVIP reports whether node has the VIP on its eth0; a node that does
// not answer has none.
func (k *kindLab) hasVIP(node string) bool {
	out, err := k.dockerRun("exec", node, "ip", "-o", "addr", "show", "dev", "eth0")
	return err == nil && strings.Contains(out, " "+kindVIP+"/")
}

// holder is the kind node the VIP is on, "" if none or several.
func (k *kindLab) holder() string {
	var on []string
	for _, n := range kindNodes {
		if k.hasVIP(n) {
			on = append(on, n)
		}
	}
	if len(on) == 1 {
		return on[0]
	}
	return ""
}

// KD2. The VIP holder's node container is stopped (docker stop: its
// systemd shuts down, then everything in it is killed): the VIP moves and
// the API keeps answering through it.
func (k *kindLab) kindHolderStopped(t *testing.T) {
	var holder string
	if !harness.Poll(2*time.Minute, 500*time.Millisecond, func() bool { holder = k.holder(); return holder != "" }) {
		t.Fatalf("no node holds the VIP\n%s", k.diagnose())
	}
	out := filepath.Join(k.dir, "load-holder-stopped.json")
	p, err := harness.StartProcess("loadgen", out, nil, k.net.Wrap("dk", []string{
		k.loadgen, "-url", "https://" + net.JoinHostPort(kindVIP, "6443") + "/version", "-ca", k.caFile, "-duration", "5m", "-workers", "4",
	})...)
	if err != nil {
		t.Fatal(err)
	}
	ld := &runningLoad{proc: p, out: out}
	// The containers on the holder, to match the scopes its systemd stops.
	if ps, err := k.dockerRun("exec", holder, "crictl", "ps"); err == nil {
		t.Logf("containers on %s:\n%s", holder, ps)
	}
	time.Sleep(2 * time.Second) // load running before the failure (a window, not a wait)
	start := time.Now()
	mark(t, "docker stop "+holder, start)
	// docker stop returns when the container is gone (systemd's shutdown
	// or docker's 10 s grace); the VIP is watched meanwhile.
	stopDone := make(chan error, 1)
	var stopped time.Duration
	go func() {
		_, err := k.dockerRun("stop", holder)
		stopped = time.Since(start)
		stopDone <- err
	}()
	var next string
	var moved, left time.Duration
	stopping := true
	if !harness.Poll(time.Minute, 50*time.Millisecond, func() bool {
		if stopping {
			select {
			case err := <-stopDone:
				if err != nil {
					t.Fatalf("docker stop %s: %v", holder, err)
				}
				stopping = false
				mark(t, holder+" stopped", start.Add(stopped))
			default:
			}
		}
		if left == 0 && !k.hasVIP(holder) {
			left = time.Since(start)
			mark(t, "VIP gone from "+holder, start.Add(left))
		}
		if next == "" {
			for _, n := range kindNodes {
				if n != holder && k.hasVIP(n) {
					next, moved = n, time.Since(start)
					mark(t, "VIP on "+next, start.Add(moved))
					break
				}
			}
		}
		return !stopping && next != "" && left != 0
	}) {
		t.Fatalf("the VIP did not move from %s (on %q after %v; docker stop done: %v)\n%s", holder, next, moved, !stopping, k.diagnose())
	}
	// What the node's systemd did while docker waited for it, each line at
	// its offset from the docker stop.
	if logs, err := k.dockerRun("logs", "--timestamps", "--since", start.UTC().Format(time.RFC3339Nano), holder); err != nil {
		t.Logf("docker logs %s: %v\n%s", holder, err, logs)
	} else {
		t.Logf("%s's console from the docker stop on:\n%s", holder, consoleOffsets(logs, start))
	}
	time.Sleep(3 * time.Second) // load on past the move (the check, not a wait)
	r := ld.stop(t)
	// kubectl through the VIP, with the admin credentials.
	admin := filepath.Join(k.dir, "admin.conf")
	if _, err := k.dockerRun("cp", next+":/etc/kubernetes/admin.conf", admin); err != nil {
		t.Fatal(err)
	}
	nodes, err := k.net.Run("dk", k.kubectl, "--kubeconfig", admin, "--server", "https://"+net.JoinHostPort(kindVIP, "6443"),
		"get", "nodes", "-o", "name")
	if err != nil || strings.Count(nodes, "node/") != 3 {
		t.Errorf("kubectl get nodes through the VIP after the move: %v\n%s", err, nodes)
	}
	addRow(t, row{lab: "kind", id: "KD2", title: "the VIP holder's node container stopped (docker stop)", result: &r,
		note: fmt.Sprintf("docker stop took %v; VIP on %s after %v, gone from %s after %v; kubectl through the VIP lists the three nodes",
			stopped.Round(100*time.Millisecond), next, moved.Round(10*time.Millisecond), holder, left.Round(10*time.Millisecond))})
	if r.Sent < 50 {
		t.Errorf("only %d requests sent", r.Sent)
	}
	// Measured 0-4 failed (haproxy's hard stop at the node's shutdown
	// SIGTERM resets what is in flight), 0-1270 ms, over fourteen runs
	// (2026-12-03); about twice the worst.
	bound(t, r, 8, 2500*time.Millisecond)
}

// ansiEscape matches the terminal escapes in a console log.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// consoleOffsets prints the lines of a docker logs --timestamps output
// about the pods' containers, the kubelet and containerd, with each line's
// time as an offset from start, the escapes dropped.
func consoleOffsets(logs string, start time.Time) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		ts, text, _ := strings.Cut(l, " ")
		text = strings.TrimSpace(ansiEscape.ReplaceAllString(strings.ReplaceAll(text, "\r", ""), ""))
		if !strings.Contains(text, "cri-containerd") && !strings.Contains(text, "kubelet.service") && !strings.Contains(text, "containerd.service") {
			continue
		}
		if at, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			fmt.Fprintf(&b, "  %7.3fs %s\n", at.Sub(start).Seconds(), text)
		} else {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	return b.String()
}

// KD3. up.sh --delete leaves nothing: no container, no network it made, no
// state.
func (k *kindLab) kindDelete(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := k.upSh(ctx, nil, "--delete", "--name", kindCluster, "--state-dir", k.state)
	if err != nil {
		t.Fatalf("up.sh --delete: %v\n%s", err, out)
	}
	if c := k.containers(); c != "" {
		t.Errorf("containers left: %s", c)
	}
	if nets, _ := k.dockerRun("network", "ls", "--filter", "name=^kind$", "-q"); strings.TrimSpace(nets) != "" {
		t.Errorf("the network kind that up.sh created is left")
	}
	if _, err := os.Stat(k.state); err == nil {
		t.Errorf("%s left", k.state)
	}
}

// diagnose gathers what a failure needs: the containers, each node's
// kubelet and static pods, dockerd's log.
func (k *kindLab) diagnose() string {
	var b strings.Builder
	ps, _ := k.dockerRun("ps", "-a")
	fmt.Fprintf(&b, "containers:\n%s\n", ps)
	for _, n := range kindNodes {
		for _, argv := range [][]string{
			{"exec", n, "systemctl", "--no-pager", "--failed"},
			{"exec", n, "crictl", "ps", "-a"},
			{"exec", n, "sh", "-c", "journalctl --no-pager -u kubelet | tail -n 30"},
			{"exec", n, "sh", "-c", "for c in $(crictl ps -a -q --name 'haproxy|monitor|keepalived'); do crictl logs --tail 15 $c 2>&1; done"},
		} {
			out, err := k.dockerRun(argv...)
			fmt.Fprintf(&b, "--- %s: %s %v\n%s\n", n, strings.Join(argv[2:], " "), err, out)
		}
	}
	fmt.Fprintf(&b, "--- dockerd:\n%s\n", tail(k.docker.Log(), 30))
	return b.String()
}
