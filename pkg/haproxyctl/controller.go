package haproxyctl

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/utils/clock"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/apply"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxycfg"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
)

// Target is what the file and haproxy must serve.
type Target struct {
	// Config is the rendered file.
	Config []byte
	// EventAt is the first cluster event behind it; zero when none.
	EventAt time.Time
	// Drain names servers to put in drain (no new connections; existing ones
	// go on): their apiserver is shutting down. Servers drained earlier and
	// not named any more go back to ready.
	Drain []string
}

// Paths by which haproxy takes a change.
const (
	PathRuntime = "runtime"
	PathReload  = "reload"
)

// Options configure a Controller; zero durations take the defaults.
type Options struct {
	// File is the configuration file haproxy loads.
	File *apply.File
	// Socket is the reloader's unix socket.
	Socket string
	// StatsSocket is a haproxy runtime API socket (level user suffices)
	// used to confirm what haproxy serves and sample health; empty disables
	// both.
	StatsSocket string
	// AdminSocket is an admin-level runtime API socket for changes without
	// a reload; empty means every change reloads.
	AdminSocket string
	// VerifyTimeout bounds how long a delivered reload may take to show.
	VerifyTimeout time.Duration
	// SampleInterval is how often the servers' health is sampled.
	SampleInterval time.Duration
	// SendTimeout bounds one delivery attempt.
	SendTimeout time.Duration
	// MinBackoff and MaxBackoff space the retries of a failed delivery;
	// RetryMin and RetryMax those of a failed write.
	MinBackoff, MaxBackoff time.Duration
	RetryMin, RetryMax     time.Duration
	// Grace is how long a removed server drains before its remaining
	// sessions are shut; they are shut one by one over Spread, with jitter,
	// so clients do not all reconnect at once. Zero: at once.
	Grace, Spread time.Duration
	// Clock is the time source; nil: the real clock.
	Clock clock.WithTicker
	// Log, if set, gets a line for every phase the controller moves to.
	Log logrus.FieldLogger
}

// Controller makes the file and haproxy serve the latest Target. Its rules
// are the machine's (machine.go: a named phase and pure steps); the
// Controller is the driver that owns the I/O: the file, haproxy's runtime
// API, the reloader's socket, the clock. Outcomes go out on Events, with a
// Sampler's health samples; nothing is called back.
type Controller struct {
	opts   Options
	clock  clock.WithTicker
	events chan Event
	wake   chan struct{}

	mu      sync.Mutex
	pending *Target
}

// New returns a Controller; Run starts it.
func New(opts Options) *Controller {
	opts = opts.withDefaults()
	c := &Controller{opts: opts, clock: opts.Clock, events: make(chan Event, 256), wake: make(chan struct{}, 1)}
	if c.clock == nil {
		c.clock = clock.RealClock{}
	}
	return c
}

// withDefaults fills in the durations left zero (or negative), and the
// stats socket from the admin socket.
func (opts Options) withDefaults() Options {
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
	def(&opts.RetryMin, time.Second)
	def(&opts.RetryMax, 30*time.Second)
	if opts.StatsSocket == "" {
		opts.StatsSocket = opts.AdminSocket
	}
	return opts
}

// Events delivers the outcomes; the monitor's loop reads them.
func (c *Controller) Events() <-chan Event { return c.events }

// Serve asks for t to be served; it never blocks. Targets not yet taken up
// merge: the newest config and drains, the earliest event.
func (c *Controller) Serve(t Target) {
	c.mu.Lock()
	if p := c.pending; p != nil && !p.EventAt.IsZero() && (t.EventAt.IsZero() || p.EventAt.Before(t.EventAt)) {
		t.EventAt = p.EventAt
	}
	c.pending = &t
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	m := newMachine(settings{runtime: c.opts.AdminSocket != "", confirm: c.opts.StatsSocket != "",
		verifyTimeout: c.opts.VerifyTimeout, minBackoff: c.opts.MinBackoff, maxBackoff: c.opts.MaxBackoff,
		retryMin: c.opts.RetryMin, retryMax: c.opts.RetryMax, grace: c.opts.Grace, spread: c.opts.Spread,
		jitter: rand.Float64})
	if c.opts.StatsSocket != "" {
		s := &Sampler{Socket: c.opts.StatsSocket, Interval: c.opts.SampleInterval, Clock: c.clock}
		go s.Run(ctx, c.emit)
	}
	timer := c.clock.NewTimer(time.Hour)
	defer timer.Stop()
	phase := m.phase
	for {
		if at, ok := m.next(); ok {
			timer.Reset(max(at.Sub(c.clock.Now()), 0))
		} else {
			timer.Reset(time.Hour)
		}
		var effects []any
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
			if t := c.take(); t != nil {
				effects = m.serve(*t, c.clock.Now())
			}
		case <-timer.C():
			effects = m.tick(c.clock.Now())
		}
		c.carryOut(ctx, m, effects)
		if m.phase != phase && c.opts.Log != nil {
			c.opts.Log.WithFields(logrus.Fields{"from": phase.String(), "to": m.phase.String()}).Info("haproxy: " + m.phase.String())
		}
		phase = m.phase
	}
}

func (c *Controller) take() *Target {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.pending
	c.pending = nil
	return t
}

// carryOut does the machine's effects in order; an effect's result goes
// back to the machine, and the effects it returns are done next.
func (c *Controller) carryOut(ctx context.Context, m *machine, effects []any) {
	for len(effects) > 0 {
		e := effects[0]
		effects = effects[1:]
		var more []any
		now := c.clock.Now
		switch e := e.(type) {
		case emit:
			c.emit(ctx, e.ev)
		case readFile:
			disk, err := c.opts.File.Read()
			more = m.fileRead(disk, err, now())
		case changeRuntime:
			more = m.runtimeDone(c.changeRuntime(ctx, e), now())
		case writeFile:
			changed, err := c.opts.File.Apply(ctx, e.cfg)
			more = m.fileWritten(e.cfg, e.reason, changed, err, now())
		case writeStateFile:
			c.writeStateFile(ctx, e.cfg)
		case sendReload:
			more = m.delivered(Send(ctx, c.opts.Socket, c.opts.SendTimeout), now())
		case readServers:
			servers, err := runtimeapi.ServersState(ctx, c.opts.StatsSocket, "")
			more = m.serversRead(servers, err, errors.Is(err, fs.ErrNotExist), now())
		case setDrain:
			var err error
			state := map[bool]string{true: "drain", false: "ready"}[e.on]
			for _, sec := range e.sections {
				if cerr := runCommand(ctx, c.opts.AdminSocket, "set server "+sec+"/"+e.server+" state "+state); cerr != nil {
					err = cerr
				}
			}
			more = m.drainSet(e.server, e.on, err, now())
		case listSessions:
			ids, _ := sessions(ctx, c.opts.AdminSocket, e.backend, e.server)
			more = m.sessionsListed(e.key, ids, now())
		case shutSession:
			_ = runCommand(ctx, c.opts.AdminSocket, "shutdown session "+e.id)
		case removeServer:
			var err error
			for _, cmd := range RemoveCommands(e.backend, e.server) {
				if cerr := runCommand(ctx, c.opts.AdminSocket, cmd); cerr != nil && err == nil {
					err = cerr
				}
			}
			more = m.serverRemoved(e.key, err, now())
		}
		effects = append(more, effects...)
	}
}

// changeRuntime carries out a runtime change: the candidate is staged
// first (a full or read-only disk fails before haproxy is touched), haproxy
// must serve the change's starting point, the commands run, haproxy must
// then show the new set, and the candidate is validated and renamed into
// place.
func (c *Controller) changeRuntime(ctx context.Context, ch changeRuntime) (r runtimeResult) {
	staged, err := c.opts.File.Stage(ch.cfg)
	if err != nil {
		return runtimeResult{stageErr: err}
	}
	defer staged.Discard()
	servers, err := runtimeapi.ServersState(ctx, c.opts.StatsSocket, "")
	if err != nil {
		return runtimeResult{err: err}
	}
	if !Serves(servers, ch.before) {
		return runtimeResult{err: errors.New("haproxy does not serve the configuration the change starts from")}
	}
	r.servedBase = true
	for _, cmd := range ch.commands {
		if r.err = runCommand(ctx, c.opts.AdminSocket, cmd); r.err != nil {
			return r
		}
	}
	if servers, r.err = runtimeapi.ServersState(ctx, c.opts.StatsSocket, ""); r.err != nil {
		return r
	}
	if !Serves(servers, ch.after) {
		r.err = errors.New("haproxy does not show the runtime changes")
		return r
	}
	if r.commitErr = staged.Validate(ctx); r.commitErr == nil {
		r.replaced, r.commitErr = staged.Commit()
	}
	return r
}

// writeStateFile saves haproxy's server states where the next haproxy loads
// them (the config's server-state-file), pruned to servers that keep their
// name and address, so health survives the reload.
func (c *Controller) writeStateFile(ctx context.Context, cfg []byte) {
	p := haproxycfg.Parse(cfg)
	if p.StateFile == "" || c.opts.StatsSocket == "" {
		return
	}
	out, err := runtimeapi.Command(ctx, c.opts.StatsSocket, "show servers state")
	if err == nil {
		_, err = (&apply.File{Path: p.StateFile, DefaultMode: 0o600}).Apply(ctx, []byte(PruneState(out, p.Servers)))
	}
	c.emit(ctx, Event{Kind: StateFileWritten, At: c.clock.Now(), Err: err})
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
