package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/need"
)

// A lab whose test process died is removed by the next one: its processes,
// namespaces, host veth and adopted directories, so that its host address
// no longer captures the next run's traffic. A live lab is left alone, and
// a second lab on its subnet is refused with the interface named.
func TestReapStaleLabs(t *testing.T) {
	need.Root(t)
	need.Tool(t, "ip", "sleep")
	const subnet = "198.18.251.2/24" // no other suite uses it
	prefix := fmt.Sprintf("hz%d", os.Getpid()%10000)
	l, err := NewLab(prefix, subnet)
	if err != nil {
		t.Fatal(err)
	}
	reaped := false
	t.Cleanup(func() {
		if !reaped {
			l.Close()
		}
	})
	if err := l.AddHost("x", "198.18.251.10/24"); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("ip", l.Wrap("x", []string{"sleep", "600"})[1:]...)
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = sleeper.Wait(); close(exited) }()
	t.Cleanup(func() { _ = sleeper.Process.Kill() })
	owned := filepath.Join(t.TempDir(), "owned")
	if err := os.MkdirAll(filepath.Join(owned, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	l.Adopt(owned)

	ReapStaleLabs(t.Logf)
	if !nsExists(l.NS("x")) {
		t.Fatal("a live lab was reaped")
	}
	if _, err := NewLab(prefix+"b", subnet); err == nil || !strings.Contains(err.Error(), prefix+"h0") {
		t.Fatalf("a second lab on a live lab's subnet: %v, want an error naming %sh0", err, prefix)
	}

	// The owner dies: a process that has exited stands in for it.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	record := l.recordPath()
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	rest := strings.SplitN(string(b), "\n", 2)[1]
	if err := os.WriteFile(record, []byte(fmt.Sprintf("owner %d 1\n%s", gone.Process.Pid, rest)), 0o644); err != nil {
		t.Fatal(err)
	}
	ReapStaleLabs(t.Logf)
	reaped = true
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the process in the stale lab's namespace still runs")
	}
	for _, ns := range []string{l.NS("x"), l.NS("sw")} {
		if nsExists(ns) {
			t.Errorf("namespace %s survived", ns)
		}
	}
	if _, err := os.Stat(owned); !os.IsNotExist(err) {
		t.Errorf("adopted %s survived: %v", owned, err)
	}
	if _, err := os.Stat(record); !os.IsNotExist(err) {
		t.Errorf("record survived: %v", err)
	}
	next, err := NewLab(prefix+"c", subnet)
	if err != nil {
		t.Fatalf("the subnet is still taken after reaping: %v", err)
	}
	next.Close()
}

func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}
