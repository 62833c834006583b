package haproxyctl

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/apply"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
)

// The machine's rules, step by step, on times the test picks: no clock, no
// I/O, every effect it asks for checked by type.

var t0 = time.Unix(1000, 0)

func at(d time.Duration) time.Time { return t0.Add(d) }

func testSettings() settings {
	return settings{runtime: true, confirm: true, verifyTimeout: time.Second, minBackoff: 100 * time.Millisecond,
		maxBackoff: 400 * time.Millisecond, retryMin: time.Second, retryMax: 4 * time.Second, grace: 10 * time.Second,
		spread: 4 * time.Second, jitter: func() float64 { return 0.5 }}
}

// kinds names the effects, events by their kind.
func kinds(effects []any) string {
	var out []string
	for _, e := range effects {
		if ev, ok := e.(emit); ok {
			out = append(out, ev.ev.Kind.String())
			continue
		}
		out = append(out, strings.TrimPrefix(fmt.Sprintf("%T", e), "haproxyctl."))
	}
	return strings.Join(out, " ")
}

func want(t *testing.T, step string, got []any, kinds_ string) {
	t.Helper()
	if k := kinds(got); k != kinds_ {
		t.Fatalf("%s: effects %q, want %q", step, k, kinds_)
	}
}

func servers(rows ...string) []runtimeapi.Server {
	var out []runtimeapi.Server
	for _, r := range rows {
		p := strings.Fields(r)
		out = append(out, runtimeapi.Server{Backend: p[0], Name: p[1], Addr: p[2], Port: p[3], Up: true})
	}
	return out
}

// A change that needs a reload: written, the reload sent (again with
// backoff while the socket refuses it), then confirmed within the verify
// timeout, or owed again after it.
func TestMachineReloadPath(t *testing.T) {
	st := testSettings()
	st.runtime = false // no admin socket: every change reloads
	m := newMachine(st)
	want(t, "serve", m.serve(Target{Config: []byte(cfgAB), EventAt: at(-time.Second)}, t0), "readFile")
	want(t, "file read", m.fileRead([]byte(cfgA+"# other\n"), nil, t0), "writeFile")
	if m.phase != PhaseUnknown {
		t.Fatalf("phase %v before anything is known", m.phase)
	}
	want(t, "written", m.fileWritten([]byte(cfgAB), "why", true, nil, t0), "written writeStateFile sendReload")
	if m.phase != PhaseReloadOwed {
		t.Fatalf("phase %v after the write, want reload-owed", m.phase)
	}
	refused := errors.New("connection refused")
	for i, backoff := range []time.Duration{100, 200, 400, 400} {
		now := at(time.Duration(i) * time.Second)
		got := m.delivered(refused, now)
		want(t, "refused", got, "delivery-failed")
		if next, ok := m.next(); !ok || next.Sub(now) != backoff*time.Millisecond {
			t.Fatalf("attempt %d: next at %v, want %v later", i+1, next.Sub(now), backoff*time.Millisecond)
		}
		if ev := got[0].(emit).ev; ev.Attempt != i+1 {
			t.Fatalf("attempt %d reported as %d", i+1, ev.Attempt)
		}
	}
	got := m.delivered(nil, at(5*time.Second))
	want(t, "delivered", got, "delivered readServers")
	if ev := got[0].(emit).ev; !ev.EventAt.Equal(at(-time.Second)) || ev.Attempt != 5 {
		t.Fatalf("delivered %+v, want the event time and the fifth attempt", ev)
	}
	if m.phase != PhaseConfirming {
		t.Fatalf("phase %v after delivery, want confirming", m.phase)
	}
	// haproxy still loading: nothing within the verify timeout.
	want(t, "old servers", m.serversRead(servers("masters a 198.18.0.1 6443"), nil, false, at(5500*time.Millisecond)), "")
	if next, _ := m.next(); next != at(5*time.Second+pollInterval) {
		t.Fatalf("next poll at %v", next.Sub(t0))
	}
	// Past it: owed again at once.
	got = m.serversRead(servers("masters a 198.18.0.1 6443"), nil, false, at(6100*time.Millisecond))
	want(t, "timed out", got, "not-serving sendReload")
	if err := got[0].(emit).ev.Err; err == nil || !strings.Contains(err.Error(), "other servers") {
		t.Fatalf("not-serving says %v, want what haproxy serves", err)
	}
	want(t, "delivered again", m.delivered(nil, at(6200*time.Millisecond)), "delivered readServers")
	got = m.serversRead(servers("masters a 198.18.0.1 6443", "masters b fd00::2 6443"), nil, false, at(6300*time.Millisecond))
	want(t, "serving", got, "serving")
	if ev := got[0].(emit).ev; ev.Path != PathReload || !ev.SentAt.Equal(at(6200*time.Millisecond)) {
		t.Fatalf("serving %+v, want after the reload sent at 6.2 s", ev)
	}
	if m.phase != PhaseServing {
		t.Fatalf("phase %v", m.phase)
	}
	if _, ok := m.next(); ok {
		t.Fatal("something due with nothing to do")
	}
}

// A write that fails is retried with backoff, from 1 s to at most 4 s.
func TestMachineWriteRetries(t *testing.T) {
	m := newMachine(testSettings())
	m.serve(Target{Config: []byte(cfgA)}, t0)
	full := errors.New("no space left on device")
	now := t0
	for _, backoff := range []time.Duration{1, 2, 4, 4} {
		want(t, "file read", m.fileRead([]byte(""), nil, now), "writeFile")
		want(t, "write failed", m.fileWritten([]byte(cfgA), "why", false, full, now), "write-failed")
		next, _ := m.next()
		if next.Sub(now) != backoff*time.Second {
			t.Fatalf("retry after %v, want %v", next.Sub(now), backoff*time.Second)
		}
		want(t, "not yet", m.tick(next.Add(-time.Millisecond)), "")
		now = next
		want(t, "due", m.tick(now), "readFile")
	}
}

// At start-up a file that holds the target is checked, not written: a
// haproxy serving it is confirmed; one serving other servers is reloaded.
func TestMachineStartUpCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		servers []runtimeapi.Server
		effects string
	}{
		{"haproxy serves it", servers("masters a 198.18.0.1 6443"), "serving"},
		{"haproxy serves other servers", servers("masters a 198.18.0.9 6443"), "stale sendReload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMachine(testSettings())
			m.serve(Target{Config: []byte(cfgA)}, t0)
			want(t, "file read", m.fileRead([]byte(cfgA), nil, t0), "current readServers")
			if m.phase != PhaseChecking {
				t.Fatalf("phase %v", m.phase)
			}
			got := m.serversRead(tc.servers, nil, false, at(10*time.Millisecond))
			want(t, "servers read", got, tc.effects)
			if ev := got[0].(emit).ev; !ev.SentAt.IsZero() || ev.Path != "" {
				t.Fatalf("a check reported a send: %+v", ev)
			}
		})
	}
}

// Without a stats socket to ask, a delivered reload is taken as done after
// the verify timeout: said once, not retried.
func TestMachineUnverifiable(t *testing.T) {
	m := newMachine(testSettings())
	m.serve(Target{Config: []byte(cfgA)}, t0)
	m.fileRead(nil, nil, t0)
	m.fileWritten([]byte(cfgA), "why", true, nil, t0)
	m.delivered(nil, t0)
	missing := errors.New("dial unix: no such file or directory")
	want(t, "within the timeout", m.serversRead(nil, missing, true, at(500*time.Millisecond)), "")
	want(t, "after it", m.serversRead(nil, missing, true, at(1100*time.Millisecond)), "unverifiable")
	if m.phase != PhaseServing {
		t.Fatalf("phase %v", m.phase)
	}
}

// Membership changes at runtime: the plan's commands; a removed server
// drains for the grace period, then its sessions are shut one by one over
// the spread, then it is deleted; a server that comes back before that is
// restored, not added.
func TestMachineRuntimePathAndRetirement(t *testing.T) {
	m := newMachine(testSettings())
	m.serve(Target{Config: []byte(cfgAB)}, t0)
	m.fileRead([]byte(cfgAB), nil, t0)
	m.serversRead(servers("masters a 198.18.0.1 6443", "masters b fd00::2 6443"), nil, false, t0)
	// b removed.
	m.serve(Target{Config: []byte(cfgA)}, at(time.Second))
	got := m.fileRead([]byte(cfgAB), nil, at(time.Second))
	want(t, "runtime change", got, "changeRuntime")
	ch := got[0].(changeRuntime)
	if !slices.Equal(ch.commands, []string{"set server masters/b state drain"}) || len(ch.after) != 2 {
		t.Fatalf("change %+v", ch)
	}
	want(t, "applied", m.runtimeDone(runtimeResult{servedBase: true, replaced: true}, at(time.Second)),
		"runtime-applied serving written")
	// Its grace ends at 11 s; three sessions left, shut every 4/3 s × (0.5 + 0.5).
	if next, _ := m.next(); next != at(11*time.Second) {
		t.Fatalf("next at %v, want the grace's end", next.Sub(t0))
	}
	want(t, "grace over", m.tick(at(11*time.Second)), "listSessions")
	want(t, "listed", m.sessionsListed("masters/b", []string{"0x1", "0x2", "0x3"}, at(11*time.Second)), "shutSession")
	spread := 4 * time.Second / 3
	want(t, "too early", m.tick(at(11*time.Second).Add(spread-time.Millisecond)), "")
	want(t, "second", m.tick(at(11*time.Second).Add(spread)), "shutSession")
	want(t, "third", m.tick(at(11*time.Second).Add(2*spread)), "shutSession")
	want(t, "then the server", m.tick(at(11*time.Second).Add(3*spread)), "removeServer")
	want(t, "removed", m.serverRemoved("masters/b", nil, at(16*time.Second)), "retired")

	// Back, removed again, and back before its grace ends: restored in
	// place.
	m.serve(Target{Config: []byte(cfgAB)}, at(20*time.Second))
	want(t, "added back", m.fileRead([]byte(cfgA), nil, at(20*time.Second)), "changeRuntime")
	m.runtimeDone(runtimeResult{servedBase: true, replaced: true}, at(20*time.Second))
	m.serve(Target{Config: []byte(cfgA)}, at(21*time.Second))
	want(t, "removed again", m.fileRead([]byte(cfgAB), nil, at(21*time.Second)), "changeRuntime")
	m.runtimeDone(runtimeResult{servedBase: true, replaced: true}, at(21*time.Second))
	m.serve(Target{Config: []byte(cfgAB)}, at(22*time.Second))
	got = m.fileRead([]byte(cfgA), nil, at(22*time.Second))
	want(t, "back while draining", got, "changeRuntime")
	ch = got[0].(changeRuntime)
	if !slices.Equal(ch.commands, []string{"set server masters/b addr fd00::2 port 6443", "set server masters/b state ready"}) {
		t.Fatalf("commands %q, want b restored", ch.commands)
	}
}

// A runtime change whose candidate does not validate: haproxy took it, so
// haproxy reloads the file that is there, and the candidate is never tried
// at runtime again.
func TestMachineCandidateInvalidAfterRuntime(t *testing.T) {
	m := newMachine(testSettings())
	m.serve(Target{Config: []byte(cfgA)}, t0)
	m.fileRead([]byte(cfgA), nil, t0)
	m.serversRead(servers("masters a 198.18.0.1 6443"), nil, false, t0)
	m.serve(Target{Config: []byte(cfgAB)}, at(time.Second))
	want(t, "runtime change", m.fileRead([]byte(cfgA), nil, at(time.Second)), "changeRuntime")
	got := m.runtimeDone(runtimeResult{servedBase: true, commitErr: validateErr(t)}, at(time.Second))
	want(t, "invalid", got, "runtime-applied serving write-failed sendReload")
	if m.phase != PhaseReloadOwed {
		t.Fatalf("phase %v, want reload-owed", m.phase)
	}
	want(t, "delivered", m.delivered(nil, at(time.Second)), "delivered readServers")
	want(t, "the file's servers", m.serversRead(servers("masters a 198.18.0.1 6443"), nil, false, at(time.Second)), "serving")
	m.serve(Target{Config: []byte(cfgAB)}, at(2*time.Second))
	want(t, "the same candidate again", m.fileRead([]byte(cfgA), nil, at(2*time.Second)), "writeFile")
}

// validateErr is the error apply gives for a candidate its validator refused.
func validateErr(t *testing.T) error {
	f := &apply.File{Path: filepath.Join(t.TempDir(), "haproxy.cfg"),
		Validate: func(context.Context, string) error { return errors.New("refused") }}
	staged, err := f.Stage([]byte(cfgAB))
	if err != nil {
		t.Fatal(err)
	}
	defer staged.Discard()
	err = staged.Validate(context.Background())
	if apply.Stage(err) != apply.StageValidate {
		t.Fatalf("validate error %v has stage %q", err, apply.Stage(err))
	}
	return err
}

// serving reaches serving: cfg delivered by a reload and confirmed.
func reloaded(t *testing.T, m *machine, cfg string, now time.Time) {
	t.Helper()
	m.serve(Target{Config: []byte(cfg)}, now)
	m.fileRead(nil, nil, now)
	m.fileWritten([]byte(cfg), "why", true, nil, now)
	want(t, "delivered", m.delivered(nil, now), "delivered readServers")
}

// A runtime change that starts from the reload still being confirmed, and
// finds haproxy serving it, confirms that reload first.
func TestMachineRuntimeChangeConfirmsTheReload(t *testing.T) {
	m := newMachine(testSettings())
	reloaded(t, m, cfgA, t0)
	m.serve(Target{Config: []byte(cfgAB)}, at(100*time.Millisecond))
	want(t, "runtime change", m.fileRead([]byte(cfgA), nil, at(100*time.Millisecond)), "changeRuntime")
	got := m.runtimeDone(runtimeResult{servedBase: true, replaced: true}, at(200*time.Millisecond))
	want(t, "done", got, "serving runtime-applied serving written")
	if ev := got[0].(emit).ev; ev.Path != PathReload || !ev.SentAt.Equal(t0) {
		t.Fatalf("first serving %+v, want the reload's confirmation", ev)
	}
}

// Drains are asked for only while haproxy serves a known configuration,
// through the runtime API; a reload starts a haproxy without them, a
// runtime change keeps them.
func TestMachineDrains(t *testing.T) {
	st := testSettings()
	st.runtime = false
	m := newMachine(st)
	m.serve(Target{Config: []byte(cfgAB), Drain: []string{"a"}}, t0)
	m.fileRead([]byte(cfgAB), nil, t0)
	want(t, "no runtime API", m.serversRead(servers("masters a 198.18.0.1 6443", "masters b fd00::2 6443"), nil, false, t0), "serving")

	m = newMachine(testSettings())
	reloaded(t, m, cfgAB, t0)
	// "z" is not in the configuration haproxy runs: nothing to drain yet.
	want(t, "not serving yet", m.serve(Target{Config: []byte(cfgAB), Drain: []string{"a", "z"}}, t0), "readFile")
	want(t, "still confirming", m.fileRead([]byte(cfgAB), nil, t0), "current")
	got := m.serversRead(servers("masters a 198.18.0.1 6443", "masters b fd00::2 6443"), nil, false, at(100*time.Millisecond))
	want(t, "serving", got, "serving setDrain")
	if d := got[1].(setDrain); d.server != "a" || !d.on || !slices.Equal(d.sections, []string{"masters"}) {
		t.Fatalf("drain %+v", d)
	}
	// A runtime change: haproxy keeps the drain.
	m.serve(Target{Config: []byte(cfgA), Drain: []string{"a"}}, at(time.Second))
	want(t, "b removed", m.fileRead([]byte(cfgAB), nil, at(time.Second)), "changeRuntime")
	want(t, "applied", m.runtimeDone(runtimeResult{servedBase: true, replaced: true}, at(time.Second)),
		"runtime-applied serving written")
	// A reload: the new haproxy is drained again.
	m.serve(Target{Config: []byte("global\n  maxconn 10\n" + cfgA), Drain: []string{"a"}}, at(2*time.Second))
	want(t, "reload", m.fileRead([]byte(cfgA), nil, at(2*time.Second)), "writeFile")
	m.fileWritten([]byte("global\n  maxconn 10\n"+cfgA), "why", true, nil, at(2*time.Second))
	m.delivered(nil, at(2*time.Second))
	want(t, "reloaded", m.serversRead(servers("masters a 198.18.0.1 6443"), nil, false, at(2100*time.Millisecond)), "serving setDrain")
}

// A reload owed again keeps its delivery backoff: a new change does not
// make the refused socket be tried at once.
func TestMachineBackoffSurvivesANewChange(t *testing.T) {
	st := testSettings()
	st.runtime = false
	m := newMachine(st)
	m.serve(Target{Config: []byte(cfgA)}, t0)
	m.fileRead(nil, nil, t0)
	m.fileWritten([]byte(cfgA), "why", true, nil, t0)
	want(t, "refused", m.delivered(errors.New("connection refused"), t0), "delivery-failed")
	m.serve(Target{Config: []byte(cfgAB)}, at(10*time.Millisecond))
	m.fileRead([]byte(cfgA), nil, at(10*time.Millisecond))
	want(t, "written", m.fileWritten([]byte(cfgAB), "why", true, nil, at(10*time.Millisecond)), "written writeStateFile")
	if next, _ := m.next(); next != at(100*time.Millisecond) {
		t.Fatalf("next send at %v, want the backoff's 100ms", next.Sub(t0))
	}
}

// retiringB is a machine serving a and b that was then told to serve a
// alone, through the runtime API at t0: b is retiring.
func retiringB(st settings) *machine {
	m := newMachine(st)
	m.serve(Target{Config: []byte(cfgAB)}, t0)
	m.fileRead([]byte(cfgAB), nil, t0)
	m.serversRead(servers("masters a 198.18.0.1 6443", "masters b fd00::2 6443"), nil, false, t0)
	m.serve(Target{Config: []byte(cfgA)}, t0)
	m.fileRead([]byte(cfgAB), nil, t0)
	m.runtimeDone(runtimeResult{servedBase: true, replaced: true}, t0)
	return m
}

// Sessions are shut every spread/n × (0.5 + jitter); a server without
// sessions is removed as soon as they are listed.
func TestMachineShutSpacingAndNoSessions(t *testing.T) {
	st := testSettings()
	st.jitter = func() float64 { return 0.25 }
	m := retiringB(st)
	want(t, "grace over", m.tick(at(10*time.Second)), "listSessions")
	want(t, "listed", m.sessionsListed("masters/b", []string{"0x1", "0x2"}, at(10*time.Second)), "shutSession")
	if next, _ := m.next(); next != at(10*time.Second+1500*time.Millisecond) {
		t.Fatalf("second shut at %v, want 2 s × 0.75 after the first", next.Sub(t0))
	}

	m = retiringB(testSettings())
	m.tick(at(10 * time.Second))
	want(t, "no sessions", m.sessionsListed("masters/b", nil, at(10*time.Second)), "removeServer")
}
