package monitor

import (
	"github.com/sirupsen/logrus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery"
)

// noteDiscovery logs and exports a change in what the API lets discovery
// read: once per change, not per poll.
func (m *Monitor) noteDiscovery() {
	st := m.source.Status()
	old := m.lastStatus
	m.lastStatus = st
	m.metrics.SetDiscovery(st.Mode.String(), st.NodesForbidden != nil, st.SlicesForbidden != nil, apierrors.IsForbidden(st.DegradedErr))
	log := m.log.WithFields(logrus.Fields{"discovery": st.Mode, "identity": st.Identity})
	switch {
	case st.NothingReadable():
		if !old.NothingReadable() {
			log.Error("no readable source of control-plane members; keeping the configuration on disk: " + st.Describe())
		}
	case st.Mode == discovery.ModeDegraded && old.Mode != discovery.ModeDegraded:
		log.WithError(st.NodesForbidden).Warn(st.Describe())
	case st.Mode == discovery.ModeWatch && old.Mode == discovery.ModeDegraded:
		log.Info("Nodes readable again: watching them; degraded discovery stopped")
	}
	if (st.SlicesForbidden != nil) != (old.SlicesForbidden != nil) {
		if st.SlicesForbidden != nil {
			log.WithError(st.SlicesForbidden).Info("the kubernetes EndpointSlice may not be watched; apiserver addresses come from the Nodes only (manifests/rbac.yaml grants it)")
		} else {
			log.Info("watching the kubernetes EndpointSlice")
		}
	}
}
