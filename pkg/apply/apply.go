package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Validator checks a candidate configuration file before it replaces the live
// one; nil accepts everything.
type Validator func(ctx context.Context, path string) error

// Stages of an apply, as StageError reports them.
const (
	StageWrite    = "write"    // reading the old file, writing the candidate, replacing
	StageValidate = "validate" // the Validator refused the candidate
	StageSync     = "sync"     // replaced, but the directory entry could not be synced
)

// StageError is an apply failure and the stage it happened in. At StageSync
// the new file is in place (Apply reports changed): only its durability
// across a power loss is in doubt, so haproxy must still be told.
type StageError struct {
	Stage string
	Err   error
}

func (e *StageError) Error() string { return e.Err.Error() }
func (e *StageError) Unwrap() error { return e.Err }

// Stage returns the stage of an apply error, "" for other errors.
func Stage(err error) string {
	var se *StageError
	if errors.As(err, &se) {
		return se.Stage
	}
	return ""
}

func stageErr(stage string, format string, a ...any) error {
	return &StageError{Stage: stage, Err: fmt.Errorf(format, a...)}
}

// File is the configuration file the monitor owns.
type File struct {
	Path     string
	Validate Validator
	// DefaultMode is used when the file does not exist yet.
	DefaultMode fs.FileMode

	// SyncDir makes the rename durable; nil fsyncs the directory. Tests
	// inject failures here.
	SyncDir func(dir string) error

	// beforeRename lets tests crash between the write and the rename.
	beforeRename func()
}

// Read returns the current contents; a missing file reads as empty.
func (f *File) Read() ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Path, err)
	}
	return b, nil
}

// Apply makes the file hold data. It reports false without writing when the
// file already holds exactly data. On error the old file is untouched.
func (f *File) Apply(ctx context.Context, data []byte) (changed bool, err error) {
	old, err := f.Read()
	if err != nil {
		return false, &StageError{Stage: StageWrite, Err: err}
	}
	if old != nil && bytes.Equal(old, data) {
		return false, nil
	}
	st, err := f.Stage(data)
	if err != nil {
		return false, err
	}
	defer st.Discard()
	if err := st.Validate(ctx); err != nil {
		return false, err
	}
	return st.Commit()
}

// Staged is a candidate written next to the file, not yet in its place.
type Staged struct {
	f      *File
	tmp    string
	target string
	done   bool
}

// Target is the file that is replaced: Path, or, when Path is a symlink,
// the file it points to (so the link stays a link and its target is updated,
// in the target's own directory). A dangling link's target is created.
func (f *File) Target() (string, error) {
	p, err := filepath.EvalSymlinks(f.Path)
	switch {
	case err == nil:
		return p, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	dst, lerr := os.Readlink(f.Path)
	if lerr != nil {
		return f.Path, nil // no file yet
	}
	if !filepath.IsAbs(dst) {
		dst = filepath.Join(filepath.Dir(f.Path), dst)
	}
	return dst, nil
}

// Stage writes data to a temporary file beside the target, with the target's
// mode, owner and group, synced: what can fail on a full or read-only disk,
// or for want of the right to keep the owner, fails here, before anything
// depends on it.
func (f *File) Stage(data []byte) (*Staged, error) {
	target, err := f.Target()
	if err != nil {
		return nil, stageErr(StageWrite, "resolving %s: %w", f.Path, err)
	}
	mode := f.DefaultMode
	if mode == 0 {
		mode = 0o644
	}
	var owner *syscall.Stat_t
	if st, err := os.Stat(target); err == nil {
		mode = st.Mode().Perm()
		owner, _ = st.Sys().(*syscall.Stat_t)
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), tempPrefix(target)+"*")
	if err != nil {
		return nil, stageErr(StageWrite, "writing %s: %w", target, err)
	}
	s := &Staged{f: f, tmp: tmp.Name(), target: target}
	if owner != nil {
		if err := tmp.Chown(int(owner.Uid), int(owner.Gid)); err != nil {
			tmp.Close()
			s.Discard()
			return nil, stageErr(StageWrite, "keeping the owner %d:%d of %s: %w", owner.Uid, owner.Gid, target, err)
		}
	}
	if err := writeSynced(tmp, data, mode); err != nil {
		s.Discard()
		return nil, stageErr(StageWrite, "writing %s: %w", s.tmp, err)
	}
	return s, nil
}

func tempPrefix(target string) string { return "." + filepath.Base(target) + ".tmp-" }

// RemoveStaleTemps removes candidates a killed process left beside the
// target: only files named as Stage names them.
func (f *File) RemoveStaleTemps() ([]string, error) {
	target, err := f.Target()
	if err != nil {
		return nil, err
	}
	stale, err := filepath.Glob(filepath.Join(filepath.Dir(target), tempPrefix(target)+"*"))
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, p := range stale {
		if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() && os.Remove(p) == nil {
			removed = append(removed, p)
		}
	}
	return removed, nil
}

// ErrLockUnavailable: the lock file cannot be opened at all (a read-only
// directory, say); the caller may go on without the guard.
var ErrLockUnavailable = errors.New("lock file unavailable")

// Lock takes an exclusive lock on a file beside the target (".<name>.lock"),
// held until release: a second monitor writing the same file would double
// every reload. The holder's pid is in the file, for the error message.
// When the lock file cannot be opened the error wraps ErrLockUnavailable.
func (f *File) Lock() (release func(), err error) {
	target, err := f.Target()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".lock")
	lf, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrLockUnavailable, path, err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		lf.Close()
		return nil, fmt.Errorf("another monitor (pid %s) writes %s: %s is locked", strings.TrimSpace(string(holder)), target, path)
	}
	_ = lf.Truncate(0)
	_, _ = lf.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { lf.Close() }, nil
}

// Validate runs the file's Validator on the candidate.
func (s *Staged) Validate(ctx context.Context) error {
	if s.f.Validate == nil {
		return nil
	}
	if err := s.f.Validate(ctx, s.tmp); err != nil {
		return stageErr(StageValidate, "validating new %s: %w", s.f.Path, err)
	}
	return nil
}

// Commit renames the candidate into place and syncs the directory. It
// reports whether the file was replaced: a sync failure after the rename
// still replaced it.
func (s *Staged) Commit() (replaced bool, err error) {
	if s.f.beforeRename != nil {
		s.f.beforeRename()
	}
	if err := os.Rename(s.tmp, s.target); err != nil {
		return false, stageErr(StageWrite, "replacing %s: %w", s.target, err)
	}
	s.done = true
	// The rename is durable only once the directory entry is on disk.
	sync := s.f.SyncDir
	if sync == nil {
		sync = syncDir
	}
	dir := filepath.Dir(s.target)
	if err := sync(dir); err != nil {
		return true, stageErr(StageSync, "%s replaced, but syncing %s failed: %w", s.target, dir, err)
	}
	return true, nil
}

// Discard removes a candidate that was not committed; after Commit it does
// nothing.
func (s *Staged) Discard() {
	if !s.done {
		s.done = true
		_ = os.Remove(s.tmp)
	}
}

func writeSynced(f *os.File, data []byte, mode fs.FileMode) error {
	err := firstError(
		func() error { _, err := f.Write(data); return err },
		func() error { return f.Chmod(mode) },
		f.Sync,
	)
	return errors.Join(err, f.Close())
}

// firstError runs steps in order until one fails.
func firstError(steps ...func() error) error {
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
