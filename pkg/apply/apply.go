package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	f    *File
	tmp  string
	done bool
}

// Stage writes data to a temporary file beside the file, with the file's
// mode, synced: what can fail on a full or read-only disk fails here, before
// anything depends on it.
func (f *File) Stage(data []byte) (*Staged, error) {
	mode := f.DefaultMode
	if mode == 0 {
		mode = 0o644
	}
	if st, err := os.Stat(f.Path); err == nil {
		mode = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), "."+filepath.Base(f.Path)+".tmp-*")
	if err != nil {
		return nil, stageErr(StageWrite, "writing %s: %w", f.Path, err)
	}
	s := &Staged{f: f, tmp: tmp.Name()}
	if err := writeSynced(tmp, data, mode); err != nil {
		s.Discard()
		return nil, stageErr(StageWrite, "writing %s: %w", s.tmp, err)
	}
	return s, nil
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
	if err := os.Rename(s.tmp, s.f.Path); err != nil {
		return false, stageErr(StageWrite, "replacing %s: %w", s.f.Path, err)
	}
	s.done = true
	// The rename is durable only once the directory entry is on disk.
	sync := s.f.SyncDir
	if sync == nil {
		sync = syncDir
	}
	dir := filepath.Dir(s.f.Path)
	if err := sync(dir); err != nil {
		return true, stageErr(StageSync, "%s replaced, but syncing %s failed: %w", s.f.Path, dir, err)
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
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(mode)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
