package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A lab writes what it creates outside its namespaces into a record under
// recordDir, so that the next lab removes what an interrupted run (a killed
// test binary, a restarted machine) left behind. A leftover host veth
// carrying the lab subnet would otherwise capture the next run's traffic:
// its etcd never becomes reachable and the run fails with no hint why.
const recordDir = "/run/hapm-labs"

// record lines: "owner <pid> <start time>", then in creation order
// "remove <path>", "rmdir <path>" (a directory removed only if empty: a
// mount point the lab made on the host), "cgroup <root>", "sysctl <key>
// <value>".

// startTime is pid's start time in clock ticks since boot, which tells a
// live owner from a recycled pid.
func startTime(pid int) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(s[i+1:])
	// After "pid (comm)", start time is field 22 of stat, the 20th here.
	if len(f) < 20 {
		return "", false
	}
	return f[19], true
}

func (l *Lab) recordPath() string { return filepath.Join(recordDir, l.Prefix) }

func (l *Lab) note(kind, value string) {
	f, err := os.OpenFile(l.recordPath(), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s\n", kind, value)
}

func (l *Lab) openRecord() error {
	if err := os.MkdirAll(recordDir, 0o755); err != nil {
		return err
	}
	st, ok := startTime(os.Getpid())
	if !ok {
		return errors.New("cannot read own start time")
	}
	return os.WriteFile(l.recordPath(), []byte(fmt.Sprintf("owner %d %s\n", os.Getpid(), st)), 0o644)
}

func (l *Lab) closeRecord() { _ = os.Remove(l.recordPath()) }

// Adopt records paths (directories, files) the lab owns outside its
// namespaces; a later lab removes them if this run dies first. Mounts below
// them go too.
func (l *Lab) Adopt(paths ...string) {
	for _, p := range paths {
		l.note("remove", p)
	}
}

// AdoptMountPoint records an empty directory the lab created on the host
// to mount over in its nodes' mount namespaces; it is removed only if still
// empty.
func (l *Lab) AdoptMountPoint(path string) { l.note("rmdir", path) }

// AdoptCgroup records a cgroup root (in every hierarchy) the lab created.
func (l *Lab) AdoptCgroup(root string) { l.note("cgroup", root) }

// AdoptSysctl records a sysctl's value before the lab changed it.
func (l *Lab) AdoptSysctl(key, value string) { l.note("sysctl", key+" "+value) }

// ReapStaleLabs removes what labs whose test process is gone left behind:
// it kills the processes in their namespaces and in their cgroups (only
// those: everything a lab starts runs in one of its namespaces, and a
// pod's processes, in a network namespace of their own, in its node's
// cgroups), then undoes the recorded mounts, directories,
// cgroups and sysctls, and deletes the namespaces. It reports what it did.
func ReapStaleLabs(logf func(string, ...any)) {
	entries, err := os.ReadDir(recordDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		path := filepath.Join(recordDir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		f := strings.Fields(lines[0])
		if len(f) == 3 && f[0] == "owner" {
			if pid, err := strconv.Atoi(f[1]); err == nil {
				if st, ok := startTime(pid); ok && st == f[2] {
					continue // still running
				}
			}
		}
		logf("reaping lab %s left by an interrupted run", e.Name())
		reap(e.Name(), lines[1:])
		_ = os.Remove(path)
	}
}

func reap(prefix string, lines []string) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	var namespaces []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			namespaces = append(namespaces, f[0])
		}
	}
	var pids []int
	for _, line := range lines {
		if kind, root, _ := strings.Cut(line, " "); kind == "cgroup" {
			pids = append(pids, cgroupPids(root)...)
		}
	}
	for _, ns := range namespaces {
		pids = append(pids, netnsPids(ns)...)
	}
	killPids(pids)
	for i := len(lines) - 1; i >= 0; i-- {
		kind, value, _ := strings.Cut(lines[i], " ")
		switch kind {
		case "remove":
			UnmountBelow(value)
			_ = os.RemoveAll(value)
		case "rmdir":
			_ = os.Remove(value)
		case "cgroup":
			cgroupRemove(value)
		case "sysctl":
			if key, v, ok := strings.Cut(value, " "); ok {
				_ = os.WriteFile(filepath.Join("/proc/sys", key), []byte(v+"\n"), 0o644)
			}
		}
	}
	for _, ns := range namespaces {
		_ = sh("ip", "netns", "del", ns)
	}
	_ = sh("ip", "link", "del", prefix+"h0")
}

// netnsPids lists the processes in the named network namespace.
func netnsPids(ns string) []int {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	var pids []int
	for _, s := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(s); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killPids kills pids and waits (up to 10 s) until they are gone.
func killPids(pids []int) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	Poll(10*time.Second, 50*time.Millisecond, func() bool {
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil {
				return false
			}
		}
		return true
	})
}

// subnetInUse names a host interface that already carries an address in
// cidr's subnet: a lab still running, or one left without a record.
func subnetInUse(cidr string) (string, error) {
	_, want, err := net.ParseCIDR(cidr)
	if err != nil {
		return "", err
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && (want.Contains(ipn.IP) || ipn.Contains(want.IP)) {
				return fmt.Sprintf("%s (%s)", ifc.Name, ipn), nil
			}
		}
	}
	return "", nil
}
