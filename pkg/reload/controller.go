package reload

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxycfg"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
)

// Target is a configuration haproxy must serve.
type Target struct {
	// Config is the file's contents: what haproxy loads on a reload.
	Config []byte
	// EventAt is the first cluster event behind it; zero when none.
	EventAt time.Time
	// Written says the file just changed, so haproxy must reload. When false
	// (the file was on disk already, at start-up) haproxy may be serving it:
	// it is checked first and reloaded only when it serves something else.
	Written bool
}

// Kind says what an Event reports.
type Kind int

const (
	// Delivered: the reload line went out on the reloader's socket.
	Delivered Kind = iota
	// DeliveryFailed: the socket did not take it; it is retried with backoff.
	DeliveryFailed
	// Serving: haproxy's runtime API shows exactly the target's servers.
	Serving
	// NotServing: a delivered reload did not show within VerifyTimeout (the
	// reloader may have dropped it); the reload is sent again.
	NotServing
	// Unverifiable: there is no runtime API socket to check with (a
	// template without one); the reload is taken as done.
	Unverifiable
	// Stale: at start-up haproxy serves other servers than the file on disk
	// (the monitor died between a write and its reload); reloading.
	Stale
	// Sampled: the servers' health as haproxy sees it, every SampleInterval.
	Sampled
)

func (k Kind) String() string {
	return [...]string{"delivered", "delivery-failed", "serving", "not-serving", "unverifiable", "stale", "sampled"}[k]
}

// Event is one outcome, reported to the monitor's loop in order.
type Event struct {
	Kind Kind
	At   time.Time
	Err  error
	// Attempt numbers the tries of one delivery (Delivered, DeliveryFailed).
	Attempt int
	// EventAt is the first cluster event behind a Delivered reload.
	EventAt time.Time
	// SentAt is when the reload that Serving or NotServing is about went
	// out; zero for a configuration found on disk.
	SentAt time.Time
	// Up and Down count servers (Sampled, when Err is nil).
	Up, Down int
}

// Options configure a Controller; zero durations take the defaults.
type Options struct {
	// Socket is the reloader's unix socket.
	Socket string
	// RuntimeSocket is a haproxy runtime API socket (level user suffices)
	// used to confirm reloads and sample health; empty disables both.
	RuntimeSocket string
	// VerifyTimeout bounds how long a delivered reload may take to show.
	VerifyTimeout time.Duration
	// SampleInterval is how often the servers' health is sampled.
	SampleInterval time.Duration
	// SendTimeout bounds one delivery attempt.
	SendTimeout time.Duration
	// MinBackoff and MaxBackoff space the retries of a failed delivery.
	MinBackoff, MaxBackoff time.Duration
}

const pollInterval = 25 * time.Millisecond

// Controller gets haproxy to serve the latest Target: it delivers the
// reload, confirms in the runtime API that haproxy serves the target's
// servers, and sends the reload again when it does not. It owns that whole
// flow; its results go out on Events, nothing is called back.
type Controller struct {
	opts   Options
	events chan Event
	wake   chan struct{}

	mu      sync.Mutex
	pending *Target
}

// New returns a Controller; Run starts it.
func New(opts Options) *Controller {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.VerifyTimeout, 10*time.Second)
	def(&opts.SampleInterval, 6*time.Second)
	def(&opts.SendTimeout, 2*time.Second)
	def(&opts.MinBackoff, 100*time.Millisecond)
	def(&opts.MaxBackoff, 5*time.Second)
	return &Controller{opts: opts, events: make(chan Event, 64), wake: make(chan struct{}, 1)}
}

// Events delivers the outcomes; the monitor's loop reads them.
func (c *Controller) Events() <-chan Event { return c.events }

// Serve asks for t to be served; it never blocks. Targets not yet taken up
// merge: the newest config, the earliest event, written if any was.
func (c *Controller) Serve(t Target) {
	c.mu.Lock()
	if p := c.pending; p != nil {
		t.Written = t.Written || p.Written
		if t.EventAt.IsZero() || (!p.EventAt.IsZero() && p.EventAt.Before(t.EventAt)) {
			t.EventAt = p.EventAt
		}
	}
	c.pending = &t
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// state is the Run goroutine's own.
type state struct {
	target   Target
	expected []haproxycfg.Server
	send     bool      // a reload is owed
	eventAt  time.Time // the earliest event behind the owed reload
	attempt  int
	retryAt  time.Time
	backoff  time.Duration
	sentAt   time.Time // a delivered reload awaits confirmation
	checking time.Time // a configuration found on disk is being checked
	nextPoll time.Time
	sampleAt time.Time
}

// Run works until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	s := &state{backoff: c.opts.MinBackoff, sampleAt: time.Now()}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.act(ctx, s)
		if ctx.Err() != nil {
			return
		}
		timer.Reset(c.next(s))
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
			c.take(s)
		case <-timer.C:
		}
	}
}

func (c *Controller) take(s *state) {
	c.mu.Lock()
	t := c.pending
	c.pending = nil
	c.mu.Unlock()
	if t == nil || (!t.Written && bytes.Equal(t.Config, s.target.Config)) {
		return
	}
	s.target, s.expected = *t, haproxycfg.Servers(t.Config)
	now := time.Now()
	if !t.Written {
		s.checking, s.nextPoll = now, now
		return
	}
	if !s.send {
		s.send, s.retryAt = true, now
	}
	if s.eventAt.IsZero() || (!t.EventAt.IsZero() && t.EventAt.Before(s.eventAt)) {
		s.eventAt = t.EventAt
	}
	s.checking = time.Time{}
}

// next is how long until something is due.
func (c *Controller) next(s *state) time.Duration {
	now := time.Now()
	due := now.Add(time.Hour)
	if s.send && s.retryAt.Before(due) {
		due = s.retryAt
	}
	if c.confirming(s) && s.nextPoll.Before(due) {
		due = s.nextPoll
	}
	if c.opts.RuntimeSocket != "" && s.sampleAt.Before(due) {
		due = s.sampleAt
	}
	return max(due.Sub(now), 0)
}

func (c *Controller) confirming(s *state) bool {
	return c.opts.RuntimeSocket != "" && (!s.sentAt.IsZero() || !s.checking.IsZero())
}

// act does whatever is due: deliver, confirm, sample.
func (c *Controller) act(ctx context.Context, s *state) {
	if s.send && !time.Now().Before(s.retryAt) {
		c.deliver(ctx, s)
	}
	now := time.Now()
	if c.confirming(s) && !now.Before(s.nextPoll) {
		s.nextPoll = now.Add(pollInterval)
		servers, err := runtimeapi.ServersState(ctx, c.opts.RuntimeSocket, "")
		c.confirm(ctx, s, servers, err)
		if !now.Before(s.sampleAt) {
			c.sampled(ctx, s, servers, err)
		}
	}
	if c.opts.RuntimeSocket != "" && !now.Before(s.sampleAt) {
		servers, err := runtimeapi.ServersState(ctx, c.opts.RuntimeSocket, "")
		c.sampled(ctx, s, servers, err)
	}
}

func (c *Controller) deliver(ctx context.Context, s *state) {
	s.attempt++
	err := Send(ctx, c.opts.Socket, c.opts.SendTimeout)
	now := time.Now()
	if err != nil {
		c.emit(ctx, Event{Kind: DeliveryFailed, At: now, Err: err, Attempt: s.attempt})
		s.retryAt = now.Add(s.backoff)
		s.backoff = min(2*s.backoff, c.opts.MaxBackoff)
		return
	}
	c.emit(ctx, Event{Kind: Delivered, At: now, Attempt: s.attempt, EventAt: s.eventAt})
	s.send, s.eventAt, s.attempt, s.backoff = false, time.Time{}, 0, c.opts.MinBackoff
	s.checking, s.nextPoll = time.Time{}, now
	if c.opts.RuntimeSocket != "" {
		s.sentAt = now
	}
}

// confirm settles a pending confirmation or check from one reading.
func (c *Controller) confirm(ctx context.Context, s *state, servers []runtimeapi.Server, err error) {
	now := time.Now()
	since := s.sentAt
	if since.IsZero() {
		since = s.checking
	}
	switch {
	case err == nil && Serves(servers, s.expected):
		c.emit(ctx, Event{Kind: Serving, At: now, SentAt: s.sentAt})
		s.sentAt, s.checking = time.Time{}, time.Time{}
	case err == nil && !s.checking.IsZero():
		c.emit(ctx, Event{Kind: Stale, At: now})
		s.checking, s.send, s.retryAt = time.Time{}, true, now
	case now.Sub(since) <= c.opts.VerifyTimeout:
		// haproxy may still be starting or loading: look again.
	case errors.Is(err, fs.ErrNotExist) && !socketExists(c.opts.RuntimeSocket):
		c.emit(ctx, Event{Kind: Unverifiable, At: now, Err: err, SentAt: s.sentAt})
		s.sentAt, s.checking = time.Time{}, time.Time{}
	default:
		c.emit(ctx, Event{Kind: NotServing, At: now, Err: err, SentAt: s.sentAt})
		s.sentAt, s.checking, s.send, s.retryAt = time.Time{}, time.Time{}, true, now
	}
}

func (c *Controller) sampled(ctx context.Context, s *state, servers []runtimeapi.Server, err error) {
	s.sampleAt = time.Now().Add(c.opts.SampleInterval)
	ev := Event{Kind: Sampled, At: time.Now(), Err: err}
	for _, sv := range servers {
		if sv.Up {
			ev.Up++
		} else {
			ev.Down++
		}
	}
	c.emit(ctx, ev)
}

func (c *Controller) emit(ctx context.Context, ev Event) {
	select {
	case c.events <- ev:
	case <-ctx.Done():
	}
}

// Serves reports whether haproxy's servers are exactly the configuration's:
// the same backends, names, addresses and ports. A server named by host
// name is matched on its name only (haproxy shows the resolved address).
func Serves(servers []runtimeapi.Server, expected []haproxycfg.Server) bool {
	if len(servers) != len(expected) {
		return false
	}
	type key struct{ backend, name string }
	have := make(map[key]runtimeapi.Server, len(servers))
	for _, s := range servers {
		have[key{s.Backend, s.Name}] = s
	}
	for _, e := range expected {
		s, ok := have[key{e.Section, e.Name}]
		if !ok || s.Port != itoa(int(e.Port)) {
			return false
		}
		if isIP(e.Address) && s.Addr != e.Address {
			return false
		}
	}
	return true
}

func socketExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode()&fs.ModeSocket != 0
}
