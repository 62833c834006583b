package monitor

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/discovery"
)

// health is what the health endpoints report; the loop writes it (from its
// syncs and the reload controller's events), the HTTP handlers read it.
type health struct {
	mu           sync.Mutex
	lastBeat     time.Time
	synced       bool
	onDisk       bool // a non-empty configuration is on disk
	backends     int
	applyErr     error
	keptReason   string
	reloadErr    error
	reloadFailed time.Time // start of the current delivery failure streak
	verifyErr    error
	// apiDown says why no apiserver endpoint is reachable ("" while one is);
	// apiFailing when the API's answers began failing and the last failure.
	apiDown    func() string
	apiFailing func() (time.Time, string)
	discovery  func() discovery.Status
	// templateErr: the template file changed into one that cannot be used.
	templateErr error
}

func newHealth() *health {
	return &health{lastBeat: time.Now(), apiDown: func() string { return "" },
		apiFailing: func() (time.Time, string) { return time.Time{}, "" },
		discovery:  func() discovery.Status { return discovery.Status{} }}
}

func (s *health) beat() {
	s.mu.Lock()
	s.lastBeat = time.Now()
	s.mu.Unlock()
}

func (s *health) setSynced() {
	s.mu.Lock()
	s.synced = true
	s.mu.Unlock()
}

func (s *health) setOnDisk(v bool) {
	s.mu.Lock()
	s.onDisk = v
	s.mu.Unlock()
}

func (s *health) setTemplateErr(err error) {
	s.mu.Lock()
	s.templateErr = err
	s.mu.Unlock()
}

func (s *health) isSynced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.synced
}

func (s *health) setBackends(n int) {
	s.mu.Lock()
	s.backends = n
	s.mu.Unlock()
}

func (s *health) applied(err error, kept string) {
	s.mu.Lock()
	s.applyErr, s.keptReason = err, kept
	s.mu.Unlock()
}

func (s *health) verified(err error) {
	s.mu.Lock()
	s.verifyErr = err
	s.mu.Unlock()
}

// reloadResult records a delivery attempt finished at at.
func (s *health) reloadResult(err error, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reloadErr = err
	switch {
	case err == nil:
		s.reloadFailed = time.Time{}
	case s.reloadFailed.IsZero():
		s.reloadFailed = at
	}
}

// healthy: the loop has gone round recently. The loop wakes at least every
// check interval, so three missed intervals mean it is stuck.
func (s *health) healthy(now time.Time, interval time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if age := now.Sub(s.lastBeat); age > 3*interval+time.Second {
		return fmt.Errorf("control loop has not run for %v", age.Round(time.Second))
	}
	return nil
}

// ready: the configuration reflects the cluster, or the last-known-good one
// is in use while the API cannot be reached, and haproxy was told about it.
// The note qualifies a ready answer. It reads every input once, then
// decides (readiness).
func (s *health) ready() (note string, err error) {
	in := readinessInputs{disc: s.discovery(), apiDown: s.apiDown()}
	in.failingSince, in.failingLast = s.apiFailing()
	s.mu.Lock()
	in.synced, in.onDisk, in.backends, in.keptReason = s.synced, s.onDisk, s.backends, s.keptReason
	in.templateErr, in.applyErr, in.reloadErr, in.verifyErr, in.reloadFailed = s.templateErr, s.applyErr, s.reloadErr, s.verifyErr, s.reloadFailed
	s.mu.Unlock()
	return readiness(in)
}

// readinessInputs is one reading of everything readiness depends on.
type readinessInputs struct {
	disc                                        discovery.Status
	apiDown                                     string // why no apiserver endpoint answers; "" while one does
	failingSince                                time.Time
	failingLast                                 string
	synced, onDisk                              bool
	backends                                    int
	keptReason                                  string
	templateErr, applyErr, reloadErr, verifyErr error
	reloadFailed                                time.Time
}

// readiness decides /readyz from one reading.
func readiness(in readinessInputs) (note string, err error) {
	switch {
	case in.disc.NothingReadable():
		return "", errors.New(in.disc.Describe())
	case in.templateErr != nil:
		return "", fmt.Errorf("template cannot be used, keeping the configuration from the previous one: %v", in.templateErr)
	case !in.synced && !in.onDisk:
		return "", fmt.Errorf("API caches not synced yet and no configuration on disk")
	case in.applyErr != nil:
		return "", fmt.Errorf("configuration not applied: %v", in.applyErr)
	case in.reloadErr != nil:
		return "", fmt.Errorf("reload not delivered since %s: %v", in.reloadFailed.Format(time.RFC3339), in.reloadErr)
	case in.verifyErr != nil:
		return "", in.verifyErr
	case in.apiDown != "":
		note = "last-known-good configuration in use: API unreachable: " + in.apiDown
	case !in.synced:
		note = "last-known-good configuration in use: API caches not synced yet"
	case in.backends == 0 && in.keptReason != "":
		note = "last-known-good configuration in use: " + in.keptReason
	case in.backends == 0:
		return "", fmt.Errorf("no control-plane backend")
	case !in.failingSince.IsZero():
		note = fmt.Sprintf("last-known-good configuration in use: API requests failing since %s (last: %s)",
			in.failingSince.UTC().Format(time.RFC3339), in.failingLast)
	}
	if in.disc.Mode == discovery.ModeDegraded {
		note = strings.TrimPrefix(note+"; "+in.disc.Describe(), "; ")
	}
	return note, nil
}

func (m *Monitor) healthMux() *http.ServeMux {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, note string, err error) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		switch {
		case err != nil:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
		case note != "":
			fmt.Fprintln(w, "ok:", note)
		default:
			fmt.Fprintln(w, "ok")
		}
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, "", m.health.healthy(time.Now(), m.cfg.CheckInterval))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		note, err := m.health.ready()
		reply(w, note, err)
	})
	mux.Handle("/metrics", promhttp.HandlerFor(m.metrics.Registry, promhttp.HandlerOpts{}))
	return mux
}
