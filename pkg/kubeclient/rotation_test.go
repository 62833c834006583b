package kubeclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM cert and key for cn, for a server (with ip) or a client.
func (ca *testCA) issue(t *testing.T, cn string, ip net.IP) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if ip != nil {
		tmpl.IPAddresses, tmpl.DNSNames = []net.IP{ip}, []string{"api.example"}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// serving is a server certificate for 127.0.0.1 and api.example.
func (ca *testCA) serving(t *testing.T) tls.Certificate {
	t.Helper()
	c, k := ca.issue(t, "server", net.ParseIP("127.0.0.1"))
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// The kubelet rotates its client certificate by rewriting the files its
// kubeconfig names; a monitor that read them once would present an expired
// certificate a year later. client-go checks the files every
// CertCallbackRefreshDuration (5 minutes; shortened here) and then uses the
// new certificate.
func TestClientCertificateRotation(t *testing.T) {
	old := transport.CertCallbackRefreshDuration
	transport.CertCallbackRefreshDuration = 100 * time.Millisecond
	defer func() { transport.CertCallbackRefreshDuration = old }()
	ca := newTestCA(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.crt", ca.pem)
	certA, keyA := ca.issue(t, "client-a", nil)
	certFile, keyFile := write("client.crt", certA), write("client.key", keyA)

	var mu sync.Mutex
	var seen []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.TLS.PeerCertificates[0].Subject.CommonName)
		mu.Unlock()
	}))
	pair := ca.serving(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	kc := writeKubeconfig(t, dir, `{server: "`+srv.URL+`", certificate-authority: "`+caFile+`"}`,
		`{client-certificate: "`+certFile+`", client-key: "`+keyFile+`"}`)
	cfg, _, err := Load(kc, 6443, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	get := func() {
		t.Helper()
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		client.CloseIdleConnections() // the next request makes a new connection
	}
	get()
	certB, keyB := ca.issue(t, "client-b", nil)
	write("client.crt", certB)
	write("client.key", keyB)
	// client-go reads the files again on its next check.
	last := func() string {
		mu.Lock()
		defer mu.Unlock()
		return seen[len(seen)-1]
	}
	if !poll.Until(5*time.Second, 100*time.Millisecond, func() bool { get(); return last() == "client-b" }) {
		t.Fatal("the rotated client certificate was never presented")
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[0] != "client-a" {
		t.Fatalf("server saw client certificates %v, want client-a first", seen)
	}
}
