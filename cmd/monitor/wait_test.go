package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// While the kubelet's TLS bootstrap has not written the kubeconfig, the
// monitor is alive (the liveness probe passes, so the kubelet does not
// restart it) and not ready; when the files exist it goes on, and the
// stand-in listener is gone for the monitor's own.
func TestWaitForKubeconfigAnswersTheLivenessProbe(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "kubelet.conf")
	addr := freeAddr(t)
	done := make(chan error, 1)
	go func() { done <- waitForKubeconfig(context.Background(), conf, addr, time.Minute, logrus.New()) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := get(addr, "/healthz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/healthz never answered 200 while waiting")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := get(addr, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, conf) {
		t.Fatalf("/readyz while waiting: %d %q", code, body)
	}
	text := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:6443\"}}]\n" +
		"users: [{name: u, user: {token: x}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting after the kubeconfig was written")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the stand-in still holds %s: %v", addr, err)
	}
	ln.Close()
	// A kubeconfig that does not parse is no reason to wait.
	if err := os.WriteFile(conf, []byte("clusters: [nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := waitForKubeconfig(context.Background(), conf, addr, time.Minute, logrus.New()); err == nil {
		t.Fatal("a broken kubeconfig: no error")
	}
}
