package failover

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/redirect"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
)

// Grade is the whole rule of what keepalived hears.
func TestGrade(t *testing.T) {
	for _, tc := range []struct {
		o    Observation
		want keepalived.Level
	}{
		{Observation{Serving: true, HoldsVIP: true}, keepalived.Holding},
		{Observation{Serving: true, HoldsVIP: true, LocalAPIServes: true}, keepalived.Holding},
		{Observation{Serving: true}, keepalived.Serving},
		{Observation{Serving: true, LocalAPIServes: true}, keepalived.Serving},
		{Observation{LocalAPIServes: true}, keepalived.LocalOnly},
		{Observation{HoldsVIP: true, LocalAPIServes: true}, keepalived.LocalOnly},
		{Observation{HoldsVIP: true}, keepalived.Fault},
		{Observation{}, keepalived.Fault},
	} {
		if got := Grade(tc.o); got != tc.want {
			t.Errorf("Grade(%+v) = %v, want %v", tc.o, got, tc.want)
		}
	}
}

// The original probes haproxy with an HTTP client without a timeout: a hung
// haproxy stalls its loop for good. Ours gives up at the step's deadline.
func TestDifferenceProbeHasTimeout(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	defer srv.Close()
	defer close(hang) // before Close, which waits for the handler
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := HTTPProbe(srv.URL + "/haproxy_ready")(ctx); err == nil {
		t.Fatal("a hung haproxy probed healthy")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the probe took %v with a 100 ms deadline", d)
	}
}

type trackFake struct {
	mu  sync.Mutex
	got []keepalived.Level
}

func (f *trackFake) Set(l keepalived.Level) error {
	f.mu.Lock()
	f.got = append(f.got, l)
	f.mu.Unlock()
	return nil
}

func (f *trackFake) values() []keepalived.Level {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]keepalived.Level(nil), f.got...)
}

// last is the last level written (not holdRules' entries), or -1.
func (f *trackFake) last() keepalived.Level {
	v := f.values()
	for i := len(v) - 1; i >= 0; i-- {
		if v[i] < held {
			return v[i]
		}
	}
	return -1
}

// holdRules are redirect rules that can hold, and log Hold and Remove into
// the same log as the track file.
type holdRules struct{ log *trackFake }

func (r *holdRules) Ensure() error  { return nil }
func (r *holdRules) Hold() error    { return r.log.Set(held) }
func (r *holdRules) Release() error { return r.log.Set(released) }
func (r *holdRules) Remove() error  { return r.log.Set(removed) }

// Entries holdRules writes beside the levels.
const (
	held keepalived.Level = 1000 + iota
	removed
	released
)

func quiet() logrus.FieldLogger {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return log
}

// run starts c until the test ends, or until the returned stop is called.
func run(t *testing.T, c *Controller) (stop func(), done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	d := make(chan struct{})
	go func() { c.Run(ctx); close(d) }()
	t.Cleanup(func() { cancel(); <-d })
	return cancel, d
}

// stepUntil moves the fake clock on by step until cond holds (each step
// lets the controller's loop run), failing after 200 steps.
func stepUntil(t *testing.T, fc *clocktesting.FakeClock, step time.Duration, what string, cond func() bool) {
	t.Helper()
	for range 200 {
		if poll.Until(20*time.Millisecond, time.Millisecond, cond) {
			return
		}
		fc.Step(step)
	}
	t.Fatalf("never %s", what)
}

// haproxy gone (nothing listens): the redirect comes out and keepalived is
// told at the next probe, without waiting out the 11-probe hysteresis; a
// 503 keeps the hysteresis. While haproxy serves, keepalived hears Holding
// once the VIP is on this node, Serving before. While haproxy does not
// serve, it hears LocalOnly if the local apiserver answers, Fault if not.
// On shutdown new connections are held, the node faults, and the rules come
// out only after the VIP has left and Settle has passed: the hand-over runs
// on the controller's clock.
func TestControllerHaproxyGoneAndHandOver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var code atomic.Int64
	code.Store(200)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(code.Load())) })}
	go func() { _ = srv.Serve(ln) }()
	track := &trackFake{}
	var holds, localOK, installed atomic.Bool
	localOK.Store(true)
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	const every = 100 * time.Millisecond
	sw := redirect.NewSwitch(redirect.SwitchOptions{Rules: &holdRules{log: track}, OnAfter: 1, OffAfter: 11, Interval: every,
		Log: quiet(), Installed: installed.Store, Now: fc.Now})
	c := New(Options{Redirect: sw, Probe: HTTPProbe("http://" + addr + "/haproxy_ready"), Interval: every, Clock: fc,
		Log: quiet(), Track: track, HoldsVIP: holds.Load, HandOver: 5 * time.Second, Settle: 300 * time.Millisecond,
		LocalProbe: func(context.Context) error {
			if localOK.Load() {
				return nil
			}
			return errors.New("local apiserver: 500")
		}})
	stop, done := run(t, c)
	says := func(l keepalived.Level) func() bool { return func() bool { return track.last() == l } }
	stepUntil(t, fc, every, "installed and serving", func() bool { return installed.Load() && track.last() == keepalived.Serving })
	holds.Store(true) // keepalived made this node the holder
	stepUntil(t, fc, every, "holding", says(keepalived.Holding))

	code.Store(503) // no backend: the hysteresis holds the redirect
	stepUntil(t, fc, every, "keepalived told the local apiserver serves", says(keepalived.LocalOnly))
	localOK.Store(false)
	stepUntil(t, fc, every, "keepalived told nothing serves", says(keepalived.Fault))
	if !installed.Load() {
		t.Fatal("a 503 took the redirect out before 11 bad probes")
	}
	code.Store(200)
	stepUntil(t, fc, every, "serving again", says(keepalived.Holding))

	localOK.Store(true)
	srv.Close() // haproxy gone: refused
	start := fc.Now()
	stepUntil(t, fc, every, "the redirect out", func() bool { return !installed.Load() && track.last() == keepalived.LocalOnly })
	if d := fc.Since(start); d > every {
		t.Fatalf("took %v of probes with nothing listening; one probe should do", d)
	}
	localOK.Store(false)
	stepUntil(t, fc, every, "fault once the local apiserver fails too", says(keepalived.Fault))
	localOK.Store(true)
	stepUntil(t, fc, every, "local only again", says(keepalived.LocalOnly))

	before := len(track.values())
	stop()
	// Holding new connections, faulting, then waiting for the VIP: a
	// second on the clock is not the five of HandOver.
	stepUntil(t, fc, 10*time.Millisecond, "the hold and the fault", func() bool { return len(track.values()) >= before+2 })
	for range 50 {
		fc.Step(20 * time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("stopped before the VIP left")
	case <-time.After(20 * time.Millisecond):
	}
	holds.Store(false)
	left := fc.Now()
	stepUntil(t, fc, 20*time.Millisecond, "the redirect out after Settle", closed(done))
	if d := fc.Since(left); d < 300*time.Millisecond {
		t.Fatalf("rules out %v after the VIP left; want at least Settle (300ms)", d)
	}
	got := track.values()[before:]
	want := []keepalived.Level{held, keepalived.Fault, removed}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("shutdown did %v; want hold, fault, remove (%v)", got, want)
	}
}

// keepalived stopped together with the monitor (a node shutting down) may
// have removed the VIP before the monitor hears SIGTERM: a monitor that last
// said Holding still holds new connections, and for Settle, since clients
// that have not heard of the next holder still send to this node.
func TestShutdownHoldsWhenTheVIPJustLeft(t *testing.T) {
	track := &trackFake{}
	var vipHere atomic.Bool
	vipHere.Store(true)
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	log, hook := logtest.NewNullLogger()
	sw := redirect.NewSwitch(redirect.SwitchOptions{Rules: &holdRules{log: track}, OnAfter: 1, OffAfter: 11,
		Interval: 10 * time.Second, Log: quiet(), Now: fc.Now})
	c := New(Options{Redirect: sw, Interval: 10 * time.Second, ProbeInterval: 10 * time.Millisecond, Clock: fc,
		Log: log, Track: track, HoldsVIP: vipHere.Load, HandOver: 5 * time.Second, Settle: 200 * time.Millisecond,
		Probe: func(context.Context) error { return nil }})
	stop, done := run(t, c)
	stepUntil(t, fc, 10*time.Millisecond, "Holding", func() bool { return track.last() == keepalived.Holding })
	before := len(track.values())
	vipHere.Store(false) // keepalived, stopping, took the VIP away
	stop()
	start := fc.Now()
	stepUntil(t, fc, 10*time.Millisecond, "stopped", closed(done))
	got := track.values()[before:]
	want := []keepalived.Level{held, keepalived.Fault, removed}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("shutdown did %v; want hold, fault, remove (%v)", got, want)
	}
	if d := fc.Since(start); d < 200*time.Millisecond {
		t.Fatalf("rules out after %v; want the hold kept for Settle (200ms)", d)
	}
	var said []string
	for _, e := range hook.AllEntries() {
		said = append(said, e.Message)
	}
	for _, msg := range []string{"holding new connections to the VIP while it moves to another node", "API redirect rules removed on shutdown"} {
		if !slices.Contains(said, msg) {
			t.Errorf("the log %q lacks %q", said, msg)
		}
	}
}

// closed reports whether done is closed, without waiting.
func closed(done <-chan struct{}) func() bool {
	return func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
}

// A monitor restarted on the VIP holder finds the track file as its
// predecessor left it: while haproxy serves, keepalived is never told "not
// serving", so the VIP does not move (the kubelet lab's scenario K3 lost
// requests to exactly that flap); when haproxy does not serve, it is told
// at once.
func TestControllerTakesOverTheTrackFile(t *testing.T) {
	for _, tc := range []struct {
		says    keepalived.Level
		healthy bool
		want    string // the levels written
	}{
		{keepalived.Serving, true, "[]"},
		{keepalived.Holding, true, "[]"},
		{keepalived.Fault, true, "[" + keepalived.Fault.String() + " " + keepalived.Serving.String() + "]"},
		{keepalived.Serving, false, "[" + keepalived.Fault.String() + "]"},
	} {
		t.Run(fmt.Sprintf("says %v, serving=%v", tc.says, tc.healthy), func(t *testing.T) {
			track := &stateTrack{says: tc.says}
			fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
			var probes atomic.Int64
			rules := &presentRules{}
			var installed atomic.Bool
			sw := redirect.NewSwitch(redirect.SwitchOptions{Rules: rules, OnAfter: 3, OffAfter: 11, Interval: time.Hour,
				Log: quiet(), Installed: installed.Store, Now: fc.Now})
			c := New(Options{Interval: time.Hour, ProbeInterval: 10 * time.Millisecond, Clock: fc, Log: quiet(), Track: track,
				Redirect: sw, HoldsVIP: func() bool { return tc.says == keepalived.Holding },
				Probe: func(context.Context) error {
					probes.Add(1)
					if tc.healthy {
						return nil
					}
					return errors.New("haproxy says no backend")
				}})
			stop, done := run(t, c)
			stepUntil(t, fc, 10*time.Millisecond, "five probes", func() bool { return probes.Load() >= 5 })
			if got := fmt.Sprint(track.values()); got != tc.want {
				t.Errorf("keepalived told %v; want %v", got, tc.want)
			}
			if installed.Load() != tc.healthy || rules.removed() == tc.healthy {
				t.Errorf("redirect installed %v, leftovers removed %v; want them kept only while haproxy serves", installed.Load(), rules.removed())
			}
			// A holder hands over on shutdown, waiting by the clock.
			stop()
			stepUntil(t, fc, 100*time.Millisecond, "stopped", closed(done))
		})
	}
}

// presentRules are complete rules a previous run left.
type presentRules struct{ removes atomic.Int64 }

func (r *presentRules) Ensure() error          { return nil }
func (r *presentRules) Remove() error          { r.removes.Add(1); return nil }
func (r *presentRules) Present() (bool, error) { return true, nil }
func (r *presentRules) removed() bool          { return r.removes.Load() > 0 }

// stateTrack is a track file that remembers what it says.
type stateTrack struct {
	trackFake
	says keepalived.Level
}

func (s *stateTrack) Set(l keepalived.Level) error {
	s.mu.Lock()
	s.says = l
	s.mu.Unlock()
	return s.trackFake.Set(l)
}

func (s *stateTrack) Level() (keepalived.Level, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.says, nil
}

// haproxy's death is an event: with a held connection, the redirect comes
// out when the process goes, without waiting for a probe (the clock never
// moves here, so no tick could take it out).
func TestControllerNoticesHAProxyDeathAtOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var accepted atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				accepted.Add(1)
			}
		}}
	go func() { _ = srv.Serve(ln) }()
	var installed atomic.Bool
	var watches atomic.Int64
	hold, err := HoldConnection("http://"+addr+"/haproxy_ready", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	sw := redirect.NewSwitch(redirect.SwitchOptions{Rules: &holdRules{log: &trackFake{}}, OnAfter: 1, OffAfter: 11,
		Interval: time.Second, Log: quiet(), Installed: installed.Store, Now: fc.Now})
	c := New(Options{Redirect: sw, Probe: HTTPProbe("http://" + addr + "/haproxy_ready"), Interval: time.Second, Clock: fc,
		Log: quiet(), Watch: func(ctx context.Context) error {
			watches.Add(1)
			return hold(ctx)
		}})
	run(t, c)
	// One probe's connection, then the held one.
	poll.Must(t, 5*time.Second, "the redirect in and the connection held", func() bool { return installed.Load() && accepted.Load() >= 2 })
	_ = srv.Close() // haproxy dies: its listener and every connection close
	poll.Must(t, 5*time.Second, "the redirect out after haproxy died", func() bool { return !installed.Load() })
	if n := watches.Load(); n != 1 {
		t.Fatalf("%d watches started; want 1 (none after the close without a good probe)", n)
	}
}

// A connection held a while and then closed (haproxy's keep-alive timeout)
// is held again right after the probe that follows, not a tick later: a
// kill in that gap would be noticed only by the next probe. One closed at
// once waits for the tick, so a connection that cannot be held costs one
// attempt per interval.
func TestControllerHoldsAgainAfterAClose(t *testing.T) {
	fc := clocktesting.NewFakeClock(time.Unix(1000, 0))
	release := make(chan error)
	var watches atomic.Int64
	c := New(Options{Interval: time.Second, ProbeInterval: 100 * time.Millisecond, Clock: fc, Log: quiet(),
		Probe: func(context.Context) error { return nil },
		Watch: func(ctx context.Context) error {
			watches.Add(1)
			select {
			case err := <-release:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}})
	run(t, c)
	poll.Must(t, 5*time.Second, "the first hold", func() bool { return watches.Load() == 1 })
	fc.Step(10 * time.Second)
	release <- io.EOF // held 10 s
	poll.Must(t, 5*time.Second, "held again without a tick", func() bool { return watches.Load() == 2 })
	release <- io.EOF // held for no time
	if poll.Until(100*time.Millisecond, 5*time.Millisecond, func() bool { return watches.Load() > 2 }) {
		t.Fatal("a connection closed at once was held again before the next tick")
	}
	stepUntil(t, fc, 100*time.Millisecond, "held again on the tick", func() bool { return watches.Load() == 3 })
}

// A held connection asks once, then ends with its context, or when the
// peer closes it.
func TestHoldConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conns := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	// accept takes the next connection and answers its request.
	accept := func() net.Conn {
		t.Helper()
		c := <-conns
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil || req.URL.Path != "/haproxy_ready" {
			t.Fatalf("request %v: %v", req, err)
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return c
	}
	hold, err := HoldConnection("http://"+ln.Addr().String()+"/haproxy_ready", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan error, 1)
	go func() { ended <- hold(ctx) }()
	accept()
	select {
	case err := <-ended:
		t.Fatalf("returned while the connection was open: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := <-ended; err == nil {
		t.Fatal("no error after the context ended")
	}
	go func() { ended <- hold(context.Background()) }()
	peer := accept()
	_ = peer.Close() // haproxy's soft stop, its keep-alive timeout, or its death
	if err := <-ended; !errors.Is(err, io.EOF) {
		t.Fatalf("got %v after the peer closed; want EOF", err)
	}
	closedPort, err := HoldConnection("http://127.0.0.1:1/", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := closedPort(context.Background()); err == nil {
		t.Fatal("no error dialing a closed port")
	}
	if _, err := HoldConnection("https://127.0.0.1:9444/haproxy_ready", time.Second); err == nil {
		t.Fatal("an https probe URL accepted: the held connection speaks plain HTTP")
	}
}

func TestProbeAddr(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:9444/haproxy_ready": "127.0.0.1:9444",
		"http://[::1]:9444/haproxy_ready":     "[::1]:9444",
		"http://localhost/haproxy_ready":      "localhost:80",
		"https://localhost/x":                 "localhost:443",
		"/haproxy_ready":                      "",
	} {
		got, err := ProbeAddr(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("ProbeAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
