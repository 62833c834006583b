package runtimeapi

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/need"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
)

const sample = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 masters 1 m1 127.0.0.11 2 0 1 1 1 1 0 2 0 0 0 0 - 6443 - 0 0 - - 0
3 masters 2 m2 fd00::12 0 8 1 1 1 1 0 2 0 0 0 0 - 6443 - 0 0 - - 0
`

func TestParseServersState(t *testing.T) {
	all, err := ParseServersState(sample)
	if err != nil {
		t.Fatal(err)
	}
	got := ByName(all, "masters")
	if len(got) != 2 || got["m1"] != (Server{Backend: "masters", Name: "m1", Addr: "127.0.0.11", Port: "6443", Up: true}) ||
		got["m2"] != (Server{Backend: "masters", Name: "m2", Addr: "fd00::12", Port: "6443", Up: false, Admin: 8}) || !got["m2"].Draining() {
		t.Fatalf("parsed %+v", all)
	}
	if _, err := ParseServersState("Unknown command\n"); err == nil {
		t.Fatal("an error answer parsed")
	}
	if got, err := ParseServersState("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n"); err != nil || len(got) != 0 {
		t.Fatalf("empty backend: %v %v", got, err)
	}
}

// Against a real haproxy with a read-only (level user) socket, as the
// monitor uses it.
func TestServersStateRealHAProxy(t *testing.T) {
	bin := need.Tool(t, "haproxy")[0]
	dir, _ := os.MkdirTemp("", "rtapi")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg := filepath.Join(dir, "h.cfg")
	_ = os.WriteFile(cfg, []byte("global\n  stats socket "+sock+" mode 600 level user\n"+
		"defaults\n  mode tcp\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\n"+
		"frontend f\n  bind 127.0.0.1:"+itoa(port)+"\n  default_backend masters\n"+
		"backend masters\n  server m1 127.0.0.11:6443\n  server m2 127.0.0.12:6443\n"), 0o644)
	cmd := exec.Command(bin, "-db", "-f", cfg)
	// Dies with the test process: make mutation kills a test binary that
	// outlives its timeout, and its deferred Kill never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var got map[string]Server
	poll.Until(10*time.Second, 20*time.Millisecond, func() bool {
		all, _ := ServersState(context.Background(), sock, "")
		got = ByName(all, "masters")
		return len(got) > 0
	})
	if len(got) != 2 || got["m2"].Addr != "127.0.0.12" || !got["m1"].Up {
		t.Fatalf("servers %+v", got)
	}
	// level user is read-only: the monitor cannot change haproxy by accident.
	if out, _ := Command(context.Background(), sock, "disable server masters/m1"); !strings.Contains(out, "Permission denied") {
		t.Fatalf("write command on a level user socket answered %q", out)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// A dial error is explained when the path is no socket and passed through
// when it is one or is missing.
func TestSocketError(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	file := filepath.Join(dir, "file")
	_ = os.WriteFile(file, nil, 0o600)
	dial := errors.New("connection refused")
	for _, c := range []struct {
		path, want string
	}{
		{sock, "connection refused"},
		{filepath.Join(dir, "missing"), "connection refused"},
		{file, "regular file"},
		{dir, "directory"},
	} {
		got := SocketError(c.path, dial)
		if !strings.Contains(got.Error(), c.want) || (c.want == "connection refused") != (got == dial) {
			t.Errorf("SocketError(%s) = %v, want %q", filepath.Base(c.path), got, c.want)
		}
	}
}
