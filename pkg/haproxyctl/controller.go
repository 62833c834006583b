package haproxyctl

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"sync"
	"time"

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
}

const pollInterval = 25 * time.Millisecond

// Controller makes the file and haproxy serve the latest Target. It owns
// the whole flow: planning (MakePlan), runtime changes, the atomic write,
// the state file, the reload and its delivery retries, confirmation through
// the runtime API and re-sending, drains and the delayed removal of servers.
// Its outcomes go out on Events; nothing is called back.
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
	def(&opts.RetryMin, time.Second)
	def(&opts.RetryMax, 30*time.Second)
	if opts.StatsSocket == "" {
		opts.StatsSocket = opts.AdminSocket
	}
	return &Controller{opts: opts, events: make(chan Event, 256), wake: make(chan struct{}, 1)}
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

// retiree is a server removed from the file that haproxy keeps draining.
type retiree struct {
	backend, server, addr string
	port                  uint16
	removeAt              time.Time
	listed                bool
	sessions              []string
	nextShut              time.Time
	every                 time.Duration
}

// progress is the Run goroutine's own.
type progress struct {
	target  *Target
	dirty   bool   // target not applied yet
	written []byte // the file's contents as last written or found
	running []byte // what haproxy serves, as far as known; nil: unknown
	invalid []byte // a config that failed validation: not applied at runtime again

	writeBackoff       time.Duration
	retryWriteAt       time.Time
	send               bool      // a reload is owed
	eventAt            time.Time // the earliest event behind the owed change
	attempt            int
	retryAt            time.Time
	backoff            time.Duration
	sent               []byte    // the file a delivered reload loads
	sentAt, checking   time.Time // a confirmation is pending
	nextPoll, sampleAt time.Time
	retiring           map[string]*retiree
	drained            map[string]bool
}

// Run works until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	s := &progress{backoff: c.opts.MinBackoff, writeBackoff: c.opts.RetryMin, sampleAt: time.Now(),
		retiring: map[string]*retiree{}, drained: map[string]bool{}}
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

func (c *Controller) take(s *progress) {
	c.mu.Lock()
	t := c.pending
	c.pending = nil
	c.mu.Unlock()
	if t == nil {
		return
	}
	if !t.EventAt.IsZero() && (s.eventAt.IsZero() || t.EventAt.Before(s.eventAt)) {
		s.eventAt = t.EventAt
	}
	s.target, s.dirty, s.retryWriteAt = t, true, time.Time{}
}

// next is how long until something is due.
func (c *Controller) next(s *progress) time.Duration {
	now := time.Now()
	due := now.Add(time.Hour)
	at := func(t time.Time, when bool) {
		if when && t.Before(due) {
			due = t
		}
	}
	at(s.retryWriteAt, s.dirty)
	at(s.retryAt, s.send)
	at(s.nextPoll, c.confirming(s))
	at(s.sampleAt, c.opts.StatsSocket != "")
	for _, r := range s.retiring {
		at(r.removeAt, !r.listed)
		at(r.nextShut, r.listed)
	}
	return max(due.Sub(now), 0)
}

func (c *Controller) confirming(s *progress) bool {
	return c.opts.StatsSocket != "" && (!s.sentAt.IsZero() || !s.checking.IsZero())
}

// act does whatever is due.
func (c *Controller) act(ctx context.Context, s *progress) {
	if s.dirty && !time.Now().Before(s.retryWriteAt) {
		c.converge(ctx, s)
	}
	if s.target != nil {
		c.drains(ctx, s)
	}
	c.retire(ctx, s)
	if s.send && !time.Now().Before(s.retryAt) {
		c.deliver(ctx, s)
	}
	now := time.Now()
	if c.confirming(s) && !now.Before(s.nextPoll) {
		s.nextPoll = now.Add(pollInterval)
		servers, err := runtimeapi.ServersState(ctx, c.opts.StatsSocket, "")
		c.confirm(ctx, s, servers, err)
		if !now.Before(s.sampleAt) {
			c.sampled(ctx, s, servers, err)
		}
	}
	if c.opts.StatsSocket != "" && !now.Before(s.sampleAt) {
		servers, err := runtimeapi.ServersState(ctx, c.opts.StatsSocket, "")
		c.sampled(ctx, s, servers, err)
	}
}

// converge brings the file, then haproxy, to the target: through the runtime
// API when the plan allows (haproxy first, the file right after), else by
// writing the file and reloading.
func (c *Controller) converge(ctx context.Context, s *progress) {
	cfg := s.target.Config
	disk, err := c.opts.File.Read()
	if err != nil {
		c.writeFailed(ctx, s, err)
		return
	}
	if s.written == nil {
		s.written = disk
	}
	if bytes.Equal(disk, cfg) {
		s.dirty, s.writeBackoff = false, c.opts.RetryMin
		c.emit(ctx, Event{Kind: Current, At: time.Now()})
		if s.running == nil && !s.send && s.sentAt.IsZero() {
			// Found on disk at start-up: haproxy may serve it already.
			s.checking, s.nextPoll = time.Now(), time.Now()
		}
		return
	}
	base := s.running
	if base == nil {
		base = disk
	}
	plan := MakePlan(base, cfg)
	reason := plan.Reason
	switch {
	case plan.Reload:
	case c.opts.AdminSocket == "":
		reason = "no admin runtime API socket"
	case s.send:
		reason = "a reload is pending: it loads this file"
	case bytes.Equal(cfg, s.invalid):
		reason = "this configuration failed validation before"
	default:
		// The candidate is written first: a full or read-only disk fails
		// before haproxy is touched.
		staged, err := c.opts.File.Stage(cfg)
		if err != nil {
			c.writeFailed(ctx, s, err)
			return
		}
		defer staged.Discard()
		if err = c.changeAtRuntime(ctx, s, base, cfg, plan); err == nil {
			c.commitAfterRuntime(ctx, s, staged, cfg)
			return
		}
		c.emit(ctx, Event{Kind: RuntimeFailed, At: time.Now(), Err: err})
		reason = err.Error()
	}
	changed, err := c.opts.File.Apply(ctx, cfg)
	if err != nil && !changed {
		c.writeFailed(ctx, s, err)
		return
	}
	s.written, s.dirty, s.writeBackoff = cfg, false, c.opts.RetryMin
	c.emit(ctx, Event{Kind: Written, At: time.Now(), Path: PathReload, Reason: reason, Err: err, Stage: apply.Stage(err), Config: cfg})
	c.writeStateFile(ctx, cfg)
	s.send, s.checking = true, time.Time{}
	if s.retryAt.IsZero() || s.attempt == 0 {
		s.retryAt = time.Now()
	}
	// The new haproxy loads the file: servers being retired are gone there.
	s.retiring = map[string]*retiree{}
}

// commitAfterRuntime puts the file haproxy now serves in place. A file that
// does not validate must not stay, and haproxy must not run what no file
// says: the old file stays and haproxy reloads it.
func (c *Controller) commitAfterRuntime(ctx context.Context, s *progress, staged *apply.Staged, cfg []byte) {
	err := staged.Validate(ctx)
	replaced := false
	if err == nil {
		replaced, err = staged.Commit()
	}
	if err != nil && !replaced {
		if apply.Stage(err) == apply.StageValidate {
			s.invalid = cfg
		}
		c.writeFailed(ctx, s, err)
		s.running, s.send, s.retiring = nil, true, map[string]*retiree{}
		if s.retryAt.IsZero() || s.attempt == 0 {
			s.retryAt = time.Now()
		}
		return
	}
	s.written, s.running, s.dirty, s.writeBackoff = cfg, cfg, false, c.opts.RetryMin
	c.emit(ctx, Event{Kind: Written, At: time.Now(), Path: PathRuntime, Err: err, Stage: apply.Stage(err), Config: cfg})
}

func (c *Controller) writeFailed(ctx context.Context, s *progress, err error) {
	c.emit(ctx, Event{Kind: WriteFailed, At: time.Now(), Err: err, Stage: apply.Stage(err)})
	s.retryWriteAt = time.Now().Add(s.writeBackoff)
	s.writeBackoff = min(2*s.writeBackoff, c.opts.RetryMax)
}

// changeAtRuntime applies plan to haproxy, which must serve base now, and checks
// that it then serves cfg. Any failure leaves the reload path to finish.
func (c *Controller) changeAtRuntime(ctx context.Context, s *progress, base, cfg []byte, plan Plan) error {
	servers, err := runtimeapi.ServersState(ctx, c.opts.StatsSocket, "")
	if err != nil {
		return err
	}
	if !Serves(servers, c.expected(s, base)) {
		return errors.New("haproxy does not serve the configuration the change starts from")
	}
	if !s.sentAt.IsZero() && bytes.Equal(base, s.sent) {
		// That was the confirmation of the reload still awaited.
		c.emit(ctx, Event{Kind: Serving, At: time.Now(), SentAt: s.sentAt, Path: PathReload})
		s.sentAt, s.drained = time.Time{}, map[string]bool{}
	}
	for _, op := range plan.Ops {
		key := op.Backend + "/" + op.Server
		cmds := op.Commands()
		if r, ok := s.retiring[key]; ok && op.Kind == OpAdd {
			// Back before its removal: it is still there, draining.
			cmds = []string{"set server " + key + " addr " + op.Address + " port " + itoa(int(op.Port)), "set server " + key + " state ready"}
			if r.addr != op.Address || r.port != op.Port {
				cmds = append(cmds[:1], "shutdown sessions server "+key, cmds[1])
			}
			delete(s.retiring, key)
		}
		for _, cmd := range cmds {
			if err := runCommand(ctx, c.opts.AdminSocket, cmd); err != nil {
				return err
			}
		}
		if op.Kind == OpRetire {
			s.retiring[key] = &retiree{backend: op.Backend, server: op.Server, addr: op.Address, port: op.Port,
				removeAt: time.Now().Add(c.opts.Grace)}
		}
	}
	if servers, err = runtimeapi.ServersState(ctx, c.opts.StatsSocket, ""); err != nil {
		return err
	}
	if !Serves(servers, c.expected(s, cfg)) {
		return errors.New("haproxy does not show the runtime changes")
	}
	now := time.Now()
	c.emit(ctx, Event{Kind: RuntimeApplied, At: now, EventAt: s.eventAt})
	c.emit(ctx, Event{Kind: Serving, At: now, Path: PathRuntime})
	s.eventAt = time.Time{}
	return nil
}

// expected is what haproxy shows while serving cfg: its servers and those
// still draining before removal.
func (c *Controller) expected(s *progress, cfg []byte) []haproxycfg.Server {
	out := haproxycfg.Servers(cfg)
	for _, r := range s.retiring {
		out = append(out, haproxycfg.Server{Section: r.backend, Name: r.server, Address: r.addr, Port: r.port})
	}
	return out
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
	c.emit(ctx, Event{Kind: StateFileWritten, At: time.Now(), Err: err})
}

func (c *Controller) deliver(ctx context.Context, s *progress) {
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
	s.send, s.eventAt, s.attempt, s.backoff, s.retryAt = false, time.Time{}, 0, c.opts.MinBackoff, time.Time{}
	s.sent, s.checking, s.nextPoll = s.written, time.Time{}, now
	if c.opts.StatsSocket != "" {
		s.sentAt = now
	} else {
		s.running = s.written
	}
}

// confirm settles a pending confirmation or start-up check from one reading.
func (c *Controller) confirm(ctx context.Context, s *progress, servers []runtimeapi.Server, err error) {
	now := time.Now()
	since, cfg := s.sentAt, s.sent
	if since.IsZero() {
		since, cfg = s.checking, s.written
	}
	done := func(running []byte) {
		s.sentAt, s.checking = time.Time{}, time.Time{}
		s.running = running
		// A new haproxy process has none of the drains.
		s.drained = map[string]bool{}
	}
	switch {
	case err == nil && Serves(servers, haproxycfg.Servers(cfg)):
		path := PathReload
		if s.sentAt.IsZero() {
			path = ""
		}
		c.emit(ctx, Event{Kind: Serving, At: now, SentAt: s.sentAt, Path: path})
		done(cfg)
	case err == nil && !s.checking.IsZero():
		c.emit(ctx, Event{Kind: Stale, At: now})
		s.checking, s.send, s.retryAt = time.Time{}, true, now
	case now.Sub(since) <= c.opts.VerifyTimeout:
		// haproxy may still be starting or loading: look again.
	case errors.Is(err, fs.ErrNotExist) && !socketExists(c.opts.StatsSocket):
		c.emit(ctx, Event{Kind: Unverifiable, At: now, Err: err, SentAt: s.sentAt})
		done(cfg)
	default:
		c.emit(ctx, Event{Kind: NotServing, At: now, Err: err, SentAt: s.sentAt})
		s.sentAt, s.checking, s.send, s.retryAt = time.Time{}, time.Time{}, true, now
	}
}

// drains puts the target's Drain servers in drain and the others the
// controller drained back to ready, on every backend that has them.
func (c *Controller) drains(ctx context.Context, s *progress) {
	if c.opts.AdminSocket == "" || s.running == nil || s.send || !s.sentAt.IsZero() {
		return // nothing to change it with, or haproxy is being replaced
	}
	want := map[string]bool{}
	for _, n := range s.target.Drain {
		want[n] = true
	}
	if sameKeys(want, s.drained) {
		return // the usual case: nothing to change, nothing to read
	}
	sections := map[string][]string{}
	for _, sv := range haproxycfg.Servers(s.running) {
		sections[sv.Name] = append(sections[sv.Name], sv.Section)
	}
	set := func(name string, on bool) {
		state := "ready"
		if on {
			state = "drain"
		}
		var err error
		for _, sec := range sections[name] {
			if e := runCommand(ctx, c.opts.AdminSocket, "set server "+sec+"/"+name+" state "+state); e != nil {
				err = e
			}
		}
		if on {
			s.drained[name] = true
		} else {
			delete(s.drained, name)
		}
		c.emit(ctx, Event{Kind: Drained, At: time.Now(), Server: name, On: on, Err: err})
	}
	for n := range want {
		if !s.drained[n] && len(sections[n]) > 0 && token.MatchString(n) {
			set(n, true)
		}
	}
	for n := range s.drained {
		if !want[n] {
			set(n, false)
		}
	}
}

func sameKeys(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// retire ends the servers whose grace period is over: their sessions one by
// one, spread with jitter, then the server.
func (c *Controller) retire(ctx context.Context, s *progress) {
	now := time.Now()
	for key, r := range s.retiring {
		if now.Before(r.removeAt) || (r.listed && now.Before(r.nextShut)) {
			continue
		}
		if !r.listed {
			r.listed = true
			r.sessions, _ = sessions(ctx, c.opts.AdminSocket, r.backend, r.server)
			if n := len(r.sessions); n > 0 {
				r.every = c.opts.Spread / time.Duration(n)
			}
			r.nextShut = now
		}
		if len(r.sessions) > 0 {
			_ = runCommand(ctx, c.opts.AdminSocket, "shutdown session "+r.sessions[0])
			r.sessions = r.sessions[1:]
			r.nextShut = now.Add(time.Duration(float64(r.every) * (0.5 + rand.Float64())))
			continue
		}
		var err error
		for _, cmd := range RemoveCommands(r.backend, r.server) {
			if e := runCommand(ctx, c.opts.AdminSocket, cmd); e != nil && err == nil {
				err = e
			}
		}
		delete(s.retiring, key)
		c.emit(ctx, Event{Kind: Retired, At: now, Server: key, Err: err})
	}
}

func (c *Controller) sampled(ctx context.Context, s *progress, servers []runtimeapi.Server, err error) {
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
