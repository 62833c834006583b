package monitor

import (
	"bytes"
	"fmt"
	"maps"
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

// memory is what the monitor remembers between syncs that the desired
// state depends on.
type memory struct {
	// names are the names servers had, for degraded discovery, which sees
	// only addresses.
	names []lbconfig.Backend
	// seenReady are the addresses seen ready in the kubernetes
	// EndpointSlice: only a server once seen there is drained when it
	// leaves.
	seenReady map[string]bool
	// haveConfig: a configuration was handed to the controller or found on
	// disk, so zero members keep it rather than replace it.
	haveConfig bool
}

// desiredState is what one snapshot asks haproxy to serve.
type desiredState struct {
	cfg     lbconfig.LBConfig
	skipped []lbconfig.Skipped
	// keep: zero usable members while a configuration exists; it stays.
	keep  bool
	drain []string
	// next is the memory after this snapshot.
	next memory
}

// desired computes the desired state from one snapshot and the monitor's
// memory: pure (memory is not changed; the new one is returned).
func desired(snap discovery.Snapshot, mem memory, opts lbconfig.Options) desiredState {
	nodes := snap.Nodes
	if snap.Mode == discovery.ModeDegraded {
		nodes = lbconfig.APIServerNodes(snap.APIServers, snap.Self, mem.names)
	}
	d := desiredState{next: mem}
	d.cfg, d.skipped = lbconfig.Build(nodes, opts)
	if len(d.cfg.Backends) == 0 && mem.haveConfig {
		// Zero members is far more likely a transient or broken view of
		// the cluster than the truth; an empty backend list would take the
		// API down on this node.
		d.keep = true
		return d
	}
	d.next.names = lbconfig.RememberNames(mem.names, d.cfg.Backends)
	// Drains are known only while the slice watch is current.
	if snap.SlicesCurrent && snap.Mode == discovery.ModeWatch {
		d.drain = lbconfig.Draining(d.cfg.Backends, snap.APIEndpoints, mem.seenReady)
		d.next.seenReady = maps.Clone(mem.seenReady)
		if d.next.seenReady == nil {
			d.next.seenReady = map[string]bool{}
		}
		lbconfig.SeenReady(d.next.seenReady, snap.APIEndpoints)
	}
	return d
}

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
	d := desired(snap, m.mem, m.lbOptions())
	m.logSkipped(d.skipped)
	m.updateEndpoints(d.cfg.Backends, snap.APIEndpoints)
	m.metrics.Backends.WithLabelValues("skipped").Set(float64(len(d.skipped)))
	if d.keep {
		m.log.WithFields(logrus.Fields{"nodes": len(snap.Nodes) + len(snap.APIServers), "discovery": snap.Mode}).
			Warn("no usable control-plane backend; keeping the configuration on disk")
		m.health.setBackends(0)
		m.health.applied(nil, "kept last configuration: no backends")
		return false
	}
	data, err := m.renderer.Render(lbconfig.TemplateData{LBConfig: d.cfg})
	if err != nil {
		// The template renders again with the next change or a new
		// template; the file on disk stays.
		m.metrics.ConfigFailures.WithLabelValues("render").Inc()
		m.health.applied(err, "")
		m.log.WithError(err).Error("rendering the configuration; keeping the one on disk")
		return false
	}
	m.health.setBackends(len(d.cfg.Backends))
	changed = !bytes.Equal(data, m.handed) || !slices.Equal(d.drain, m.drain)
	if !bytes.Equal(data, m.handed) {
		added, removed := diffBackends(m.applied, d.cfg.Backends)
		if m.handed != nil || len(added)+len(removed) > 0 {
			m.log.WithFields(logrus.Fields{
				"backends": backendList(d.cfg.Backends),
				"added":    backendList(added),
				"removed":  backendList(removed),
				"took":     time.Since(start).Round(time.Microsecond),
			}).Info("haproxy configuration changed")
		}
	}
	m.applied, m.handed, m.drain, m.mem = d.cfg.Backends, data, d.drain, d.next
	m.mem.haveConfig = true
	// The controller compares with the file, writes, and gets haproxy to
	// serve it; a file already current is only checked against haproxy.
	m.haproxy.Serve(haproxyctl.Target{Config: data, EventAt: eventAt, Drain: d.drain})
	return changed
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
