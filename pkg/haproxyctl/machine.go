package haproxyctl

import (
	"bytes"
	"errors"
	"slices"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/apply"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxycfg"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
)

// Phase is where haproxy stands with the file, as far as the controller
// knows.
type Phase int

const (
	// PhaseUnknown: nothing is known yet of what haproxy serves.
	PhaseUnknown Phase = iota
	// PhaseChecking: the file was found current at start-up; haproxy's runtime
	// API tells whether haproxy serves it (within the verify timeout).
	PhaseChecking
	// PhaseServing: haproxy serves the configuration the controller last saw it
	// serve.
	PhaseServing
	// PhaseReloadOwed: haproxy must load the file; the reload is sent, and sent
	// again with backoff while the reloader's socket does not take it.
	PhaseReloadOwed
	// PhaseConfirming: a reload was delivered; haproxy's runtime API must show
	// the file's servers within the verify timeout, or the reload is owed
	// again.
	PhaseConfirming
)

func (p Phase) String() string {
	return [...]string{"unknown", "checking", "serving", "reload-owed", "confirming"}[p]
}

// settings are what the machine's rules depend on.
type settings struct {
	// runtime: an admin socket exists, so membership changes may go
	// through haproxy's runtime API. confirm: a stats socket exists, so
	// reloads are confirmed and the start-up check made.
	runtime, confirm       bool
	verifyTimeout          time.Duration
	minBackoff, maxBackoff time.Duration
	retryMin, retryMax     time.Duration
	grace, spread          time.Duration
	// jitter is in [0, 1): it spreads the shutdown of a removed server's
	// sessions.
	jitter func() float64
}

// retiree is a server removed from the file that haproxy keeps draining
// until its grace period ends.
type retiree struct {
	backend, server, addr string
	port                  uint16
	removeAt              time.Time
	listed                bool     // its sessions were asked for
	sessions              []string // those not shut yet
	nextShut              time.Time
	every                 time.Duration
}

// machine is the reload controller's state and its every rule, with no I/O
// and no clock: each method takes an input (a new target, a moment passing,
// the result of an effect it asked for) and now, changes the state, and
// returns the effects the driver carries out, in order: events to emit and
// I/O whose results come back through the matching method.
type machine struct {
	s     settings
	phase Phase

	target  *Target
	dirty   bool   // the target is not applied yet
	written []byte // the file as last written or found
	running []byte // what haproxy serves while Serving
	sent    []byte // the file the delivered reload loads, while Confirming
	invalid []byte // a configuration that failed validation: never at runtime again
	eventAt time.Time
	change  *changeRuntime // the runtime change in progress

	writeBackoff time.Duration
	retryWriteAt time.Time
	attempt      int
	backoff      time.Duration
	retryAt      time.Time
	since        time.Time // when Checking or Confirming began
	nextPoll     time.Time

	retiring map[string]*retiree
	drained  map[string]bool
}

func newMachine(s settings) *machine {
	return &machine{s: s, backoff: s.minBackoff, writeBackoff: s.retryMin,
		retiring: map[string]*retiree{}, drained: map[string]bool{}}
}

// pollInterval is how often haproxy's runtime API is read while a reload
// or the start-up check waits for confirmation.
const pollInterval = 25 * time.Millisecond

// The effects. Those named "-> x" report their result through the
// machine's method x.
type (
	emit     struct{ ev Event }
	readFile struct{} // -> fileRead
	// changeRuntime stages the candidate, checks that haproxy serves
	// before, runs commands, checks that it then serves after, and
	// validates and commits the candidate. -> runtimeDone
	changeRuntime struct {
		base, cfg     []byte
		plan          Plan
		commands      []string
		before, after []haproxycfg.Server
	}
	writeFile struct { // -> fileWritten
		cfg    []byte
		reason string
	}
	writeStateFile struct{ cfg []byte }
	sendReload     struct{} // -> delivered
	readServers    struct{} // -> serversRead
	setDrain       struct { // -> drainSet
		server   string
		sections []string
		on       bool
	}
	listSessions struct{ key, backend, server string } // -> sessionsListed
	shutSession  struct{ id string }
	removeServer struct{ key, backend, server string } // -> serverRemoved
)

// runtimeResult is a runtime change's outcome.
type runtimeResult struct {
	stageErr   error // the candidate could not be staged: haproxy untouched
	servedBase bool  // haproxy served the change's starting point
	err        error // the change failed: the reload path takes over
	// After the change: the candidate's validation and rename.
	commitErr error
	replaced  bool
}

// serve takes a new target; targets not yet applied merge (the newest
// configuration and drains, the earliest event).
func (m *machine) serve(t Target, now time.Time) []any {
	if !t.EventAt.IsZero() && (m.eventAt.IsZero() || t.EventAt.Before(m.eventAt)) {
		m.eventAt = t.EventAt
	}
	m.target, m.dirty, m.retryWriteAt = &t, true, time.Time{}
	return m.tick(now)
}

// tick asks for whatever is due at now.
func (m *machine) tick(now time.Time) []any {
	if m.dirty && !now.Before(m.retryWriteAt) && m.change == nil {
		return []any{readFile{}} // what else is due, once the file is settled
	}
	out := m.drains()
	out = append(out, m.retire(now)...)
	if m.phase == PhaseReloadOwed && !now.Before(m.retryAt) {
		out = append(out, sendReload{})
	}
	if m.awaiting() && !now.Before(m.nextPoll) {
		m.nextPoll = now.Add(pollInterval)
		out = append(out, readServers{})
	}
	return out
}

// awaiting: a confirmation or the start-up check is pending, and can be
// had.
func (m *machine) awaiting() bool {
	return (m.phase == PhaseChecking || m.phase == PhaseConfirming) && m.s.confirm
}

// next is when something is due; ok is false when nothing is.
func (m *machine) next() (at time.Time, ok bool) {
	consider := func(t time.Time, when bool) {
		if when && (!ok || t.Before(at)) {
			at, ok = t, true
		}
	}
	consider(m.retryWriteAt, m.dirty)
	consider(m.retryAt, m.phase == PhaseReloadOwed)
	consider(m.nextPoll, m.awaiting())
	for _, r := range m.retiring {
		consider(r.removeAt, !r.listed)
		consider(r.nextShut, r.listed)
	}
	return at, ok
}

// fileRead decides how the target reaches the file and haproxy: nothing to
// write; through the runtime API when the plan allows (haproxy first, the
// file right after); else by writing the file and reloading.
func (m *machine) fileRead(disk []byte, err error, now time.Time) []any {
	if err != nil {
		return m.writeFailed(err, now)
	}
	cfg := m.target.Config
	if m.written == nil {
		m.written = disk
	}
	if bytes.Equal(disk, cfg) {
		m.dirty, m.writeBackoff = false, m.s.retryMin
		if m.phase == PhaseUnknown {
			// Found on disk at start-up: haproxy may serve it already.
			m.checkOrAssume(cfg, now)
		}
		return append([]any{emit{Event{Kind: Current, At: now}}}, m.tick(now)...)
	}
	base := disk
	if m.phase == PhaseServing {
		base = m.running
	}
	plan := MakePlan(base, cfg, m.retiringServers())
	reason := plan.Reason
	switch {
	case plan.Reload:
	case !m.s.runtime:
		reason = "no admin runtime API socket"
	case m.phase == PhaseReloadOwed:
		reason = "a reload is pending: it loads this file"
	case bytes.Equal(cfg, m.invalid):
		reason = "this configuration failed validation before"
	default:
		var cmds []string
		for _, op := range plan.Ops {
			cmds = append(cmds, op.Commands()...)
		}
		m.change = &changeRuntime{base: base, cfg: cfg, plan: plan, commands: cmds,
			before: m.expected(haproxycfg.Servers(base), nil), after: m.expected(haproxycfg.Servers(cfg), plan.Ops)}
		return []any{*m.change}
	}
	return []any{writeFile{cfg: cfg, reason: reason}}
}

// checkOrAssume starts the check of a file found current at start-up, or,
// without a stats socket to check with, takes haproxy to serve it.
func (m *machine) checkOrAssume(cfg []byte, now time.Time) {
	if m.s.confirm {
		m.to(PhaseChecking, now)
		return
	}
	m.running, m.phase = cfg, PhaseServing
}

// runtimeDone settles the runtime change in progress: haproxy changed, the
// file follows; a candidate that does not validate must not stay, and
// haproxy must not run what no file says, so the old file stays and haproxy
// reloads it; a failed change leaves the reload path to finish.
func (m *machine) runtimeDone(r runtimeResult, now time.Time) []any {
	ch := m.change
	if ch == nil {
		return nil // none in progress
	}
	m.change = nil
	if r.stageErr != nil {
		return m.writeFailed(r.stageErr, now)
	}
	var out []any
	if r.servedBase && m.phase == PhaseConfirming && bytes.Equal(ch.base, m.sent) {
		// That was the confirmation of the reload still awaited.
		out = append(out, emit{Event{Kind: Serving, At: now, SentAt: m.since, Path: PathReload}})
		m.serving(ch.base)
	}
	if r.err != nil {
		out = append(out, emit{Event{Kind: RuntimeFailed, At: now, Err: r.err}})
		return append(out, writeFile{cfg: ch.cfg, reason: r.err.Error()})
	}
	for _, op := range ch.plan.Ops {
		key := op.Backend + "/" + op.Server
		switch op.Kind {
		case OpRestore:
			delete(m.retiring, key)
		case OpRetire:
			m.retiring[key] = &retiree{backend: op.Backend, server: op.Server, addr: op.Address, port: op.Port,
				removeAt: now.Add(m.s.grace)}
		}
	}
	out = append(out, emit{Event{Kind: RuntimeApplied, At: now, EventAt: m.eventAt}},
		emit{Event{Kind: Serving, At: now, Path: PathRuntime}})
	m.eventAt = time.Time{}
	m.serving(ch.cfg)
	if r.commitErr != nil && !r.replaced {
		if apply.Stage(r.commitErr) == apply.StageValidate {
			m.invalid = ch.cfg
		}
		out = append(out, m.writeFailed(r.commitErr, now)...)
		m.running, m.retiring = nil, map[string]*retiree{}
		m.to(PhaseReloadOwed, now)
		return append(out, m.tick(now)...)
	}
	m.written, m.dirty, m.writeBackoff = ch.cfg, false, m.s.retryMin
	out = append(out, emit{Event{Kind: Written, At: now, Path: PathRuntime, Err: r.commitErr, Stage: apply.Stage(r.commitErr), Config: ch.cfg}})
	return append(out, m.tick(now)...)
}

// fileWritten settles a write of the file for a reload.
func (m *machine) fileWritten(cfg []byte, reason string, changed bool, err error, now time.Time) []any {
	if err != nil && !changed {
		return m.writeFailed(err, now)
	}
	m.written, m.dirty, m.writeBackoff = cfg, false, m.s.retryMin
	out := []any{emit{Event{Kind: Written, At: now, Path: PathReload, Reason: reason, Err: err, Stage: apply.Stage(err), Config: cfg}},
		writeStateFile{cfg: cfg}}
	// The new haproxy loads the file: servers being retired are gone there.
	m.retiring = map[string]*retiree{}
	m.to(PhaseReloadOwed, now)
	return append(out, m.tick(now)...)
}

// delivered settles a delivery attempt of the reload.
func (m *machine) delivered(err error, now time.Time) []any {
	m.attempt++
	if err != nil {
		m.retryAt = now.Add(m.backoff)
		m.backoff = min(2*m.backoff, m.s.maxBackoff)
		return []any{emit{Event{Kind: DeliveryFailed, At: now, Err: err, Attempt: m.attempt}}}
	}
	out := []any{emit{Event{Kind: Delivered, At: now, Attempt: m.attempt, EventAt: m.eventAt}}}
	m.eventAt, m.attempt, m.backoff, m.retryAt = time.Time{}, 0, m.s.minBackoff, time.Time{}
	m.sent = m.written
	if m.s.confirm {
		m.to(PhaseConfirming, now)
	} else {
		m.serving(m.written)
	}
	return append(out, m.tick(now)...)
}

// serversRead settles a pending confirmation or start-up check from one
// reading of haproxy's runtime API.
func (m *machine) serversRead(servers []runtimeapi.Server, err error, socketMissing bool, now time.Time) []any {
	if !m.awaiting() {
		return nil
	}
	cfg, sentAt, path := m.written, time.Time{}, ""
	if m.phase == PhaseConfirming {
		cfg, sentAt, path = m.sent, m.since, PathReload
	}
	switch {
	case err == nil && Serves(servers, haproxycfg.Servers(cfg)):
		m.serving(cfg)
		// A new haproxy has none of the drains: asked for at once.
		return append([]any{emit{Event{Kind: Serving, At: now, SentAt: sentAt, Path: path}}}, m.tick(now)...)
	case err == nil && m.phase == PhaseChecking:
		m.to(PhaseReloadOwed, now)
		return append([]any{emit{Event{Kind: Stale, At: now}}}, m.tick(now)...)
	case now.Sub(m.since) <= m.s.verifyTimeout:
		return nil // haproxy may still be starting or loading: look again
	case socketMissing:
		m.serving(cfg)
		return append([]any{emit{Event{Kind: Unverifiable, At: now, Err: err, SentAt: sentAt}}}, m.tick(now)...)
	}
	if err == nil {
		err = errors.New("haproxy serves other servers")
	}
	m.retryAt = time.Time{}
	m.to(PhaseReloadOwed, now)
	return append([]any{emit{Event{Kind: NotServing, At: now, Err: err, SentAt: sentAt}}}, m.tick(now)...)
}

// serving records that haproxy serves cfg; a new haproxy process (after a
// reload) has none of the drains.
func (m *machine) serving(cfg []byte) {
	if m.phase != PhaseServing {
		m.drained = map[string]bool{}
	}
	m.running, m.phase = cfg, PhaseServing
}

// to moves to phase p at now.
func (m *machine) to(p Phase, now time.Time) {
	m.phase = p
	switch p {
	case PhaseChecking, PhaseConfirming:
		m.since, m.nextPoll = now, now
	case PhaseReloadOwed:
		if m.retryAt.IsZero() || m.attempt == 0 {
			m.retryAt = now
		}
	}
}

func (m *machine) writeFailed(err error, now time.Time) []any {
	m.retryWriteAt = now.Add(m.writeBackoff)
	m.writeBackoff = min(2*m.writeBackoff, m.s.retryMax)
	return []any{emit{Event{Kind: WriteFailed, At: now, Err: err, Stage: apply.Stage(err)}}}
}

// expected is what haproxy shows while serving servers: them, and the
// servers still draining before removal, as ops (if any) leave them.
func (m *machine) expected(servers []haproxycfg.Server, ops []Op) []haproxycfg.Server {
	retiring := map[string]haproxycfg.Server{}
	for k, r := range m.retiring {
		retiring[k] = haproxycfg.Server{Section: r.backend, Name: r.server, Address: r.addr, Port: r.port}
	}
	for _, op := range ops {
		key := op.Backend + "/" + op.Server
		switch op.Kind {
		case OpRestore:
			delete(retiring, key)
		case OpRetire:
			retiring[key] = haproxycfg.Server{Section: op.Backend, Name: op.Server, Address: op.Address, Port: op.Port}
		}
	}
	out := slices.Clone(servers)
	for _, k := range sortedKeys(retiring) {
		out = append(out, retiring[k])
	}
	return out
}

// retiringServers is what the planner needs of the servers being retired.
func (m *machine) retiringServers() map[string]Retiring {
	out := map[string]Retiring{}
	for k, r := range m.retiring {
		out[k] = Retiring{Address: r.addr, Port: r.port}
	}
	return out
}

// drains asks for the target's Drain servers in drain and the others the
// controller drained back to ready, on every backend that has them; only
// while haproxy serves a known configuration.
func (m *machine) drains() []any {
	if m.target == nil || !m.s.runtime || m.phase != PhaseServing {
		return nil
	}
	want := map[string]bool{}
	for _, n := range m.target.Drain {
		want[n] = true
	}
	sections := map[string][]string{}
	for _, sv := range haproxycfg.Servers(m.running) {
		sections[sv.Name] = append(sections[sv.Name], sv.Section)
	}
	var out []any
	for _, n := range sortedKeys(want) {
		if !m.drained[n] && len(sections[n]) > 0 && token.MatchString(n) {
			m.drained[n] = true
			out = append(out, setDrain{server: n, sections: sections[n], on: true})
		}
	}
	for _, n := range sortedKeys(m.drained) {
		if !want[n] {
			delete(m.drained, n)
			out = append(out, setDrain{server: n, sections: sections[n], on: false})
		}
	}
	return out
}

// drainSet reports a drain's outcome.
func (m *machine) drainSet(server string, on bool, err error, now time.Time) []any {
	return []any{emit{Event{Kind: Drained, At: now, Server: server, On: on, Err: err}}}
}

// retire ends the servers whose grace period is over: their sessions one
// by one, spread with jitter, then the server.
func (m *machine) retire(now time.Time) []any {
	var out []any
	for _, key := range sortedKeys(m.retiring) {
		r := m.retiring[key]
		switch {
		case now.Before(r.removeAt) || (r.listed && now.Before(r.nextShut)):
		case !r.listed:
			// Nothing more is due for it until its sessions are listed.
			r.listed, r.nextShut = true, now.Add(time.Hour)
			out = append(out, listSessions{key: key, backend: r.backend, server: r.server})
		case len(r.sessions) > 0:
			out = append(out, shutSession{id: r.sessions[0]})
			r.sessions = r.sessions[1:]
			r.nextShut = now.Add(time.Duration(float64(r.every) * (0.5 + m.s.jitter())))
		default:
			delete(m.retiring, key)
			out = append(out, removeServer{key: key, backend: r.backend, server: r.server})
		}
	}
	return out
}

// sessionsListed starts shutting a retired server's sessions, one by one
// over the spread.
func (m *machine) sessionsListed(key string, ids []string, now time.Time) []any {
	r, ok := m.retiring[key]
	if !ok {
		return nil
	}
	r.sessions, r.nextShut = ids, now
	if len(ids) > 0 {
		r.every = m.s.spread / time.Duration(len(ids))
	}
	return m.retire(now)
}

// serverRemoved reports a retired server's removal.
func (m *machine) serverRemoved(key string, err error, now time.Time) []any {
	return []any{emit{Event{Kind: Retired, At: now, Server: key, Err: err}}}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
