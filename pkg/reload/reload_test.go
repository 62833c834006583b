package reload

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// listener is a real unix socket server that records each line it receives.
type listener struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
	conns int
}

func listen(t *testing.T, path string) *listener {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.conns++
			l.mu.Unlock()
			go func() {
				defer c.Close()
				s := bufio.NewScanner(c)
				for s.Scan() {
					l.mu.Lock()
					l.lines = append(l.lines, s.Text())
					l.mu.Unlock()
				}
			}()
		}
	}()
	return l
}

func (l *listener) got() (lines []string, conns int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...), l.conns
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

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
	l := listen(t, path)
	for i := 0; i < 3; i++ {
		if err := Send(context.Background(), path, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three reload lines on three connections", func() bool {
		lines, conns := l.got()
		return len(lines) == 3 && conns == 3
	})
	lines, _ := l.got()
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
