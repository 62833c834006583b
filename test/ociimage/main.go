// Command ociimage writes an OCI image layout as a tar that "ctr images
// import" loads, without a registry: the lab's kubelets run the shipped
// static pods from images built this way. The tar is also a docker archive
// (manifest.json), which "docker load" takes.
//
//	ociimage -name localhost/haproxy-monitor:latest -out image.tar \
//	    -layer rootfs.tar -file /usr/local/bin/monitor=bin/monitor [-entrypoint /pause]
//	    [-cmd ARG]... [-env K=V]... [-stop-signal SIGNAL]
//
// Each -layer is an uncompressed tar used as it is; the -file options make
// one more layer. Layers stay uncompressed: containerd takes them so, and a
// 200 MB root filesystem is not worth gzipping for a local import.
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    map[string]string `json:"platform,omitempty"`
}

func main() {
	var layers, files list
	var names, cmd, env list
	flag.Var(&names, "name", "image name, e.g. localhost/haproxy-monitor:latest (repeatable: one image, several names)")
	out := flag.String("out", "", "the tar to write")
	entrypoint := flag.String("entrypoint", "", "the image's entrypoint, if any")
	flag.Var(&layers, "layer", "an uncompressed layer tar (repeatable)")
	flag.Var(&files, "file", "PATH=SOURCE, a file for the extra layer (repeatable)")
	flag.Var(&cmd, "cmd", "an argument of the image's command, after the entrypoint (repeatable)")
	flag.Var(&env, "env", "K=V, an environment variable of the image beside PATH (repeatable)")
	stopSignal := flag.String("stop-signal", "", "the signal that stops the image's process (e.g. SIGRTMIN+3 for systemd)")
	flag.Parse()
	cfg := imageConfig{Entrypoint: *entrypoint, Cmd: cmd, Env: env, StopSignal: *stopSignal}
	if err := run(names, *out, cfg, layers, files); err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

// imageConfig is what the image runs: its process and environment.
type imageConfig struct {
	Entrypoint string
	Cmd, Env   []string
	StopSignal string
}

// config is the "config" object of the image's configuration.
func (c imageConfig) config() map[string]any {
	m := map[string]any{"Env": append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, c.Env...)}
	if c.Entrypoint != "" {
		m["Entrypoint"] = []string{c.Entrypoint}
	}
	if len(c.Cmd) > 0 {
		m["Cmd"] = c.Cmd
	}
	if c.StopSignal != "" {
		m["StopSignal"] = c.StopSignal
	}
	return m
}

func run(names []string, out string, ic imageConfig, layers, files []string) error {
	if len(names) == 0 || out == "" || len(layers)+len(files) == 0 {
		return fmt.Errorf("-name, -out and at least one -layer or -file are required")
	}
	dir, err := os.MkdirTemp(filepath.Dir(out), ".ociimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if len(files) > 0 {
		extra := filepath.Join(dir, "files.tar")
		if err := writeFilesLayer(extra, files); err != nil {
			return err
		}
		layers = append(layers, extra)
	}
	var layerDescs []descriptor
	var diffIDs []string
	for _, l := range layers {
		d, err := digestFile(l)
		if err != nil {
			return err
		}
		layerDescs = append(layerDescs, descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: d.digest, Size: d.size})
		diffIDs = append(diffIDs, d.digest)
	}
	cfg := map[string]any{
		"created": time.Now().UTC().Format(time.RFC3339), "architecture": "amd64", "os": "linux",
		"config": ic.config(),
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
	cfgJSON, _ := json.Marshal(cfg)
	cfgDesc := blobDesc("application/vnd.oci.image.config.v1+json", cfgJSON)
	manifest, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": cfgDesc, "layers": layerDescs})
	manDesc := blobDesc("application/vnd.oci.image.manifest.v1+json", manifest)
	manDesc.Platform = map[string]string{"architecture": "amd64", "os": "linux"}
	// One entry per name, all the same manifest: "ctr images import" makes
	// an image of each.
	var entries []descriptor
	for _, name := range names {
		d := manDesc
		tag := name[strings.LastIndex(name, ":")+1:]
		d.Annotations = map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}
		entries = append(entries, d)
	}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": entries})
	// The same tar is also a docker archive, for "docker load" (which reads
	// manifest.json, not the OCI index): the config and layers where the
	// OCI layout has them.
	var layerPaths []string
	for _, d := range layerDescs {
		layerPaths = append(layerPaths, blobPath(d.Digest))
	}
	dockerManifest, _ := json.Marshal([]map[string]any{{"Config": blobPath(cfgDesc.Digest), "RepoTags": names, "Layers": layerPaths}})

	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	add := func(path string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	for _, e := range []struct {
		path string
		b    []byte
	}{{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {"index.json", index}, {"manifest.json", dockerManifest},
		{blobPath(cfgDesc.Digest), cfgJSON}, {blobPath(manDesc.Digest), manifest}} {
		if err := add(e.path, e.b); err != nil {
			return err
		}
	}
	for i, l := range layers {
		if err := copyBlob(tw, blobPath(layerDescs[i].Digest), l, layerDescs[i].Size); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func blobPath(digest string) string { return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:") }

func blobDesc(mediaType string, b []byte) descriptor {
	sum := sha256.Sum256(b)
	return descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(b))}
}

type fileDigest struct {
	digest string
	size   int64
}

func digestFile(path string) (fileDigest, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileDigest{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return fileDigest{digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), size: n}, err
}

func copyBlob(tw *tar.Writer, name, src string, size int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// writeFilesLayer makes a layer of PATH=SOURCE files, executable, with their
// parent directories.
func writeFilesLayer(out string, files []string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	written := map[string]bool{}
	for _, spec := range files {
		dst, src, ok := strings.Cut(spec, "=")
		if !ok || !strings.HasPrefix(dst, "/") {
			return fmt.Errorf("-file %q: want /PATH=SOURCE", spec)
		}
		rel := strings.TrimPrefix(dst, "/")
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		var parents []string
		for d := filepath.Dir(rel); d != "."; d = filepath.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if !written[d] {
				written[d] = true
				if err := tw.WriteHeader(&tar.Header{Name: d + "/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
					return err
				}
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o755, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	return tw.Close()
}
