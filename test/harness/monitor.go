package harness

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// Build builds the Go package pkg (a path such as "./cmd/monitor" from the
// repository's root) into dir/name and returns its path. Each lab builds
// into its own directory: a lab removes it when it ends, and a later lab in
// the same process must not point at a binary that went with it. Go's build
// cache makes every build after the first a link.
func Build(dir, pkg, name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// MonitorBinary builds cmd/monitor into dir and returns its path.
func MonitorBinary(dir string) (string, error) {
	return Build(dir, "./cmd/monitor", "monitor")
}

// MonitorArgs are the monitor's command line for one haproxy instance.
type MonitorArgs struct {
	Kubeconfig string
	HAProxy    *HAProxy
	APIPort    int
	VIPs       string // --api-vips
	// HealthPort serves /healthz and /readyz on 127.0.0.1; 0 disables.
	HealthPort int
	Extra      []string
}

// Argv renders the command line after the binary.
func (a MonitorArgs) Argv() []string {
	health := ""
	if a.HealthPort != 0 {
		health = "127.0.0.1:" + strconv.Itoa(a.HealthPort)
	}
	argv := []string{a.Kubeconfig, a.HAProxy.TemplatePath, a.HAProxy.CfgPath,
		"--api-port", strconv.Itoa(a.APIPort),
		"--lb-port", strconv.Itoa(a.HAProxy.LBPort),
		"--stat-port", strconv.Itoa(a.HAProxy.StatPort),
		"--reload-socket", a.HAProxy.MasterSock,
		"--haproxy-stats-socket", a.HAProxy.UserSock,
		"--haproxy-admin-socket", a.HAProxy.AdminSock,
		"--health-bind-address", health,
		"--check-interval", "1s",
		// On this host the VIP is a loopback stand-in: never touch the
		// host's nftables. The lab enables it inside its namespaces.
		"--api-redirect=false",
	}
	if a.VIPs != "" {
		argv = append(argv, "--api-vips", a.VIPs)
	}
	return append(argv, a.Extra...)
}

// StartMonitor runs the monitor binary with args, logging to logPath.
func StartMonitor(bin, logPath string, args MonitorArgs) (*Process, error) {
	return StartProcess("monitor", logPath, nil, append([]string{bin}, args.Argv()...)...)
}

// FileUnchanged reports whether path still holds want.
func FileUnchanged(path string, want []byte) bool {
	got, err := os.ReadFile(path)
	return err == nil && string(got) == string(want)
}

// WaitReadyz polls /readyz until ok accepts its answer or timeout passes,
// and returns the last body and whether ok accepted it.
func WaitReadyz(port int, timeout time.Duration, ok func(code int, body string) bool) (string, bool) {
	var body string
	met := Poll(timeout, 50*time.Millisecond, func() bool {
		var code int
		code, body = Readyz(port)
		return ok(code, body)
	})
	return body, met
}

// Readyz returns the monitor's /readyz status code and body.
func Readyz(port int) (int, string) {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
