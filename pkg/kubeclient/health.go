package kubeclient

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// Health follows the API's answers on the client's transport: a stretch of
// failures (no response, 5xx, 429, 401) after the caches synced leaves the
// configuration on disk serving, but readiness and metrics must say that the
// API is failing, since when and how. 403 and 404 are answers about a
// resource (discovery handles them), not about the API.
type Health struct {
	mu      sync.Mutex
	since   time.Time // first failure after the last success; zero while fine
	lastErr string
}

// Wrap instruments a transport; use it with rest.Config.Wrap.
func (h *Health) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		switch {
		case err != nil && errors.Is(err, context.Canceled):
		case err != nil:
			h.fail(err.Error())
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusUnauthorized:
			h.fail(resp.Status)
		case resp.StatusCode < 400:
			h.ok()
		}
		return resp, err
	})
}

func (h *Health) fail(why string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since.IsZero() {
		h.since = time.Now()
	}
	h.lastErr = why
}

func (h *Health) ok() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.since, h.lastErr = time.Time{}, ""
}

// Failing returns when the current stretch of failures began and the last
// one; a zero time while the API answers.
func (h *Health) Failing() (since time.Time, last string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.since, h.lastErr
}
