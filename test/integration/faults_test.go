package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
)

// The template is updated on disk while the monitor runs (by rename, as
// upgrades do): a good one is applied with one reload; a broken one keeps
// haproxy and the file as they are and fails /readyz; SIGHUP reads it again
// at once and does not end the process.
func TestTemplateUpdatedWhileRunning(t *testing.T) {
	s := newSite(t)
	port := s.health()
	s.startWithM1()
	orig, _ := os.ReadFile(s.hap.TemplatePath)
	replace := func(text string) {
		tmp := s.hap.TemplatePath + ".new"
		writeFile(t, tmp, []byte(text), 0o644)
		if err := os.Rename(tmp, s.hap.TemplatePath); err != nil {
			t.Fatal(err)
		}
	}
	reloads := s.hap.ReloadsReceived()
	replace(strings.Replace(string(orig), "timeout queue        1m", "timeout queue        2m", 1))
	s.waitCfg("timeout queue        2m")
	if !harness.Poll(20*time.Second, 20*time.Millisecond, func() bool { return s.hap.ReloadsReceived() == reloads+1 && s.hap.ServersUp("m1") }) {
		t.Fatalf("the new template was not served: %d reloads", s.hap.ReloadsReceived()-reloads)
	}
	before := s.cfg()
	replace("{{ range .LBConfig.Backends }}\n")
	if body, ok := harness.WaitReadyz(port, 20*time.Second, func(code int, body string) bool {
		return code == 503 && strings.Contains(body, "template cannot be used")
	}); !ok {
		t.Fatalf("/readyz with a broken template: %q", body)
	}
	if !harness.FileUnchanged(s.hap.CfgPath, before) || s.hap.ReloadsReceived() != reloads+1 {
		t.Fatal("a broken template touched the file or haproxy")
	}
	if err := s.mon.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.waitLog(10*time.Second, "SIGHUP: reading the template again")
	if s.mon.Exited() {
		t.Fatal("SIGHUP ended the monitor")
	}
	if _, failed := s.traffic(5); failed != 0 {
		t.Fatalf("%d requests failed while the template was broken", failed)
	}
}

// A kubeconfig whose CA does not sign the apiserver's certificate, with a
// configuration on disk: ready on the last-known-good configuration, and
// saying that TLS is why.
func TestWrongCASaysWhy(t *testing.T) {
	s := newSite(t)
	port := s.health()
	other, err := harness.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	wrong := *cp
	wrong.CA = other
	if err := wrong.WriteKubeconfig(s.args.Kubeconfig, cp.APIServers[0].URL); err != nil {
		t.Fatal(err)
	}
	writeFile(t, s.hap.CfgPath, []byte("# kept\n"), 0o644)
	s.startMonitor()
	if body, ok := harness.WaitReadyz(port, 30*time.Second, func(code int, body string) bool {
		return code == 200 && strings.Contains(body, "last-known-good") && strings.Contains(body, "certificate signed by unknown authority")
	}); !ok {
		t.Fatalf("/readyz = %q, want last-known-good naming the certificate problem", body)
	}
}

// Two monitors for one file: the second refuses to start, naming the first.
func TestSecondMonitorOnOneFileRefused(t *testing.T) {
	s := newSite(t)
	s.startWithM1()
	args := s.args
	args.HealthPort = 0
	p, err := harness.StartMonitor(monitorBin, filepath.Join(s.dir, "second.log"), args)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err == nil || ctx.Err() != nil {
		p.Stop(time.Second)
		t.Fatalf("the second monitor did not refuse to start: %v", err)
	}
	if !strings.Contains(p.Log(), "another monitor (pid ") {
		t.Fatalf("its error does not say why:\n%s", p.Tail(5))
	}
}
