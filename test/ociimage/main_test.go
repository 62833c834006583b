package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// readTar returns the regular files of a tar by name.
func readTar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = b
	}
}

func TestImageCarriesItsConfigAndFiles(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "entrypoint")
	if err := os.WriteFile(src, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image.tar")
	ic := imageConfig{Entrypoint: "/usr/local/bin/entrypoint", Cmd: []string{"/sbin/init"}, Env: []string{"container=docker"},
		StopSignal: "SIGRTMIN+3"}
	if err := run([]string{"localhost/node:v1"}, out, ic, nil, []string{"/usr/local/bin/entrypoint=" + src}); err != nil {
		t.Fatal(err)
	}
	files := readTar(t, out)
	var dm []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &dm); err != nil || len(dm) != 1 {
		t.Fatalf("manifest.json %s: %v", files["manifest.json"], err)
	}
	if !slices.Equal(dm[0].RepoTags, []string{"localhost/node:v1"}) || len(dm[0].Layers) != 1 {
		t.Errorf("docker manifest %+v", dm[0])
	}
	var cfg struct {
		Config struct {
			Entrypoint, Cmd, Env []string
			StopSignal           string
		} `json:"config"`
	}
	if err := json.Unmarshal(files[dm[0].Config], &cfg); err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if !slices.Equal(c.Entrypoint, []string{ic.Entrypoint}) || !slices.Equal(c.Cmd, ic.Cmd) ||
		!slices.Contains(c.Env, "container=docker") || c.StopSignal != ic.StopSignal {
		t.Errorf("image config %+v, want %+v", c, ic)
	}
	layer := filepath.Join(dir, "layer.tar")
	if err := os.WriteFile(layer, files[dm[0].Layers[0]], 0o644); err != nil {
		t.Fatal(err)
	}
	if got := string(readTar(t, layer)["usr/local/bin/entrypoint"]); got != "#!/bin/sh\n" {
		t.Errorf("the file in the layer holds %q", got)
	}
}

func TestImageRefusesAFileWithoutAnAbsolutePath(t *testing.T) {
	dir := t.TempDir()
	err := run([]string{"localhost/x:1"}, filepath.Join(dir, "x.tar"), imageConfig{}, nil, []string{"relative=/etc/hostname"})
	if err == nil {
		t.Fatal("a relative path accepted")
	}
	if _, serr := os.Stat(filepath.Join(dir, "x.tar")); serr == nil {
		t.Error("a tar was written for refused input")
	}
}
