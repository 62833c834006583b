package kubeclient

import (
	"context"
	"crypto/tls"
	"errors"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// tokenServer is an apiserver stand-in that records the bearer tokens it is
// sent, behind a certificate of a new CA for api.example and 127.0.0.1. It
// returns the kubeconfig cluster entry that reaches it (the CA written to
// dir).
func tokenServer(t *testing.T, dir string) (srv *httptest.Server, cluster string, seen func() []string) {
	t.Helper()
	ca := newTestCA(t)
	caFile := filepath.Join(dir, "ca.crt")
	writeFile(t, caFile, ca.pem, 0o600)
	var mu sync.Mutex
	var tokens []string
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tokens = append(tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		mu.Unlock()
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.serving(t)}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, `{server: "` + srv.URL + `", certificate-authority: "` + caFile + `"}`, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), tokens...)
	}
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, cfg *rest.Config, url string) {
	t.Helper()
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.CloseIdleConnections()
}

// An exec credential plugin (the form cloud and OIDC set-ups use) works with
// the failover dialer: the plugin runs and its token is sent. Before, the
// monitor refused such a kubeconfig at start.
func TestExecCredentialPlugin(t *testing.T) {
	dir := t.TempDir()
	srv, cluster, seen := tokenServer(t, dir)
	plugin := filepath.Join(dir, "credential-plugin")
	writeFile(t, plugin, []byte("#!/bin/sh\necho '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"from-the-plugin\"}}'\n"), 0o755)
	kc := writeKubeconfig(t, dir, cluster,
		`{exec: {apiVersion: client.authentication.k8s.io/v1, command: "`+plugin+`", interactiveMode: Never}}`)
	cfg, eps, err := Load(kc, 6443, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	get(t, cfg, srv.URL)
	if got := seen(); len(got) != 1 || got[0] != "from-the-plugin" {
		t.Fatalf("server saw tokens %v", got)
	}
	if eps.Preferred() == "" {
		t.Fatal("the request did not go through the failover dialer")
	}
}

// A token file is read again as soon as it changes, not a minute later.
func TestTokenFileRotation(t *testing.T) {
	dir := t.TempDir()
	srv, cluster, seen := tokenServer(t, dir)
	tok := filepath.Join(dir, "token")
	writeFile(t, tok, []byte("first\n"), 0o600)
	kc := writeKubeconfig(t, dir, cluster, `{tokenFile: "`+tok+`"}`)
	cfg, _, err := Load(kc, 6443, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	get(t, cfg, srv.URL)
	writeFile(t, tok, []byte("second-and-longer\n"), 0o600)
	get(t, cfg, srv.URL)
	if got := seen(); len(got) != 2 || got[0] != "first" || got[1] != "second-and-longer" {
		t.Fatalf("server saw tokens %v", got)
	}
}

// A dial begun during an outage that fails after a later one succeeded does
// not mark the API down again (seen once as a stale "API unreachable").
func TestLateFailureDoesNotMarkDown(t *testing.T) {
	ok, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ok.Close()
	eps := NewEndpoints([]string{"slow.invalid:1"}, 5*time.Second, nil)
	release := make(chan struct{})
	eps.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "slow.invalid:1" {
			<-release
			return nil, errors.New("slow failure")
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	late := make(chan error, 1)
	go func() { _, err := eps.DialContext(context.Background(), "tcp", "x:1"); late <- err }()
	// Wait until the slow attempt is in progress, then let a newer one
	// succeed directly on the good address.
	poll.Must(t, 5*time.Second, "the slow dial to start", func() bool {
		eps.mu.Lock()
		defer eps.mu.Unlock()
		return eps.attempts == 1
	})

	eps.SetDynamic([]string{ok.Addr().String()})
	eps.mu.Lock()
	eps.preferred = ok.Addr().String()
	eps.mu.Unlock()
	c, err := eps.DialContext(context.Background(), "tcp", "x:1")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	close(release)
	if err := <-late; err == nil {
		t.Fatal("the slow dial succeeded")
	}
	if eps.Down() || eps.Reason() != "" {
		t.Fatalf("a late failure marked the API down: %q", eps.Reason())
	}
}
