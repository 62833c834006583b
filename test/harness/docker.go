package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Docker is a Docker engine (Debian's dockerd, with the containerd it
// starts) that a lab runs in a network namespace of its own: its bridges,
// iptables rules and published ports stay there, its networks take
// addresses from the lab's range only, and its state lives under Dir. The
// lab's reaper removes all of it if the test process dies: the processes
// in the namespace and in CgroupParent, the mounts and files under Dir.
type Docker struct {
	// Host is DOCKER_HOST for the docker CLI and kind.
	Host string
	// Dir holds the engine's data, run state, socket and log.
	Dir string
	// NS is the network namespace the engine and its networks live in.
	NS           string
	proc         *Process
	cgroupParent string
}

// DockerOptions configure StartDocker.
type DockerOptions struct {
	// Host is the lab host (namespace) to run in; its eth0 is on the lab's
	// bridge.
	Host string
	// Addr is the host's address on the lab network (CIDR).
	Addr string
	// Bridge is docker0's address (--bip, CIDR) and Pools the ranges its
	// networks are cut from (--default-address-pool), all inside
	// 198.18.0.0/15, never docker's 172.17/16 default.
	Bridge string
	Pools  []string
	// Dir holds the engine's state (below a lab directory).
	Dir string
	// Runtime, if set, is the OCI runtime every container runs with (a
	// wrapper of runc; see test/runcshim).
	Runtime string
	// CgroupParent is the cgroup every container is created under.
	CgroupParent string
}

// StartDocker starts dockerd in o.Host's namespace and waits until it
// answers. The namespace, Dir and the cgroup are recorded for the reaper
// before anything runs.
func (l *Lab) StartDocker(ctx context.Context, o DockerOptions) (*Docker, error) {
	for _, tool := range []string{"/usr/sbin/dockerd", "/usr/bin/docker", "/usr/bin/containerd"} {
		if _, err := os.Stat(tool); err != nil {
			return nil, fmt.Errorf("docker engine: %s missing (make deps installs docker.io)", tool)
		}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	l.Adopt(o.Dir)
	if o.CgroupParent != "" {
		l.AdoptCgroup(o.CgroupParent)
	}
	if err := l.AddHost(o.Host, o.Addr); err != nil {
		return nil, err
	}
	d := &Docker{Dir: o.Dir, NS: l.NS(o.Host), Host: "unix://" + filepath.Join(o.Dir, "docker.sock"),
		cgroupParent: o.CgroupParent}
	argv := []string{"/usr/sbin/dockerd",
		"--host", d.Host,
		"--data-root", filepath.Join(o.Dir, "data"),
		"--exec-root", filepath.Join(o.Dir, "exec"),
		"--pidfile", filepath.Join(o.Dir, "docker.pid"),
		"--bip", o.Bridge,
		"--storage-driver", "overlay2",
		"--log-level", "warn",
		// No configuration from this machine's /etc/docker.
		"--config-file", filepath.Join(o.Dir, "daemon.json"),
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "daemon.json"), []byte("{}\n"), 0o644); err != nil {
		return nil, err
	}
	for _, p := range o.Pools {
		argv = append(argv, "--default-address-pool", "base="+p+",size=24")
	}
	if o.Runtime != "" {
		argv = append(argv, "--add-runtime", "lab="+o.Runtime, "--default-runtime", "lab")
	}
	if o.CgroupParent != "" {
		argv = append(argv, "--cgroup-parent", o.CgroupParent)
	}
	// nsenter, not "ip netns exec": that mounts a sysfs of the namespace's
	// own over /sys, and the cgroup hierarchies below it with it; dockerd
	// then finds no cgroups ("Devices cgroup isn't mounted").
	p, err := StartProcess("dockerd", filepath.Join(o.Dir, "dockerd.log"), []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"},
		append(d.Enter(), argv...)...)
	if err != nil {
		return nil, err
	}
	d.proc = p
	var last error
	if !Poll(60*time.Second, 200*time.Millisecond, func() bool {
		if p.Exited() {
			return true
		}
		_, last = d.Run(ctx, "version", "--format", "{{.Server.Version}}")
		return last == nil
	}) || p.Exited() {
		d.Stop()
		return nil, fmt.Errorf("dockerd did not answer: %v\n%s", last, p.Tail(20))
	}
	return d, nil
}

// Env is the environment for the docker CLI and kind: this engine, and
// Debian's docker CLI (its API version) ahead of any other on PATH.
func (d *Docker) Env() []string {
	return []string{"DOCKER_HOST=" + d.Host, "PATH=/usr/bin:/usr/sbin:" + os.Getenv("PATH")}
}

// Enter is the command prefix that runs a program in the engine's network
// namespace and nothing else of its own (the machine's mounts, cgroups
// included).
func (d *Docker) Enter() []string { return []string{"nsenter", "--net=/run/netns/" + d.NS} }

// Command is docker with args against this engine, in its namespace (where
// its networks and published ports are).
func (d *Docker) Command(ctx context.Context, args ...string) *exec.Cmd {
	argv := append(d.Enter(), append([]string{"/usr/bin/docker"}, args...)...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), d.Env()...)
	return cmd
}

// Run runs docker with args and returns its output.
func (d *Docker) Run(ctx context.Context, args ...string) (string, error) {
	out, err := d.Command(ctx, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Log is dockerd's log so far.
func (d *Docker) Log() string { return d.proc.Log() }

// Stop removes every container (its processes end with it), stops the
// engine, and removes its state.
func (d *Docker) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if d.proc != nil && !d.proc.Exited() {
		if out, err := d.Run(ctx, "ps", "-aq"); err == nil && strings.TrimSpace(out) != "" {
			_, _ = d.Run(ctx, append([]string{"rm", "-f", "-v"}, strings.Fields(out)...)...)
		}
		d.proc.Stop(30 * time.Second)
	}
	// What dockerd did not take down with it: its containerd and shims
	// (in the namespace), containers' processes (in the cgroup), mounts
	// under its data; then the cgroup itself.
	pids := netnsPids(d.NS)
	if d.cgroupParent != "" {
		pids = append(pids, cgroupPids(d.cgroupParent)...)
	}
	killPids(pids)
	UnmountBelow(d.Dir)
	_ = os.RemoveAll(d.Dir)
	if d.cgroupParent != "" {
		cgroupRemove(d.cgroupParent)
	}
}
