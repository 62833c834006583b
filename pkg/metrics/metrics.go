// Package metrics defines the monitor's Prometheus metrics on a registry of
// its own, and instruments the API client's transport.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const ns = "haproxy_monitor"

// Metrics is every metric the monitor exports.
type Metrics struct {
	Registry *prometheus.Registry

	// Backends by state: configured and skipped (from the cluster), up and
	// down (from haproxy's runtime API, when its socket is readable).
	Backends *prometheus.GaugeVec
	// RuntimeAPIUp is 1 while haproxy's runtime API answers; the up and
	// down backends are exported only then.
	RuntimeAPIUp prometheus.Gauge
	Renders      prometheus.Counter
	Writes       prometheus.Counter
	// ConfigFailures counts failures by stage: render, validate, write,
	// sync (replaced but not durable), reload (a delivery attempt).
	ConfigFailures *prometheus.CounterVec
	// Reloads by result of each delivery attempt: delivered, failed.
	Reloads *prometheus.CounterVec
	// ReloadRetries counts reloads sent again because haproxy did not serve
	// the configuration within the verify timeout, or served a stale one at
	// start-up.
	ReloadRetries prometheus.Counter
	// Verifications of what haproxy serves by result: serving (after a
	// reload or a change through the runtime API), timeout, unavailable (no runtime API socket to check with),
	// current and stale (the file found on disk at start-up: served already,
	// or not).
	Verifications *prometheus.CounterVec
	APIRequests   *prometheus.CounterVec
	// EventToApply is from the first API event of a change to haproxy
	// taking it, by path: runtime (the runtime API changes made), reload
	// (the reload line written to the socket).
	EventToApply *prometheus.HistogramVec
	// ChangesApplied counts configurations written by the path haproxy
	// took them: runtime or reload.
	ChangesApplied *prometheus.CounterVec
	// RuntimeFailures counts runtime API changes that failed (the reload
	// path took over).
	RuntimeFailures prometheus.Counter
	// Drains counts servers put in drain (state drain) and back (ready).
	Drains *prometheus.CounterVec
	// StateFileWrites counts server-state-file writes by result.
	StateFileWrites *prometheus.CounterVec
	// TrackFileErrors counts keepalived track file writes that failed.
	TrackFileErrors prometheus.Counter
	// TemplateReloads counts template files read again after a change, by
	// result: applied, failed (unreadable or broken; the previous one stays).
	TemplateReloads *prometheus.CounterVec
	// ReloadToServing is from the reload line to haproxy serving the
	// rendered server set, seen through its runtime API.
	ReloadToServing prometheus.Histogram
	ConfigInfo      *prometheus.GaugeVec
	// RedirectActive is 1 while the VIP → lb-port redirect is installed.
	RedirectActive prometheus.Gauge
	// DiscoveryMode is 1 for the source members come from: watch,
	// degraded or none.
	DiscoveryMode *prometheus.GaugeVec
	// APIForbidden is 1 per resource the API refuses to this identity.
	APIForbidden *prometheus.GaugeVec
}

// New registers the metrics.
func New() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		Backends: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "backends",
			Help: "Control-plane backends by state: configured/skipped (cluster), up/down (haproxy)."}, []string{"state"}),
		RuntimeAPIUp: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "haproxy_runtime_api_up",
			Help: "1 while haproxy's runtime API answers; backends up/down are exported only then."}),
		Renders: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "renders_total",
			Help: "Configurations computed from the cluster state."}),
		ConfigFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "config_failures_total",
			Help: "Failures by stage: render, validate, write, sync (replaced but not durable), reload (delivery attempts)."}, []string{"stage"}),
		Writes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "config_writes_total",
			Help: "Configurations written to disk (rendered bytes differed)."}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "reloads_total",
			Help: "Reload delivery attempts on the reloader socket by result."}, []string{"result"}),
		ReloadRetries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "reload_retries_total",
			Help: "Reloads sent again because haproxy did not serve the configuration in time, or served a stale one at start-up."}),
		Verifications: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "reload_verifications_total",
			Help: "Delivered reloads checked through haproxy's runtime API, by result."}, []string{"result"}),
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "api_requests_total",
			Help: "Requests to kube-apiserver by HTTP code, or \"error\" when no response came."}, []string{"code"}),
		EventToApply: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "event_to_apply_seconds",
			Help:    "Seconds from the API event behind a change to haproxy taking it, by path (runtime API changes made, or reload sent).",
			Buckets: []float64{.005, .01, .025, .05, .1, .15, .2, .25, .3, .5, .75, 1, 2, 5, 10, 30}}, []string{"path"}),
		ChangesApplied: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "changes_applied_total",
			Help: "Configurations written, by the path haproxy took them: runtime (its runtime API, no reload) or reload."}, []string{"path"}),
		RuntimeFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "runtime_command_failures_total",
			Help: "Runtime API changes that failed; the reload path took over."}),
		Drains: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "drains_total",
			Help: "Servers put in drain (their apiserver left the kubernetes EndpointSlice) and back to ready."}, []string{"state"}),
		StateFileWrites: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "state_file_writes_total",
			Help: "server-state-file writes before a reload, by result."}, []string{"result"}),
		TrackFileErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "track_file_errors_total",
			Help: "keepalived track file writes that failed (its script check then decides alone)."}),
		TemplateReloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "template_reloads_total",
			Help: "Template files read again after a change, by result: applied, failed (the previous template stays)."}, []string{"result"}),
		ReloadToServing: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "reload_to_serving_seconds",
			Help:    "Seconds from the reload being sent to haproxy serving the new server set.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2, 5, 10}}),
		ConfigInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "config_info",
			Help: "1 for the SHA-256 of the configuration on disk."}, []string{"sha256"}),
		RedirectActive: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "api_redirect_active",
			Help: "1 while the VIP:api-port to lb-port nftables redirect is installed."}),
		DiscoveryMode: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "discovery_mode",
			Help: "1 for where the members come from: watch (Node watches), degraded (default/kubernetes Endpoints, polled) or none."}, []string{"mode"}),
		APIForbidden: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "api_forbidden",
			Help: "1 while the API refuses this identity the resource: nodes, endpointslices, endpoints."}, []string{"resource"}),
	}
	r.MustRegister(m.Backends, m.RuntimeAPIUp, m.Renders, m.Writes, m.ConfigFailures, m.Reloads, m.ReloadRetries,
		m.Verifications, m.APIRequests, m.EventToApply, m.ChangesApplied, m.RuntimeFailures, m.Drains, m.StateFileWrites, m.TemplateReloads, m.TrackFileErrors, m.ReloadToServing, m.ConfigInfo, m.RedirectActive,
		m.DiscoveryMode, m.APIForbidden)
	m.SetDiscovery("none", false, false, false)
	// Zero series exist from the start so rates work before the first event.
	for _, res := range []string{"delivered", "failed"} {
		m.Reloads.WithLabelValues(res)
	}
	for _, res := range []string{"serving", "timeout", "unavailable", "current", "stale"} {
		m.Verifications.WithLabelValues(res)
	}
	for _, st := range []string{"render", "validate", "write", "sync", "reload"} {
		m.ConfigFailures.WithLabelValues(st)
	}
	for _, p := range []string{"runtime", "reload"} {
		m.ChangesApplied.WithLabelValues(p)
	}
	for _, st := range []string{"drain", "ready"} {
		m.Drains.WithLabelValues(st)
	}
	for _, r := range []string{"written", "failed"} {
		m.StateFileWrites.WithLabelValues(r)
	}
	for _, r := range []string{"applied", "failed"} {
		m.TemplateReloads.WithLabelValues(r)
	}
	return m
}

// WatchLastContact exports the age of the last contact with the API (event,
// bookmark or list) as reported by last; a zero time reads as -1.
func (m *Metrics) WatchLastContact(last func() time.Time) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "api_last_contact_age_seconds",
		Help: "Seconds since the API was last heard from (event, bookmark or list); -1 before the first."},
		func() float64 {
			if t := last(); !t.IsZero() {
				return time.Since(t).Seconds()
			}
			return -1
		}))
}

// SetHAProxyServers exports the servers haproxy has up and down, or, when its
// runtime API did not answer, that it did not: no stale figures.
func (m *Metrics) SetHAProxyServers(up, down int, err error) {
	if err != nil {
		m.RuntimeAPIUp.Set(0)
		m.Backends.DeleteLabelValues("up")
		m.Backends.DeleteLabelValues("down")
		return
	}
	m.RuntimeAPIUp.Set(1)
	m.Backends.WithLabelValues("up").Set(float64(up))
	m.Backends.WithLabelValues("down").Set(float64(down))
}

// SetDiscovery records the discovery mode and which resources are refused.
func (m *Metrics) SetDiscovery(mode string, nodes, slices, endpoints bool) {
	for _, md := range []string{"none", "watch", "degraded"} {
		m.DiscoveryMode.WithLabelValues(md).Set(Bool(md == mode))
	}
	m.APIForbidden.WithLabelValues("nodes").Set(Bool(nodes))
	m.APIForbidden.WithLabelValues("endpointslices").Set(Bool(slices))
	m.APIForbidden.WithLabelValues("endpoints").Set(Bool(endpoints))
}

// Bool is 1 for true, 0 for false.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// WatchAPIFailing exports how long the API's answers have been failing
// (no response, 5xx, 429, 401), 0 while they are not.
func (m *Metrics) WatchAPIFailing(failing func() (time.Time, string)) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "api_failing_seconds",
		Help: "Seconds the API's answers have been failing (no response, 5xx, 429, 401); 0 while they are not."},
		func() float64 {
			if since, _ := failing(); !since.IsZero() {
				return time.Since(since).Seconds()
			}
			return 0
		}))
}

// SetConfigHash records the hash of the configuration now on disk.
func (m *Metrics) SetConfigHash(sha string) {
	m.ConfigInfo.Reset()
	m.ConfigInfo.WithLabelValues(sha).Set(1)
}

// InstrumentAPI wraps the API client's transport to count requests.
func (m *Metrics) InstrumentAPI(rt http.RoundTripper) http.RoundTripper {
	return roundTripper{next: rt, m: m}
}

type roundTripper struct {
	next http.RoundTripper
	m    *Metrics
}

func (t roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		t.m.APIRequests.WithLabelValues("error").Inc()
		return resp, err
	}
	t.m.APIRequests.WithLabelValues(strconv.Itoa(resp.StatusCode)).Inc()
	return resp, nil
}
