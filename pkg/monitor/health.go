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
// The note qualifies a ready answer.
func (s *health) ready() (note string, err error) {
	disc := s.discovery()
	s.mu.Lock()
	defer s.mu.Unlock()
	note, err = s.readyLocked(disc)
	if err == nil && disc.Mode == discovery.ModeDegraded {
		note = strings.TrimPrefix(note+"; "+disc.Describe(), "; ")
	}
	return note, err
}

func (s *health) readyLocked(disc discovery.Status) (note string, err error) {
	switch {
	case disc.NothingReadable():
		return "", errors.New(disc.Describe())
	case s.templateErr != nil:
		return "", fmt.Errorf("template cannot be used, keeping the configuration from the previous one: %v", s.templateErr)
	case !s.synced && !s.onDisk:
		return "", fmt.Errorf("API caches not synced yet and no configuration on disk")
	case s.applyErr != nil:
		return "", fmt.Errorf("configuration not applied: %v", s.applyErr)
	case s.reloadErr != nil:
		return "", fmt.Errorf("reload not delivered since %s: %v", s.reloadFailed.Format(time.RFC3339), s.reloadErr)
	case s.verifyErr != nil:
		return "", s.verifyErr
	case s.apiDown() != "":
		return "last-known-good configuration in use: API unreachable: " + s.apiDown(), nil
	case !s.synced:
		return "last-known-good configuration in use: API caches not synced yet", nil
	case s.backends == 0 && s.keptReason != "":
		return "last-known-good configuration in use: " + s.keptReason, nil
	case s.backends == 0:
		return "", fmt.Errorf("no control-plane backend")
	}
	if since, last := s.apiFailing(); !since.IsZero() {
		return fmt.Sprintf("last-known-good configuration in use: API requests failing since %s (last: %s)", since.UTC().Format(time.RFC3339), last), nil
	}
	return "", nil
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
