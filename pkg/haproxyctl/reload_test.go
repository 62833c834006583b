package haproxyctl

import (
	"context"
	"github.com/haproxy-monitor/haproxy-monitor/test/fakesock"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sockPath(t *testing.T) string {
	// unix socket paths are limited to 108 bytes; t.TempDir can be long.
	dir, err := os.MkdirTemp("", "rl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "m.sock")
}

func TestSendWritesReloadLine(t *testing.T) {
	path := sockPath(t)
	l := fakesock.NewReloader(t, path)
	for i := 0; i < 3; i++ {
		if err := Send(context.Background(), path, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	poll.Must(t, 10*time.Second, "three reload lines on three connections", func() bool {
		lines, conns := l.Lines()
		return len(lines) == 3 && conns == 3
	})
	lines, _ := l.Lines()
	for _, line := range lines {
		if line != "reload" {
			t.Fatalf("got line %q, want reload", line)
		}
	}
}

func TestSendMissingSocketFails(t *testing.T) {
	if err := Send(context.Background(), sockPath(t), time.Second); err == nil {
		t.Fatal("send to a missing socket succeeded")
	}
}

// A socket file left behind by a dead reloader refuses connections; the send
// fails at once instead of hanging.
func TestSendStaleSocketFileFails(t *testing.T) {
	path := sockPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("socket file should remain: %v", err)
	}
	start := time.Now()
	if err := Send(context.Background(), path, time.Second); err == nil {
		t.Fatal("send to a stale socket file succeeded")
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("send took %v", d)
	}
}

// A socket path that is a file or a directory is named as such, not as a
// refused connection.
func TestSendSaysWhatThePathIs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	_ = os.WriteFile(file, nil, 0o644)
	for path, want := range map[string]string{file: "is a regular file, not a unix socket", dir: "is a directory, not a unix socket"} {
		if err := Send(context.Background(), path, time.Second); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Send(%s) = %v, want %q", path, err, want)
		}
	}
}
