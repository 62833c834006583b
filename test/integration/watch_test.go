package integration

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/failover"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxyctl"
)

// What the monitor's held connection to haproxy (--watch-haproxy) sees with
// the real haproxy and the manifest's reloader: a reload closes it at once
// (the old process's soft stop closes idle keep-alive connections) and the
// probe right after finds the new haproxy answering; a killed haproxy
// closes it and the probe right after is refused or reset.
func TestHeldConnectionAcrossReloadAndDeath(t *testing.T) {
	s := newSite(t)
	s.startWithM1()
	addr := "127.0.0.1:" + strconv.Itoa(s.hap.HealthPort)
	probe := failover.HTTPProbe("http://" + addr + "/haproxy_ready")
	hold := func() <-chan error {
		t.Helper()
		if err := probe(context.Background()); err != nil {
			t.Fatalf("haproxy does not answer its probe: %v", err)
		}
		watch, err := failover.HoldConnection("http://"+addr+"/haproxy_ready", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		closed := make(chan error, 1)
		go func() { closed <- watch(context.Background()) }()
		return closed
	}
	wait := func(what string, closed <-chan error) {
		t.Helper()
		select {
		case err := <-closed:
			t.Logf("%s: held connection closed (%v)", what, err)
		case <-time.After(8 * time.Second): // under haproxy's 10 s keep-alive timeout
			t.Fatalf("%s: the held connection stayed open", what)
		}
	}

	closed := hold()
	reloads := s.hap.ReloadsReceived()
	if err := haproxyctl.Send(context.Background(), s.hap.MasterSock, time.Second); err != nil {
		t.Fatal(err)
	}
	wait("reload", closed)
	if err := probe(context.Background()); err != nil {
		t.Fatalf("probe right after a reload's close: %v; want the new haproxy answering", err)
	}
	if s.hap.ReloadsReceived() == reloads {
		t.Fatal("the reloader saw no reload")
	}

	closed = hold()
	s.hap.Kill()
	wait("kill", closed)
	// The dying haproxy's listener may still take the probe's connect and
	// reset it: right after the held connection closed, the monitor counts
	// refused and reset alike as haproxy gone.
	err := probe(context.Background())
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("probe right after a kill's close: %v; want it refused or reset", err)
	}
}

// A haproxy that exits on its own (here: killed, as a crash; in the kubelet
// lab: a listener it could not bind) is started again by the reloader from
// the file on disk, instead of leaving the container running without it.
func TestReloaderRestartsAnHAProxyThatExited(t *testing.T) {
	s := newSite(t)
	s.startWithM1()
	killed := killProcesses(t, s.hap.CfgPath)
	if killed == 0 {
		t.Fatal("found no haproxy process to kill")
	}
	start := time.Now()
	took := s.waitServing(15*time.Second, "m1")
	if !strings.Contains(s.hap.Log(), "haproxy is not running; starting it again") {
		t.Fatalf("haproxy serves again after %v, but the reloader did not say it restarted it:\n%s", took, tail(s.hap.Log(), 20))
	}
	t.Logf("%d haproxy processes killed; serving again after %v", killed, time.Since(start).Round(time.Millisecond))
}

// killProcesses SIGKILLs the haproxy processes (only ours: their command
// line names cfg) and returns how many there were.
func killProcesses(t *testing.T, cfg string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(string(b), "\x00")
		if err != nil || !strings.HasSuffix(args[0], "haproxy") || !strings.Contains(string(b), "\x00"+cfg+"\x00") {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}
