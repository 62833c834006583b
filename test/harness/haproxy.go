package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/manifests"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
)

// HAProxy is the haproxy container of manifests/haproxy.yaml run on this
// host: its reloader script, unmodified, with paths pointed into Dir, inside a
// private PID namespace so that its "pidof haproxy" sees only its own haproxy
// processes, as in the container.
type HAProxy struct {
	Dir          string
	RunDir       string // -p pidfile and the -x stats socket
	SockDir      string // haproxy-master.sock and haproxy-log.sock
	CfgPath      string
	TemplatePath string // templates/haproxy.cfg.tmpl with this instance's paths and ports
	MasterSock   string
	StatsSock    string // level admin, in RunDir: the reloader's -x socket
	UserSock     string // level user, in SockDir: the monitor's read-only socket
	AdminSock    string // level admin, in SockDir: the monitor's runtime changes
	StateFile    string // server-state-file, in SockDir
	LBPort       int
	StatPort     int
	HealthPort   int
	// Prefix runs the reloader under another command, such as
	// "ip netns exec <ns>" in the lab; Inner goes inside its PID namespace,
	// right before bash (the lab's Setpriv).
	Prefix []string
	Inner  []string

	proc *Process
}

// PrepareHAProxy lays out directories and the instance's template. Nothing
// runs yet; the monitor may start first.
func PrepareHAProxy(dir string) (*HAProxy, error) {
	var ports [3]int
	for i := range ports {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	return PrepareHAProxyPorts(dir, ports[0], ports[1], ports[2])
}

// PrepareHAProxyPorts is PrepareHAProxy with the lb, stats and health ports
// given (the lab uses the production ones inside its namespaces).
func PrepareHAProxyPorts(dir string, lbPort, statPort, healthPort int) (*HAProxy, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	return PrepareHAProxyFrom(dir, filepath.Join(root, "templates", "haproxy.cfg.tmpl"), lbPort, statPort, healthPort,
		func(h *HAProxy) map[string]string {
			return map[string]string{
				"/var/run/haproxy/haproxy-log.sock":   filepath.Join(h.SockDir, "haproxy-log.sock"),
				"/var/run/haproxy/haproxy-stats.sock": h.UserSock,
				"/var/run/haproxy/haproxy-admin.sock": h.AdminSock,
				"/var/run/haproxy/server-state":       h.StateFile,
				":9444":                               ":" + strconv.Itoa(h.HealthPort),
			}
		})
}

// PrepareHAProxyFrom is PrepareHAProxyPorts with another template (the
// lab's baseline): its stats socket path is replaced by this instance's,
// and each key of subst(h), which must be present, by its value.
func PrepareHAProxyFrom(dir, template string, lbPort, statPort, healthPort int, subst func(h *HAProxy) map[string]string) (*HAProxy, error) {
	h := &HAProxy{Dir: dir, RunDir: filepath.Join(dir, "run"), SockDir: filepath.Join(dir, "sock"), CfgPath: filepath.Join(dir, "etc", "haproxy.cfg")}
	for _, d := range []string{h.RunDir, h.SockDir, filepath.Dir(h.CfgPath)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	h.MasterSock = filepath.Join(h.SockDir, "haproxy-master.sock")
	h.StatsSock = filepath.Join(h.RunDir, "haproxy.sock")
	h.UserSock = filepath.Join(h.SockDir, "haproxy-stats.sock")
	h.AdminSock = filepath.Join(h.SockDir, "haproxy-admin.sock")
	h.StateFile = filepath.Join(h.SockDir, "server-state")
	h.LBPort, h.StatPort, h.HealthPort = lbPort, statPort, healthPort
	tmpl, err := os.ReadFile(template)
	if err != nil {
		return nil, err
	}
	repl := map[string]string{"/var/lib/haproxy/run/haproxy.sock": h.StatsSock}
	if subst != nil {
		for k, v := range subst(h) {
			repl[k] = v
		}
	}
	text, err := substitute(string(tmpl), repl)
	if err != nil {
		return nil, err
	}
	h.TemplatePath = filepath.Join(dir, "haproxy.cfg.tmpl")
	return h, os.WriteFile(h.TemplatePath, []byte(text), 0o644)
}

// RewriteTemplate replaces old with new in this instance's template, for
// comparisons against a variant (old must be present).
func (h *HAProxy) RewriteTemplate(old, new string) error {
	b, err := os.ReadFile(h.TemplatePath)
	if err != nil {
		return err
	}
	text, err := substitute(string(b), map[string]string{old: new})
	if err != nil {
		return err
	}
	return os.WriteFile(h.TemplatePath, []byte(text), 0o644)
}

// substitute replaces each key, failing when one is absent: the template
// changed and the harness would silently test production paths otherwise.
func substitute(text string, repl map[string]string) (string, error) {
	for from, to := range repl {
		if !strings.Contains(text, from) {
			return "", fmt.Errorf("template no longer contains %q", from)
		}
		text = strings.ReplaceAll(text, from, to)
	}
	return text, nil
}

// ReloaderScript is the haproxy container's script from the shipped manifest.
func ReloaderScript() (script string, env []string, err error) {
	pod, err := manifests.Pod("haproxy.yaml")
	if err != nil {
		return "", nil, err
	}
	script, err = manifests.Script(pod, "haproxy")
	if err != nil {
		return "", nil, err
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == "haproxy" {
			for _, e := range c.Env {
				env = append(env, e.Name+"="+e.Value)
			}
		}
	}
	return script, env, nil
}

// Start runs the reloader (which starts haproxy if the cfg is non-empty) and
// waits for its socket.
func (h *HAProxy) Start() error {
	if err := Require("haproxy", "socat", "unshare"); err != nil {
		return err
	}
	script, env, err := ReloaderScript()
	if err != nil {
		return err
	}
	bin, _ := exec.LookPath("haproxy")
	// No pause before the soft stop on SIGTERM here: nothing moves a VIP.
	env = append(env, "HAPROXY_BIN="+bin, "HAPROXY_CFG="+h.CfgPath, "HAPROXY_RUN_DIR="+h.RunDir, "HAPROXY_SOCK_DIR="+h.SockDir,
		"HAPROXY_STOP_DELAY=0")
	argv := append(append([]string{}, h.Prefix...), "unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL")
	argv = append(append(argv, h.Inner...), "bash", "-c", script)
	h.proc, err = StartProcess("haproxy-reloader", filepath.Join(h.Dir, "reloader.log"), env, argv...)
	if err != nil {
		return err
	}
	if !Poll(10*time.Second, 20*time.Millisecond, func() bool { return h.proc.Exited() || socketExists(h.MasterSock) }) || h.proc.Exited() {
		return fmt.Errorf("reloader did not open %s:\n%s", h.MasterSock, h.proc.Tail(20))
	}
	return nil
}

// Stop ends the reloader; the kernel ends every process of its PID namespace.
func (h *HAProxy) Stop() {
	if h.proc != nil {
		h.proc.Stop(5 * time.Second)
	}
}

// Kill ends the reloader and haproxy at once (SIGKILL), as a crash or the
// kubelet's kill would.
func (h *HAProxy) Kill() {
	if h.proc != nil && !h.proc.Exited() {
		_ = h.proc.Signal(syscall.SIGKILL)
		_ = h.proc.Wait(context.Background())
	}
}

// Running reports whether the reloader is alive.
func (h *HAProxy) Running() bool { return h.proc != nil && !h.proc.Exited() }

// Log is the reloader's output (its set -x trace and haproxy's stderr).
func (h *HAProxy) Log() string {
	if h.proc == nil {
		return ""
	}
	return h.proc.Log()
}

// ReloadsReceived counts the reload lines the reloader has read.
func (h *HAProxy) ReloadsReceived() int {
	return strings.Count(h.Log(), "The client send: reload")
}

func socketExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode()&os.ModeSocket != 0
}

// Servers reads "show servers state masters": what the running haproxy
// really has, not what the file says.
func (h *HAProxy) Servers() (map[string]runtimeapi.Server, error) {
	s, err := runtimeapi.ServersState(context.Background(), h.StatsSock, "masters")
	return runtimeapi.ByName(s, "masters"), err
}

// ServersUp reports whether the masters backend has exactly the given servers,
// all UP. Each entry is "name" or "name@address".
func (h *HAProxy) ServersUp(want ...string) bool {
	s, err := h.Servers()
	return err == nil && serversUp(s, true, want)
}

// ServersReady is ServersUp with none of them draining.
func (h *HAProxy) ServersReady(want ...string) bool {
	s, err := h.Servers()
	return err == nil && serversUp(s, false, want)
}

// Info is one field of the running haproxy's "show info" (Pid, Uptime_sec, ...).
func (h *HAProxy) Info(field string) (string, error) {
	out, err := runtimeapi.Command(context.Background(), h.StatsSock, "show info")
	if err != nil {
		return "", err
	}
	return infoField(out, field)
}

// infoField picks one field out of "show info".
func infoField(out, field string) (string, error) {
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no %s in haproxy's show info", field)
}

// serversUp reports whether s is exactly want, all UP (and, unless
// draining is allowed, none draining). Each entry is "name" or
// "name@address".
func serversUp(s map[string]runtimeapi.Server, draining bool, want []string) bool {
	if len(s) != len(want) {
		return false
	}
	for _, w := range want {
		name, addr, _ := strings.Cut(w, "@")
		got, ok := s[name]
		if !ok || !got.Up || (addr != "" && got.Addr != addr) || (!draining && got.Draining()) {
			return false
		}
	}
	return true
}
