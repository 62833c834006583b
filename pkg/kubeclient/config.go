package kubeclient

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Load reads the kubeconfig at path, in any form client-go supports (client
// certificate files or inline data, token or token file, exec credential
// plugins), and returns a client config whose connections go through a
// failover dialer that also tries localhost:apiPort. client-go does TLS and
// authentication; the dialer only picks where to connect. Any server form
// works: names with any number of labels, IPv4 and IPv6 literals, localhost.
func Load(path string, apiPort uint16, dialTimeout time.Duration, log logrus.FieldLogger) (*rest.Config, *Endpoints, error) {
	if log == nil {
		log = logrus.StandardLogger()
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, nil, fmt.Errorf("loading kubeconfig %s: %w", path, err)
	}
	u, server, err := serverHostPort(cfg.Host)
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	local := net.JoinHostPort("localhost", strconv.Itoa(int(apiPort)))
	eps := NewEndpoints([]string{server, local}, dialTimeout, log)
	if u.Scheme == "https" {
		if eps.Probe, err = probeConfig(cfg, u); err != nil {
			return nil, nil, fmt.Errorf("kubeconfig %s: TLS settings: %w", path, err)
		}
	}
	cfg.Dial = eps.DialContext
	// Proxies would hide which apiserver we reach; the monitor talks to
	// apiservers on the node's own network only.
	cfg.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	if cfg.BearerTokenFile != "" {
		// client-go caches a token file for a minute and does not re-read it
		// on a 401: read it whenever it changed instead.
		tf := &tokenFile{path: cfg.BearerTokenFile}
		if _, err := tf.token(); err != nil {
			return nil, nil, fmt.Errorf("kubeconfig %s: %w", path, err)
		}
		cfg.BearerToken, cfg.BearerTokenFile = "", ""
		cfg.Wrap(tf.wrap)
	}
	cfg.UserAgent = "haproxy-monitor"
	cfg.WarningHandler = &warningLog{log: log, seen: map[string]bool{}}
	// Two small informers; the defaults (5 QPS) would throttle a relist storm
	// after an outage for no benefit.
	cfg.QPS, cfg.Burst = 20, 40
	return cfg, eps, nil
}

// probeConfig is what verifies an apiserver: client-go's own TLS settings
// for the kubeconfig (CA or the system's, client certificate, exec-provided
// certificates, insecure-skip-tls-verify) with the server name the
// certificate must carry, whichever address is dialled.
func probeConfig(cfg *rest.Config, u *url.URL) (*tls.Config, error) {
	p, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, err
	}
	if p == nil {
		p = &tls.Config{MinVersion: tls.VersionTLS12} // the system's roots
	}
	if p.ServerName == "" {
		p.ServerName = u.Hostname()
	}
	return p, nil
}

// tokenFile serves a bearer token from a file, read again whenever the file
// changed (size or modification time), so a rotated token is used from the
// next request.
type tokenFile struct {
	path string
	mu   sync.Mutex
	mod  time.Time
	size int64
	tok  string
}

func (t *tokenFile) token() (string, error) {
	st, err := os.Stat(t.path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != "" && st.ModTime().Equal(t.mod) && st.Size() == t.size {
		return t.tok, nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	t.tok, t.mod, t.size = string(bytes.TrimSpace(b)), st.ModTime(), st.Size()
	return t.tok, nil
}

func (t *tokenFile) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		tok, err := t.token()
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+tok)
		return rt.RoundTrip(req)
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func serverHostPort(server string) (*url.URL, string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, "", fmt.Errorf("server %q: %w", server, err)
	}
	if u.Hostname() == "" {
		return nil, "", fmt.Errorf("server %q has no host", server)
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if strings.EqualFold(u.Scheme, "http") {
			port = "80"
		}
	}
	return u, net.JoinHostPort(u.Hostname(), port), nil
}
