package monitor

import (
	"bytes"
	"os"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/render"
)

// templateCheckEvery is how often the template file is read again: OpenShift
// replaces it during upgrades without restarting the pod, by rename or, for
// projected files, by swapping a symlink; reading the path again sees both.
const templateCheckEvery = time.Second

// Reread asks the loop to read the template again now (SIGHUP).
func (m *Monitor) Reread() {
	select {
	case m.reread <- struct{}{}:
	default:
	}
}

// checkTemplate reads the template file and, when it changed, parses and
// trial-runs it: a good one replaces the renderer and renders at once; a
// broken one keeps the running configuration and fails readiness until the
// file changes again.
func (m *Monitor) checkTemplate() {
	text, err := os.ReadFile(m.cfg.TemplatePath)
	if err != nil {
		if m.templateErr == nil || m.templateErr.Error() != err.Error() {
			m.log.WithError(err).Error("template unreadable; keeping the configuration rendered from the previous one")
			m.metrics.TemplateReloads.WithLabelValues("failed").Inc()
		}
		m.templateErr = err
		m.health.setTemplateErr(err)
		return
	}
	if bytes.Equal(text, m.templateText) {
		return
	}
	m.templateText = text
	r, err := render.Parse(m.cfg.TemplatePath, string(text))
	if err != nil {
		m.templateErr = err
		m.health.setTemplateErr(err)
		m.metrics.TemplateReloads.WithLabelValues("failed").Inc()
		m.log.WithError(err).Error("new template refused; keeping the configuration rendered from the previous one")
		return
	}
	m.renderer, m.templateErr = r, nil
	m.health.setTemplateErr(nil)
	m.metrics.TemplateReloads.WithLabelValues("applied").Inc()
	m.log.WithField("template", m.cfg.TemplatePath).Info("template changed; rendering with it")
	if m.health.isSynced() {
		m.debounce.now(time.Now())
	}
}
