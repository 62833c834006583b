package kubeclient

import (
	"context"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// A kubeconfig as the kubelet writes it after TLS bootstrap: the client
// certificate and key named by path, not inline.
func writeBootstrapKubeconfig(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "kubelet.conf")
	text := `apiVersion: v1
kind: Config
clusters:
- cluster: {certificate-authority: ca.crt, server: "https://198.18.0.100:6443"}
  name: default-cluster
contexts:
- context: {cluster: default-cluster, namespace: default, user: default-auth}
  name: default-context
current-context: default-context
users:
- name: default-auth
  user:
    client-certificate: ` + filepath.Join(dir, "pki", "kubelet-client-current.pem") + `
    client-key: ` + filepath.Join(dir, "pki", "kubelet-client-current.pem") + `
`
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMissingCredentials(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "kubelet.conf")
	if m, err := MissingCredentials(conf); err != nil || len(m) != 1 || m[0] != conf {
		t.Fatalf("no kubeconfig yet: %v %v, want [%s]", m, err, conf)
	}
	writeBootstrapKubeconfig(t, dir)
	pem := filepath.Join(dir, "pki", "kubelet-client-current.pem")
	// The relative CA resolves against the kubeconfig's directory.
	m, err := MissingCredentials(conf)
	if err != nil || strings.Join(m, " ") != filepath.Join(dir, "ca.crt")+" "+pem+" "+pem {
		t.Fatalf("credentials not written yet: %v %v", m, err)
	}
	for _, f := range []string{filepath.Join(dir, "ca.crt"), pem} {
		_ = os.MkdirAll(filepath.Dir(f), 0o700)
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := MissingCredentials(conf); err != nil || len(m) != 0 {
		t.Fatalf("everything written: %v %v", m, err)
	}
	// What no wait mends fails at once.
	if err := os.WriteFile(conf, []byte("clusters: [this is not"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := MissingCredentials(conf); err == nil {
		t.Fatal("a kubeconfig that does not parse: no error")
	}
	if err := os.WriteFile(conf, []byte("apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := MissingCredentials(conf); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("a missing current context: %v", err)
	}
}

// The wait ends when the kubelet has written the certificate, logging once
// what it waited for; without it, it ends at the timeout with an error
// naming what is missing.
func TestWaitForCredentials(t *testing.T) {
	dir := t.TempDir()
	conf := writeBootstrapKubeconfig(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, hook := logtest.NewNullLogger()
	err := WaitForCredentials(context.Background(), conf, 0, time.Millisecond, log)
	if err == nil || !strings.Contains(err.Error(), "kubelet-client-current.pem") {
		t.Fatalf("no wait, certificate missing: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- WaitForCredentials(context.Background(), conf, time.Minute, 5*time.Millisecond, log) }()
	// The wait has begun (it logged) before the kubelet writes the file.
	poll.Must(t, 10*time.Second, "the wait to log", func() bool { return hasMessage(hook, "waiting for the kubeconfig") })
	select {
	case err := <-done:
		t.Fatalf("returned before the certificate existed: %v", err)
	default:
	}
	_ = os.MkdirAll(filepath.Join(dir, "pki"), 0o700)
	if err := os.WriteFile(filepath.Join(dir, "pki", "kubelet-client-current.pem"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting after the certificate was written")
	}
	n := 0
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, "waiting for the kubeconfig") {
			n++
		}
	}
	if n != 1 || !hasMessage(hook, "starting") {
		t.Fatalf("logged the wait %d times (want once), then start: %v", n, hook.AllEntries())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WaitForCredentials(ctx, filepath.Join(dir, "nothing"), time.Minute, time.Millisecond, logrus.New()); err != context.Canceled {
		t.Fatalf("cancelled: %v", err)
	}
}

func hasMessage(hook *logtest.Hook, s string) bool {
	for _, e := range hook.AllEntries() {
		if strings.Contains(e.Message, s) {
			return true
		}
	}
	return false
}
