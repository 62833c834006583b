package monitor

//lint:file-ignore SA1019 v1 Endpoints default/kubernetes is the one member source a node may read without a grant (README, Permissions)

import (
	"time"

	"context"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery/fakeapi"
)

// setEndpoints replaces the apiservers of the kubernetes Endpoints.
func setEndpoints(t *testing.T, c *fakeapi.Cluster, ips ...string) {
	t.Helper()
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"}}
	ss := corev1.EndpointSubset{Ports: []corev1.EndpointPort{{Port: 6443}}}
	for _, ip := range ips {
		ss.Addresses = append(ss.Addresses, corev1.EndpointAddress{IP: ip})
	}
	ep.Subsets = []corev1.EndpointSubset{ss}
	c.Deny["endpoints"].Store(false)
	defer c.Deny["endpoints"].Store(false)
	if _, err := c.Client.CoreV1().Endpoints("default").Update(context.Background(), ep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) ready(t *testing.T, substr string) {
	t.Helper()
	poll.Must(t, 15*time.Second, "readiness note "+substr, func() bool {
		note, err := h.mon.health.ready()
		return err == nil && strings.Contains(note, substr)
	})
}

// Without the grant from the start: the apiservers of the Endpoints are
// served, the own one under this node's name; readiness and metrics say why.
func TestMonitorStartsDegraded(t *testing.T) {
	c := fakeapi.New("system:node:m1")
	c.Deny["nodes"].Store(true)
	c.Deny["endpointslices"].Store(true)
	h := startClient(t, testConfig(t, newSinkPath(t)), true, c.Client)
	h.waitServers("m1=198.18.0.11:6443", "apiserver-198-18-0-12=198.18.0.12:6443")
	h.waitReloads(1)
	h.ready(t, "degraded discovery: system:node:m1 may not list and watch Nodes")
	m := h.mon.metrics
	poll.Must(t, 15*time.Second, "metrics of the degraded mode", func() bool {
		return testutil.ToFloat64(m.DiscoveryMode.WithLabelValues("degraded")) == 1 &&
			testutil.ToFloat64(m.APIForbidden.WithLabelValues("nodes")) == 1 &&
			testutil.ToFloat64(m.APIForbidden.WithLabelValues("endpointslices")) == 1 &&
			testutil.ToFloat64(m.DiscoveryMode.WithLabelValues("watch")) == 0
	})
}

// Grant removed, then applied again, while running: the names the servers
// had are kept, so nothing is rewritten or reloaded for the switch itself.
// The change made while degraded is the sentinel that the degraded source
// was rendered from.
func TestMonitorSwitchesSourcesWithoutReload(t *testing.T) {
	c := fakeapi.New("system:node:m1")
	h := startClient(t, testConfig(t, newSinkPath(t)), true, c.Client)
	h.waitServers("m1=198.18.0.11:6443", "m2=198.18.0.12:6443")
	h.waitReloads(1)

	c.Deny["nodes"].Store(true)
	c.EndWatches()
	poll.Must(t, 15*time.Second, "degraded mode", func() bool { return h.mon.source.Status().Mode == discovery.ModeDegraded })
	setEndpoints(t, c, "198.18.0.11", "198.18.0.12", "198.18.0.13")
	h.waitServers("m1=198.18.0.11:6443", "m2=198.18.0.12:6443", "apiserver-198-18-0-13=198.18.0.13:6443")
	h.waitReloads(2)
	h.ready(t, "degraded discovery")
	// m2's apiserver restarts: it leaves the Endpoints and comes back under
	// its own name.
	setEndpoints(t, c, "198.18.0.11", "198.18.0.13")
	h.waitServers("m1=198.18.0.11:6443", "apiserver-198-18-0-13=198.18.0.13:6443")
	setEndpoints(t, c, "198.18.0.11", "198.18.0.12", "198.18.0.13")
	h.waitServers("m1=198.18.0.11:6443", "m2=198.18.0.12:6443", "apiserver-198-18-0-13=198.18.0.13:6443")
	h.waitReloads(4)

	c.Deny["nodes"].Store(false)
	h.waitServers("m1=198.18.0.11:6443", "m2=198.18.0.12:6443")
	h.waitReloads(5)
	poll.Must(t, 15*time.Second, "watch mode and a plain ok", func() bool {
		note, err := h.mon.health.ready()
		return err == nil && note == "" && h.mon.source.Status().Mode == discovery.ModeWatch
	})
}

// An identity that may read nothing: a clear reason, the file untouched.
func TestMonitorNothingReadable(t *testing.T) {
	c := fakeapi.New("system:node:m1")
	for _, d := range c.Deny {
		d.Store(true)
	}
	cfg := testConfig(t, newSinkPath(t))
	const precious = "# precious\n"
	if err := writeFile(cfg.ConfigPath, precious); err != nil {
		t.Fatal(err)
	}
	h := startClient(t, cfg, true, c.Client)
	poll.Must(t, 15*time.Second, "readiness to say why", func() bool {
		_, err := h.mon.health.ready()
		return err != nil && strings.Contains(err.Error(), "may read neither the Nodes") && strings.Contains(err.Error(), "manifests/rbac.yaml")
	})
	if h.file() != precious || h.sink.count(t) != 0 {
		t.Fatalf("file %q, %d reloads; want it untouched", h.file(), h.sink.count(t))
	}
}
