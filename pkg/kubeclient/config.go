package kubeclient

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Load reads the kubeconfig at path and returns a client config whose
// connections go through a failover dialer that also tries
// localhost:apiPort. Any server form works: names with any number of labels,
// IPv4 and IPv6 literals, localhost.
func Load(path string, apiPort uint16, dialTimeout time.Duration, log logrus.FieldLogger) (*rest.Config, *Endpoints, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, nil, fmt.Errorf("loading kubeconfig %s: %w", path, err)
	}
	server, err := serverHostPort(cfg.Host)
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	local := net.JoinHostPort("localhost", strconv.Itoa(int(apiPort)))
	eps := NewEndpoints([]string{server, local}, dialTimeout, log)
	cfg.Dial = eps.Dial
	cfg.UserAgent = "haproxy-monitor"
	// Two small informers; the defaults (5 QPS) would throttle a relist storm
	// after an outage for no benefit.
	cfg.QPS, cfg.Burst = 20, 40
	return cfg, eps, nil
}

func serverHostPort(server string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("server %q: %w", server, err)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("server %q has no host", server)
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}
