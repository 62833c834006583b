package monitor

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxyctl"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
)

// sync computes the configuration from the caches and hands it to the
// reload controller, which owns writing it, getting haproxy to serve it and
// every retry. It reports whether it handed over a change: a configuration
// other than the last one, or another set of servers to drain.
func (m *Monitor) sync(eventAt time.Time) (changed bool) {
	start := time.Now()
	m.metrics.Renders.Inc()
	snap := m.source.Snapshot()
	if snap.Mode == discovery.ModeNone {
		return false // no source answers any more; keep what is on disk
	}
	nodes := snap.Nodes
	if snap.Mode == discovery.ModeDegraded {
		nodes = lbconfig.APIServerNodes(snap.APIServers, snap.Self, m.names)
	}
	opts := m.lbOptions()
	cfg, skipped := lbconfig.Build(nodes, opts)
	m.logSkipped(skipped)
	m.updateEndpoints(cfg.Backends, snap.APIEndpoints)
	m.metrics.Backends.WithLabelValues("skipped").Set(float64(len(skipped)))

	if len(cfg.Backends) == 0 && (m.handed != nil || m.configOnDisk) {
		// Zero members is far more likely a transient or broken view of
		// the cluster than the truth; an empty backend list would take the
		// API down on this node.
		m.log.WithFields(logrus.Fields{"nodes": len(nodes), "discovery": snap.Mode}).Warn("no usable control-plane backend; keeping the configuration on disk")
		m.health.setBackends(0)
		m.health.applied(nil, "kept last configuration: no backends")
		return false
	}

	data, err := m.renderer.Render(lbconfig.TemplateData{LBConfig: cfg})
	if err != nil {
		// The template renders again with the next change or a new
		// template; the file on disk stays.
		m.metrics.ConfigFailures.WithLabelValues("render").Inc()
		m.health.applied(err, "")
		m.log.WithError(err).Error("rendering the configuration; keeping the one on disk")
		return false
	}
	m.health.setBackends(len(cfg.Backends))
	drain := m.draining(cfg.Backends, snap)
	changed = !bytes.Equal(data, m.handed) || !slices.Equal(drain, m.drain)
	if !bytes.Equal(data, m.handed) {
		added, removed := diffBackends(m.applied, cfg.Backends)
		if m.handed != nil || len(added)+len(removed) > 0 {
			m.log.WithFields(logrus.Fields{
				"backends": backendList(cfg.Backends),
				"added":    backendList(added),
				"removed":  backendList(removed),
				"took":     time.Since(start).Round(time.Microsecond),
			}).Info("haproxy configuration changed")
		}
	}
	m.applied, m.handed, m.drain = cfg.Backends, data, drain
	m.names = lbconfig.RememberNames(m.names, cfg.Backends)
	// The controller compares with the file, writes, and gets haproxy to
	// serve it; a file already current is only checked against haproxy.
	m.haproxy.Serve(haproxyctl.Target{Config: data, EventAt: eventAt, Drain: drain})
	return changed
}

// draining names the servers whose apiserver left the kubernetes
// EndpointSlice; known only while the slice watch is current.
func (m *Monitor) draining(backends []lbconfig.Backend, snap discovery.Snapshot) []string {
	if !snap.SlicesCurrent || snap.Mode != discovery.ModeWatch {
		return nil
	}
	d := lbconfig.Draining(backends, snap.APIEndpoints, m.seenReady)
	lbconfig.SeenReady(m.seenReady, snap.APIEndpoints)
	return d
}

func (m *Monitor) lbOptions() lbconfig.Options {
	opts := lbconfig.Options{
		APIPort: m.cfg.APIPort, LBPort: m.cfg.LBPort, StatPort: m.cfg.StatPort, VIPs: m.cfg.VIPs,
	}
	if len(m.cfg.VIPs) == 0 {
		return opts
	}
	prefixes, err := m.cfg.LocalPrefixes()
	if err != nil {
		m.log.WithError(err).Warn("cannot list local interface addresses; selecting backend addresses by family only")
	}
	opts.VIPSubnets = lbconfig.VIPSubnets(m.cfg.VIPs, prefixes)
	return opts
}

// updateEndpoints hands the apiservers the cluster knows about to the API
// client, so it can reach one directly when its own and localhost fail.
func (m *Monitor) updateEndpoints(backends []lbconfig.Backend, apiEndpoints []string) {
	if m.eps == nil {
		return
	}
	addrs := make([]string, 0, len(backends)+len(apiEndpoints))
	for _, b := range backends {
		addrs = append(addrs, net.JoinHostPort(b.Address, strconv.Itoa(int(b.Port))))
	}
	m.eps.SetDynamic(append(addrs, apiEndpoints...))
}

func (m *Monitor) logSkipped(skipped []lbconfig.Skipped) {
	var b strings.Builder
	for _, s := range skipped {
		fmt.Fprintf(&b, "%q: %s; ", s.Node, s.Reason)
	}
	// Warn once per distinct set, not on every render.
	if b.String() == m.lastSkips {
		return
	}
	m.lastSkips = b.String()
	for _, s := range skipped {
		m.log.WithFields(logrus.Fields{"node": s.Node, "reason": s.Reason}).Warn("control-plane node skipped")
	}
}

func diffBackends(old, cur []lbconfig.Backend) (added, removed []lbconfig.Backend) {
	in := func(list []lbconfig.Backend, b lbconfig.Backend) bool {
		for _, x := range list {
			if x == b {
				return true
			}
		}
		return false
	}
	for _, b := range cur {
		if !in(old, b) {
			added = append(added, b)
		}
	}
	for _, b := range old {
		if !in(cur, b) {
			removed = append(removed, b)
		}
	}
	return added, removed
}

func backendList(bs []lbconfig.Backend) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = b.Host + "=" + net.JoinHostPort(b.Address, strconv.Itoa(int(b.Port)))
	}
	return strings.Join(parts, ",")
}
