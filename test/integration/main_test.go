// Package integration runs the monitor binary against a real etcd and
// kube-apiserver and a real haproxy driven by the static pod's reloader, and
// asserts on what haproxy serves.
package integration

import (
	"context"
	"fmt"
	"github.com/haproxy-monitor/haproxy-monitor/test/need"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
)

var (
	cp         *harness.ControlPlane
	client     kubernetes.Interface
	apiPort    int
	monitorBin string
	workDir    string
)

// Fake masters listen on 127.0.0.11 and up, on the apiserver's port, so
// localhost:<api-port> is the real apiserver like on a master.
const firstMasterHost = 11

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if code, stop := need.Main("integration", harness.Require("etcd", "kube-apiserver", "haproxy", "socat", "unshare")); stop {
		return code
	}
	var err error
	workDir, err = os.MkdirTemp("", "hapm-it")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(workDir)
	if monitorBin, err = harness.MonitorBinary(workDir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	hosts := []string{"127.0.0.1"}
	for i := firstMasterHost; i < firstMasterHost+20; i++ {
		hosts = append(hosts, hostIP(i))
	}
	if apiPort, err = harness.FreePort(hosts...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cp, err = harness.StartControlPlane(ctx, filepath.Join(workDir, "cp"), harness.ControlPlaneOptions{
		APIPort: apiPort, Logf: func(f string, a ...any) { fmt.Printf(f+"\n", a...) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: control plane:", err)
		return 1
	}
	defer cp.Stop()
	if client, err = cp.Client(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// As README tells an operator: one apply of manifests/rbac.yaml.
	if err := harness.ApplyRBAC(ctx, client); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func hostIP(i int) string { return "127.0.0." + strconv.Itoa(i) }
