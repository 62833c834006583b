package monitor

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haproxy-monitor/haproxy-monitor/test/need"
)

// A track file the monitor cannot write would leave keepalived deciding
// alone without anyone noticing: a missing or read-only directory is refused
// at start with the directory named. Read-only is a read-only mount, as a
// hostPath mounted readOnly is in the pod (root passes a 0555 mode).
func TestValidateTrackFileDirectory(t *testing.T) {
	base := func(track string) Config {
		c := DefaultConfig()
		c.KubeconfigPath, c.TemplatePath, c.ConfigPath = "/k", "/t", "/c"
		c.TrackFile = track
		return c
	}
	dir := t.TempDir()
	c := base(filepath.Join(dir, "haproxy"))
	if err := c.Validate(); err != nil {
		t.Fatalf("writable directory: %v", err)
	}

	c = base(filepath.Join(dir, "absent", "haproxy"))
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "absent")+" does not exist") {
		t.Fatalf("missing directory: %v, want an error naming it", err)
	}

	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=64k", "hapm-ro", ro).CombinedOutput(); err != nil {
			need.Missing(t, "cannot mount a read-only tmpfs: %v: %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("umount", ro).Run() })
	} else if err := os.Chmod(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	c = base(filepath.Join(ro, "haproxy"))
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), ro+" is not writable") {
		t.Fatalf("read-only directory: %v, want an error naming it", err)
	}
}
