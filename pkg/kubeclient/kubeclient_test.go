package kubeclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeKubeconfig writes a one-context kubeconfig with the given cluster and
// user stanzas (flow-style YAML maps) into dir.
func writeKubeconfig(t *testing.T, dir, cluster, user string) string {
	t.Helper()
	path := filepath.Join(dir, "kubeconfig")
	text := "apiVersion: v1\nkind: Config\n" +
		"clusters:\n- name: c\n  cluster: " + cluster + "\n" +
		"contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n" +
		"users:\n- name: u\n  user: " + user + "\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The original split the server host on dots and panicked on fewer than three
// labels; every server form must load here.
func TestDifferenceAnyKubeconfigServerForm(t *testing.T) {
	cases := map[string][]string{
		"https://localhost:6443":          {"localhost:6443"},
		"https://127.0.0.1:6443":          {"127.0.0.1:6443", "localhost:6443"},
		"https://[fd00::1]:6443":          {"[fd00::1]:6443", "localhost:6443"},
		"https://api":                     {"api:443", "localhost:6443"},
		"https://api-int.c1.example.com":  {"api-int.c1.example.com:443", "localhost:6443"},
		"https://api-int.example.com:443": {"api-int.example.com:443", "localhost:6443"},
	}
	for server, want := range cases {
		t.Run(server, func(t *testing.T) {
			cfg, eps, err := Load(writeKubeconfig(t, t.TempDir(), `{server: "`+server+`", insecure-skip-tls-verify: true}`, "{token: abc}"), 6443, time.Second, nil)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Dial == nil || cfg.Transport != nil {
				t.Fatal("the failover dialer is not what client-go dials with")
			}
			if got := eps.Candidates(); !reflect.DeepEqual(got, want) {
				t.Fatalf("candidates %v, want %v", got, want)
			}
		})
	}
}

func TestLoadBadKubeconfig(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	_ = os.WriteFile(garbage, []byte("{{{ not yaml"), 0o600)
	for _, path := range []string{filepath.Join(dir, "missing"), garbage} {
		_, _, err := Load(path, 6443, time.Second, nil)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Load(%s) error = %v, want one naming the file", path, err)
		}
	}
}

// Dialing skips dead endpoints, sticks to the one that worked, and fails over
// again when it dies.
func TestEndpointsFailover(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()

	a, _ := net.Listen("tcp", "127.0.0.1:0")
	defer a.Close()
	b, _ := net.Listen("tcp", "127.0.0.1:0")
	defer b.Close()

	eps := NewEndpoints([]string{deadAddr}, 500*time.Millisecond, nil)
	eps.SetDynamic([]string{a.Addr().String(), b.Addr().String()})
	ctx := context.Background()

	c, err := eps.DialContext(ctx, "tcp", "ignored:1")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := eps.Preferred(); got != a.Addr().String() {
		t.Fatalf("preferred %s, want %s", got, a.Addr())
	}
	if first := eps.Candidates()[0]; first != a.Addr().String() {
		t.Fatalf("next dial starts at %s, want the working endpoint", first)
	}
	a.Close()
	c, err = eps.DialContext(ctx, "tcp", "ignored:1")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := eps.Preferred(); got != b.Addr().String() {
		t.Fatalf("after the first died preferred %s, want %s", got, b.Addr())
	}
	b.Close()
	if _, err := eps.DialContext(ctx, "tcp", "ignored:1"); err == nil || !strings.Contains(err.Error(), "no apiserver endpoint reachable") {
		t.Fatalf("all dead: err = %v", err)
	}
}

func serveTLS(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); time.Sleep(100 * time.Millisecond); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// What accepts TCP is not necessarily an apiserver: haproxy on the VIP with
// no backends accepts and closes, another service presents another CA's
// certificate. Only a verified handshake makes an endpoint good.
func TestEndpointsRequireVerifiedTLS(t *testing.T) {
	goodCA, otherCA := newTestCA(t), newTestCA(t)
	good, other := goodCA.serving(t), otherCA.serving(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(goodCA.pem)

	closer, _ := net.Listen("tcp", "127.0.0.1:0") // accepts, then hangs up
	defer closer.Close()
	go func() {
		for {
			c, err := closer.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	wrongCA := serveTLS(t, other)
	right := serveTLS(t, good)

	eps := NewEndpoints([]string{closer.Addr().String(), wrongCA}, time.Second, nil)
	eps.SetDynamic([]string{right})
	eps.Probe = &tls.Config{RootCAs: pool, ServerName: "api.example", MinVersion: tls.VersionTLS12}
	c, err := eps.DialContext(context.Background(), "tcp", "api.example:6443")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := eps.Preferred(); got != right {
		t.Fatalf("selected %s, want the endpoint with a verified certificate %s", got, right)
	}
}
