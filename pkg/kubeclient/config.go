package kubeclient

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Load reads the kubeconfig at path and returns a client config whose
// connections go through a failover dialer that also tries localhost:apiPort.
// Any server form works: names with any number of labels, IPv4 and IPv6
// literals, localhost.
func Load(path string, apiPort uint16, dialTimeout time.Duration, log logrus.FieldLogger) (*rest.Config, *Endpoints, error) {
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

	transport := &http.Transport{
		// Proxies would hide which apiserver we reach; the monitor talks to
		// apiservers on the node's own network only.
		Proxy:               func(*http.Request) (*url.URL, error) { return nil, nil },
		DialContext:         eps.DialContext,
		TLSHandshakeTimeout: dialTimeout,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	if u.Scheme == "https" {
		tlsCfg, err := rest.TLSConfigFor(cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("kubeconfig %s: TLS settings: %w", path, err)
		}
		if tlsCfg == nil {
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12} // system roots
		}
		if tlsCfg.ServerName == "" {
			tlsCfg.ServerName = u.Hostname()
		}
		if cfg.CertFile != "" && cfg.KeyFile != "" {
			// The kubelet rotates its client certificate in place; read it at
			// each handshake so a long-lived monitor never presents an expired one.
			certFile, keyFile := cfg.CertFile, cfg.KeyFile
			tlsCfg.Certificates = nil
			tlsCfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				pair, err := tls.LoadX509KeyPair(certFile, keyFile)
				return &pair, err
			}
		}
		transport.TLSClientConfig = tlsCfg
		transport.DialTLSContext = eps.DialContext
		transport.ForceAttemptHTTP2 = true
	}
	// HTTP/2 with client-go's connection health checks (see the
	// HTTP2_READ_IDLE_TIMEOUT_SECONDS environment variable).
	utilnet.SetTransportDefaults(transport)
	eps.TLS = transport.TLSClientConfig

	// The TLS settings now live in the transport; client-go refuses both.
	cfg.TLSClientConfig = rest.TLSClientConfig{}
	cfg.Transport = transport
	cfg.UserAgent = "haproxy-monitor"
	cfg.WarningHandler = &warningLog{log: log, seen: map[string]bool{}}
	// Two small informers; the defaults (5 QPS) would throttle a relist storm
	// after an outage for no benefit.
	cfg.QPS, cfg.Burst = 20, 40
	return cfg, eps, nil
}

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
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return u, net.JoinHostPort(u.Hostname(), port), nil
}
