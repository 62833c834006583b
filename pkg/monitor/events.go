package monitor

import (
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/reload"
)

var errVerifyTimeout = errors.New("haproxy did not pick up the last configuration")

// onReload records one outcome of the reload controller: metrics, readiness
// and one log line per event that matters.
func (m *Monitor) onReload(ev reload.Event) {
	log := m.log.WithField("socket", m.cfg.ReloadSocket)
	switch ev.Kind {
	case reload.Delivered:
		m.metrics.Reloads.WithLabelValues("delivered").Inc()
		if !ev.EventAt.IsZero() {
			m.metrics.EventToReload.Observe(ev.At.Sub(ev.EventAt).Seconds())
		}
		m.state.reloadResult(nil, ev.At)
		log.WithField("attempt", ev.Attempt).Info("reload delivered")
	case reload.DeliveryFailed:
		m.metrics.Reloads.WithLabelValues("failed").Inc()
		m.metrics.ConfigFailures.WithLabelValues("reload").Inc()
		m.state.reloadResult(ev.Err, ev.At)
		if ev.Attempt == 1 || ev.Attempt%10 == 0 {
			log.WithField("attempt", ev.Attempt).WithError(ev.Err).Warn("reload not delivered, will retry")
		}
	case reload.Serving:
		if ev.SentAt.IsZero() {
			m.metrics.Verifications.WithLabelValues("current").Inc()
			m.log.Debug("haproxy already serves the configuration on disk")
		} else {
			d := ev.At.Sub(ev.SentAt)
			m.metrics.ReloadToServing.Observe(d.Seconds())
			m.metrics.Verifications.WithLabelValues("serving").Inc()
			m.log.WithField("after", d.Round(time.Millisecond)).Debug("haproxy serves the new configuration")
		}
		m.state.verified(nil)
	case reload.NotServing:
		m.metrics.Verifications.WithLabelValues("timeout").Inc()
		m.metrics.ReloadRetries.Inc()
		m.state.verified(errVerifyTimeout)
		m.log.WithFields(logrus.Fields{"runtime_socket": m.cfg.StatsSocket, "timeout": m.cfg.VerifyTimeout}).WithError(ev.Err).
			Warn("haproxy does not serve the new configuration after the reload; reloading again")
	case reload.Unverifiable:
		m.metrics.Verifications.WithLabelValues("unavailable").Inc()
		m.state.verified(nil)
		if !m.unverifiable {
			m.unverifiable = true
			m.log.WithField("runtime_socket", m.cfg.StatsSocket).Info("no haproxy runtime API socket; reloads are not confirmed")
		}
	case reload.Stale:
		m.metrics.Verifications.WithLabelValues("stale").Inc()
		m.metrics.ReloadRetries.Inc()
		m.log.Warn("haproxy serves other servers than the configuration on disk (a reload was lost before this start); reloading")
	case reload.Sampled:
		m.metrics.SetHAProxyServers(ev.Up, ev.Down, ev.Err)
	}
}
