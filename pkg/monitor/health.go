package monitor

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/reload"
)

// state is what the health endpoints report; the loop and the notifier write it.
type state struct {
	mu           sync.Mutex
	lastBeat     time.Time
	synced       bool
	backends     int
	applyErr     error
	keptReason   string
	reloadErr    error
	reloadFailed time.Time // start of the current delivery failure streak
}

func newState() *state { return &state{lastBeat: time.Now()} }

func (s *state) beat() {
	s.mu.Lock()
	s.lastBeat = time.Now()
	s.mu.Unlock()
}

func (s *state) setSynced() {
	s.mu.Lock()
	s.synced = true
	s.mu.Unlock()
}

func (s *state) setBackends(n int) {
	s.mu.Lock()
	s.backends = n
	s.mu.Unlock()
}

func (s *state) applied(err error, kept string) {
	s.mu.Lock()
	s.applyErr, s.keptReason = err, kept
	s.mu.Unlock()
}

func (s *state) reloadResult(r reload.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reloadErr = r.Err
	switch {
	case r.Err == nil:
		s.reloadFailed = time.Time{}
	case s.reloadFailed.IsZero():
		s.reloadFailed = r.Finished
	}
}

// healthy: the loop has gone round recently. The loop wakes at least every
// check interval, so three missed intervals mean it is stuck.
func (s *state) healthy(interval time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if age := time.Since(s.lastBeat); age > 3*interval+time.Second {
		return fmt.Errorf("control loop has not run for %v", age.Round(time.Second))
	}
	return nil
}

// ready: the configuration reflects the cluster (or the last-known-good one
// is in use) and haproxy was told about it.
func (s *state) ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.synced:
		return fmt.Errorf("API caches not synced yet")
	case s.applyErr != nil:
		return fmt.Errorf("configuration not applied: %v", s.applyErr)
	case s.reloadErr != nil:
		return fmt.Errorf("reload not delivered since %s: %v", s.reloadFailed.Format(time.RFC3339), s.reloadErr)
	case s.backends == 0 && s.keptReason == "":
		return fmt.Errorf("no control-plane backend")
	}
	return nil
}

func (m *Monitor) healthMux() *http.ServeMux {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, err error) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, m.state.healthy(m.cfg.CheckInterval))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		reply(w, m.state.ready())
	})
	return mux
}
