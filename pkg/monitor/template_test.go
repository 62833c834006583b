package monitor

import (
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery"
)

// The template is replaced while running, as OpenShift does on upgrades: by
// rename, then (projected files) by swapping a symlink. A good one is applied
// with one reload; a broken one keeps the running configuration and fails
// readiness until the file changes again.
func TestTemplateUpdates(t *testing.T) {
	dir := t.TempDir()
	orig, err := os.ReadFile("../../templates/haproxy.cfg.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	// Kubernetes' projected-volume layout: the path is a symlink into a
	// directory that is swapped whole.
	for _, d := range []string{"v1", "v2", "v3"} {
		_ = os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	_ = os.WriteFile(filepath.Join(dir, "v1", "haproxy.cfg.tmpl"), orig, 0o644)
	_ = os.Symlink("v1", filepath.Join(dir, "..data"))
	tmpl := filepath.Join(dir, "haproxy.cfg.tmpl")
	_ = os.Symlink("..data/haproxy.cfg.tmpl", tmpl)

	cfg := testConfig(t, newSinkPath(t))
	cfg.TemplatePath = tmpl
	h := start(t, cfg, true, node("m1", discovery.MasterLabel, "198.18.0.11"))
	h.waitServers("m1=198.18.0.11:6443")
	h.waitReloads(1)

	swap := func(version string, text []byte) {
		t.Helper()
		_ = os.WriteFile(filepath.Join(dir, version, "haproxy.cfg.tmpl"), text, 0o644)
		tmp := filepath.Join(dir, "..data_tmp")
		_ = os.Symlink(version, tmp)
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	swap("v2", append([]byte("# template v2\n"), orig...))
	h.waitReloads(2)
	if !strings.HasPrefix(h.file(), "# template v2\n") {
		t.Fatalf("the new template was not applied:\n%s", h.file())
	}

	before := h.file()
	swap("v3", []byte("{{ .LBConfig.Nope }}\n"))
	poll.Must(t, 15*time.Second, "readiness to fail on the broken template", func() bool {
		_, err := h.mon.health.ready()
		return err != nil && strings.Contains(err.Error(), "template cannot be used")
	})
	if h.file() != before || h.sink.count(t) != 2 {
		t.Fatal("a broken template changed the file or reloaded")
	}
	if got := testutil.ToFloat64(h.mon.metrics.TemplateReloads.WithLabelValues("failed")); got != 1 {
		t.Errorf("failed template reloads %v, want 1", got)
	}

	// Fixed, by an atomic rename of the file itself this time.
	fixed := filepath.Join(dir, "fixed.tmpl")
	_ = os.WriteFile(fixed, append([]byte("# template v4\n"), orig...), 0o644)
	_ = os.Remove(tmpl)
	if err := os.Rename(fixed, tmpl); err != nil {
		t.Fatal(err)
	}
	h.waitReloads(3)
	poll.Must(t, 15*time.Second, "readiness back", func() bool { _, err := h.mon.health.ready(); return err == nil })
	if !strings.HasPrefix(h.file(), "# template v4\n") {
		t.Fatalf("the fixed template was not applied:\n%s", h.file())
	}
}
