package reload

import (
	"context"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Result describes one delivery attempt, for metrics and readiness.
type Result struct {
	Err      error
	Attempt  int // 1 for the first try of a pending reload
	Finished time.Time
}

// Notifier delivers reload requests. Requests made while one is pending
// collapse into it: haproxy reads the file on disk, so one reload after the
// last write is all that is needed.
type Notifier struct {
	Path       string
	Timeout    time.Duration // per attempt
	MinBackoff time.Duration
	MaxBackoff time.Duration
	Log        logrus.FieldLogger
	// OnResult, if set, is called after every attempt.
	OnResult func(Result)

	mu      sync.Mutex
	pending bool
	wake    chan struct{}
}

// NewNotifier returns a Notifier with production defaults for path.
func NewNotifier(path string, log logrus.FieldLogger) *Notifier {
	return &Notifier{
		Path: path, Timeout: 2 * time.Second,
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second,
		Log: log, wake: make(chan struct{}, 1),
	}
}

// Request asks for a reload; it never blocks.
func (n *Notifier) Request() {
	n.mu.Lock()
	n.pending = true
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Pending reports whether a requested reload has not been delivered yet.
func (n *Notifier) Pending() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pending
}

// Run delivers requests until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		}
		n.deliver(ctx)
	}
}

func (n *Notifier) deliver(ctx context.Context) {
	if !n.Pending() {
		return // a wake-up left over from a request an earlier send covered
	}
	backoff := n.MinBackoff
	for attempt := 1; ; attempt++ {
		n.mu.Lock()
		// Clear before sending: a request that arrives during the send must
		// cause another reload, since it may follow a newer write.
		n.pending = false
		n.mu.Unlock()

		err := Send(ctx, n.Path, n.Timeout)
		res := Result{Err: err, Attempt: attempt, Finished: time.Now()}
		if n.OnResult != nil {
			n.OnResult(res)
		}
		if err == nil {
			n.Log.WithFields(logrus.Fields{"socket": n.Path, "attempt": attempt}).Info("reload delivered")
			return
		}
		n.mu.Lock()
		n.pending = true
		n.mu.Unlock()
		if attempt == 1 || attempt%10 == 0 {
			n.Log.WithFields(logrus.Fields{"socket": n.Path, "attempt": attempt, "retry_in": backoff}).WithError(err).Warn("reload not delivered, will retry")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff *= 2
		if backoff > n.MaxBackoff {
			backoff = n.MaxBackoff
		}
	}
}
