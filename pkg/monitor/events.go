package monitor

import (
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxycfg"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxyctl"
)

var errVerifyTimeout = errors.New("haproxy did not pick up the last configuration")

// onReload records one outcome of the reload controller: metrics, readiness
// and one log line per event that matters.
func (m *Monitor) onReload(ev haproxyctl.Event) {
	log := m.log.WithField("socket", m.cfg.ReloadSocket)
	switch ev.Kind {
	case haproxyctl.Written:
		m.metrics.Writes.Inc()
		m.metrics.ChangesApplied.WithLabelValues(ev.Path).Inc()
		m.metrics.SetConfigHash(sha(ev.Config))
		m.metrics.Backends.WithLabelValues("configured").Set(float64(len(haproxycfg.Servers(ev.Config))))
		m.health.setOnDisk(true)
		m.mem.haveConfig = true
		m.health.applied(nil, "")
		if ev.Err != nil {
			m.metrics.ConfigFailures.WithLabelValues(ev.Stage).Inc()
			m.log.WithError(ev.Err).Warn("configuration written, but not made durable")
		}
		if ev.Path == haproxyctl.PathRuntime {
			m.log.Info("configuration written; haproxy took it through its runtime API, without a reload")
		} else {
			m.log.WithField("why", ev.Reason).Info("configuration written; reloading haproxy")
		}
	case haproxyctl.Current:
		m.health.applied(nil, "")
	case haproxyctl.WriteFailed:
		m.metrics.ConfigFailures.WithLabelValues(ev.Stage).Inc()
		m.health.applied(ev.Err, "")
		m.log.WithError(ev.Err).WithField("stage", ev.Stage).Error("configuration not applied; retrying")
	case haproxyctl.RuntimeApplied:
		if !ev.EventAt.IsZero() {
			m.metrics.EventToApply.WithLabelValues(haproxyctl.PathRuntime).Observe(ev.At.Sub(ev.EventAt).Seconds())
		}
	case haproxyctl.RuntimeFailed:
		m.metrics.RuntimeFailures.Inc()
		m.log.WithError(ev.Err).Warn("runtime API change failed; reloading instead")
	case haproxyctl.Drained:
		st := "ready"
		if ev.On {
			st = "drain"
		}
		m.metrics.Drains.WithLabelValues(st).Inc()
		m.log.WithFields(logrus.Fields{"server": ev.Server, "state": st}).WithError(ev.Err).Info("server drain changed")
	case haproxyctl.Retired:
		m.log.WithField("server", ev.Server).WithError(ev.Err).Info("removed server's grace period over: its sessions shut and the server deleted")
	case haproxyctl.StateFileWritten:
		if ev.Err != nil {
			m.metrics.StateFileWrites.WithLabelValues("failed").Inc()
			m.log.WithError(ev.Err).Warn("server state file not written; health states restart with the reload")
		} else {
			m.metrics.StateFileWrites.WithLabelValues("written").Inc()
		}
	case haproxyctl.Delivered:
		m.metrics.Reloads.WithLabelValues("delivered").Inc()
		if !ev.EventAt.IsZero() {
			m.metrics.EventToApply.WithLabelValues(haproxyctl.PathReload).Observe(ev.At.Sub(ev.EventAt).Seconds())
		}
		m.health.reloadResult(nil, ev.At)
		log.WithField("attempt", ev.Attempt).Info("reload delivered")
	case haproxyctl.DeliveryFailed:
		m.metrics.Reloads.WithLabelValues("failed").Inc()
		m.metrics.ConfigFailures.WithLabelValues("reload").Inc()
		m.health.reloadResult(ev.Err, ev.At)
		if ev.Attempt == 1 || ev.Attempt%10 == 0 {
			log.WithField("attempt", ev.Attempt).WithError(ev.Err).Warn("reload not delivered, will retry")
		}
	case haproxyctl.Serving:
		switch ev.Path {
		case "":
			m.metrics.Verifications.WithLabelValues("current").Inc()
			m.log.Debug("haproxy already serves the configuration on disk")
		case haproxyctl.PathRuntime:
			m.metrics.Verifications.WithLabelValues("serving").Inc()
		default:
			d := ev.At.Sub(ev.SentAt)
			m.metrics.ReloadToServing.Observe(d.Seconds())
			m.metrics.Verifications.WithLabelValues("serving").Inc()
			m.log.WithField("after", d.Round(time.Millisecond)).Debug("haproxy serves the new configuration")
		}
		m.health.verified(nil)
	case haproxyctl.NotServing:
		m.metrics.Verifications.WithLabelValues("timeout").Inc()
		m.metrics.ReloadRetries.Inc()
		m.health.verified(errVerifyTimeout)
		m.log.WithFields(logrus.Fields{"runtime_socket": m.cfg.StatsSocket, "timeout": m.cfg.VerifyTimeout}).WithError(ev.Err).
			Warn("haproxy does not serve the new configuration after the reload; reloading again")
	case haproxyctl.Unverifiable:
		m.metrics.Verifications.WithLabelValues("unavailable").Inc()
		m.health.verified(nil)
		if !m.unverifiable {
			m.unverifiable = true
			m.log.WithField("runtime_socket", m.cfg.StatsSocket).Info("no haproxy runtime API socket; reloads are not confirmed")
		}
	case haproxyctl.Stale:
		m.metrics.Verifications.WithLabelValues("stale").Inc()
		m.metrics.ReloadRetries.Inc()
		m.log.Warn("haproxy serves other servers than the configuration on disk (a reload was lost before this start); reloading")
	case haproxyctl.Sampled:
		m.metrics.SetHAProxyServers(ev.Up, ev.Down, ev.Err)
	}
}
