package apply

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/need"
)

func TestApplyWritesOnlyOnChange(t *testing.T) {
	dir := t.TempDir()
	f := &File{Path: filepath.Join(dir, "haproxy.cfg")}
	ctx := context.Background()

	changed, err := f.Apply(ctx, []byte("one\n"))
	if err != nil || !changed {
		t.Fatalf("first apply: changed=%v err=%v", changed, err)
	}
	st1, _ := os.Stat(f.Path)
	changed, err = f.Apply(ctx, []byte("one\n"))
	if err != nil || changed {
		t.Fatalf("same bytes: changed=%v err=%v", changed, err)
	}
	st2, _ := os.Stat(f.Path)
	if !os.SameFile(st1, st2) {
		t.Fatal("file replaced although the bytes were the same")
	}
	changed, err = f.Apply(ctx, []byte("two\n"))
	if err != nil || !changed {
		t.Fatalf("new bytes: changed=%v err=%v", changed, err)
	}
	if b, _ := os.ReadFile(f.Path); string(b) != "two\n" {
		t.Fatalf("file holds %q", b)
	}
	assertNoTempFiles(t, dir)
}

func TestApplyKeepsMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	f := &File{Path: path}
	if _, err := f.Apply(context.Background(), []byte("new")); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640", st.Mode().Perm())
	}
}

func TestDifferenceValidatedBeforeReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte("good"), 0o644); err != nil {
		t.Fatal(err)
	}
	var seen string
	f := &File{Path: path, Validate: func(_ context.Context, p string) error {
		b, _ := os.ReadFile(p)
		seen = string(b)
		return errors.New("nope")
	}}
	changed, err := f.Apply(context.Background(), []byte("bad"))
	if err == nil || changed {
		t.Fatalf("changed=%v err=%v, want a validation error", changed, err)
	}
	if seen != "bad" {
		t.Fatalf("validator saw %q, want the candidate", seen)
	}
	if b, _ := os.ReadFile(path); string(b) != "good" {
		t.Fatalf("file holds %q after a rejected apply", b)
	}
	assertNoTempFiles(t, dir)
}

func TestApplyReadOnlyDirLeavesOldFile(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores directory permissions; use a read-only bind instead.
		t.Skip("covered by the integration suite's read-only mount as root")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	_ = os.WriteFile(path, []byte("good"), 0o644)
	_ = os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	if _, err := (&File{Path: path}).Apply(context.Background(), []byte("new")); err == nil {
		t.Fatal("apply into a read-only directory succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "good" {
		t.Fatalf("file holds %q", b)
	}
}

// A process that dies between writing the temp file and renaming it must leave
// the old file whole. The crash is real: a child process exits mid-apply.
func TestDifferenceAtomicWriteSurvivesCrash(t *testing.T) {
	if path := os.Getenv("APPLY_CRASH_PATH"); path != "" {
		f := &File{Path: path, beforeRename: func() { os.Exit(3) }}
		_, _ = f.Apply(context.Background(), []byte(strings.Repeat("new line\n", 10000)))
		os.Exit(0) // not reached when the hook runs
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte("old config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDifferenceAtomicWriteSurvivesCrash$")
	cmd.Env = append(os.Environ(), "APPLY_CRASH_PATH="+path)
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("child did not crash at the hook: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old config\n" {
		t.Fatalf("after a crash the file holds %d bytes, want the old config", len(b))
	}
	// The next apply succeeds despite the leftover temp file.
	if _, err := (&File{Path: path}).Apply(context.Background(), []byte("new\n")); err != nil {
		t.Fatal(err)
	}
}

func TestHAProxyCheck(t *testing.T) {
	bin := need.Tool(t, "haproxy")[0]
	dir := t.TempDir()
	good := filepath.Join(dir, "good.cfg")
	bad := filepath.Join(dir, "bad.cfg")
	cfg := "defaults\n  mode tcp\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\n" +
		"frontend f\n  bind 127.0.0.1:1\n  default_backend b\nbackend b\n  server s1 198.18.0.1:6443"
	_ = os.WriteFile(good, []byte(cfg+"\n"), 0o644)
	_ = os.WriteFile(bad, []byte(cfg+" nonsense-keyword\n"), 0o644)
	check := HAProxyCheck(bin, 10*time.Second)
	if err := check(context.Background(), good); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	err := check(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), "nonsense-keyword") {
		t.Fatalf("invalid config: err=%v, want haproxy's complaint", err)
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file %s left behind", e.Name())
		}
	}
}

// Each failure names its stage; a directory sync failing after the rename
// reports the file as changed (it is in place) with StageSync.
func TestApplyStages(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	f := &File{Path: path, SyncDir: func(string) error { return errors.New("injected fsync failure") }}
	changed, err := f.Apply(context.Background(), []byte("new\n"))
	if !changed || Stage(err) != StageSync || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("Apply = %v, %v; want changed with a sync-stage error", changed, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Fatalf("file holds %q", b)
	}
	f = &File{Path: path, Validate: func(context.Context, string) error { return errors.New("refused") }}
	if changed, err := f.Apply(context.Background(), []byte("other\n")); changed || Stage(err) != StageValidate {
		t.Fatalf("Apply = %v, %v; want a validate-stage error", changed, err)
	}
	f = &File{Path: filepath.Join(dir, "missing-dir", "haproxy.cfg")}
	if changed, err := f.Apply(context.Background(), []byte("x\n")); changed || Stage(err) != StageWrite {
		t.Fatalf("Apply = %v, %v; want a write-stage error", changed, err)
	}
}

// A symlinked path stays a link: its target is replaced, in the target's
// directory; owner, group and mode are kept.
func TestApplyThroughSymlinkKeepsOwner(t *testing.T) {
	need.Root(t)
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	_ = os.MkdirAll(real, 0o755)
	target := filepath.Join(real, "haproxy.cfg")
	if err := os.WriteFile(target, []byte("old\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(target, 65534, 65534); err != nil { // nobody:nogroup, as haproxy:haproxy would be
		t.Fatal(err)
	}
	link := filepath.Join(dir, "haproxy.cfg")
	if err := os.Symlink("real/haproxy.cfg", link); err != nil {
		t.Fatal(err)
	}
	if _, err := (&File{Path: link}).Apply(context.Background(), []byte("new\n")); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the link was replaced by a file")
	}
	st, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if b, _ := os.ReadFile(target); string(b) != "new\n" || st.Mode().Perm() != 0o640 || sys.Uid != 65534 || sys.Gid != 65534 {
		t.Fatalf("target %q, mode %v, owner %d:%d", b, st.Mode().Perm(), sys.Uid, sys.Gid)
	}
	assertNoTempFiles(t, real)
}

// Temp files a killed process left are ours to remove, and only those.
func TestRemoveStaleTemps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	for _, n := range []string{".haproxy.cfg.tmp-123", ".haproxy.cfg.tmp-abc", "other.tmp-1", ".haproxy.cfg.bak"} {
		_ = os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644)
	}
	removed, err := (&File{Path: path}).RemoveStaleTemps()
	if err != nil || len(removed) != 2 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 2 {
		t.Fatalf("left %v", left)
	}
}

// A second writer of the same file is refused, naming the first.
func TestLockRefusesASecondWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	release, err := (&File{Path: path}).Lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&File{Path: path}).Lock(); err == nil || !strings.Contains(err.Error(), "another monitor (pid "+strconv.Itoa(os.Getpid())+")") {
		t.Fatalf("second lock: %v", err)
	}
	release()
	again, err := (&File{Path: path}).Lock()
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
}

// A new file gets DefaultMode (0644 without one) and the writer's owner.
func TestNewFileModeAndOwner(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		defaultMode, want os.FileMode
	}{{0, 0o644}, {0o600, 0o600}} {
		path := filepath.Join(dir, "cfg-"+strconv.Itoa(int(c.want)))
		if _, err := (&File{Path: path, DefaultMode: c.defaultMode}).Apply(context.Background(), []byte("x\n")); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if st.Mode().Perm() != c.want || int(sys.Uid) != os.Getuid() || int(sys.Gid) != os.Getgid() {
			t.Errorf("DefaultMode %v: mode %v owner %d:%d, want %v %d:%d", c.defaultMode, st.Mode().Perm(), sys.Uid, sys.Gid, c.want, os.Getuid(), os.Getgid())
		}
	}
}

// Root's own file keeps its group too (uid 0 is an owner like any other).
func TestRootOwnedFileKeepsItsGroup(t *testing.T) {
	need.Root(t)
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte("old\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 0, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := (&File{Path: path}).Apply(context.Background(), []byte("new\n")); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 0 || sys.Gid != 65534 {
		t.Fatalf("owner %d:%d, want 0:65534", sys.Uid, sys.Gid)
	}
}

// haproxy's complaint is kept up to 2000 bytes, cut with "..." beyond.
func TestHAProxyCheckCutsLongOutput(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{2000, 2001} {
		bin := filepath.Join(dir, "haproxy-"+strconv.Itoa(n))
		script := "#!/bin/sh\nhead -c " + strconv.Itoa(n) + " /dev/zero | tr '\\0' a\nexit 1\n"
		if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		err := HAProxyCheck(bin, 10*time.Second)(context.Background(), filepath.Join(dir, "any.cfg"))
		if err == nil {
			t.Fatalf("%d bytes: no error", n)
		}
		msg := err.Error()
		as := strings.Count(msg, "a")
		cut := strings.HasSuffix(msg, "...")
		if as < 2000 || as > 2000+strings.Count(bin+": exit status 1", "a") || cut != (n > 2000) {
			t.Errorf("%d bytes of output: %d a's, cut %v", n, as, cut)
		}
	}
}
