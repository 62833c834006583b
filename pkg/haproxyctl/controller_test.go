package haproxyctl

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/apply"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxycfg"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
	"github.com/haproxy-monitor/haproxy-monitor/test/fakesock"
	"github.com/haproxy-monitor/haproxy-monitor/test/poll"
)

const cfgAB = `backend masters
  server a 198.18.0.1:6443 check
  server b fd00::2:6443 check
`

const cfgA = `backend masters
  server a 198.18.0.1:6443 check
`

func startController(t *testing.T, opts Options) *Controller {
	t.Helper()
	opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 40*time.Millisecond
	opts.RetryMin, opts.RetryMax = 10*time.Millisecond, 40*time.Millisecond
	if opts.File == nil {
		opts.File = &apply.File{Path: filepath.Join(t.TempDir(), "haproxy.cfg")}
	}
	c := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// next returns the next event other than a health sample.
func next(t *testing.T, c *Controller) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-c.Events():
			if ev.Kind != Sampled && ev.Kind != StateFileWritten && ev.Kind != Current {
				return ev
			}
		case <-timeout:
			t.Fatal("no event within 10s")
		}
	}
}

func expect(t *testing.T, c *Controller, kinds ...Kind) Event {
	t.Helper()
	var ev Event
	for _, k := range kinds {
		if ev = next(t, c); ev.Kind != k {
			t.Fatalf("event %v (%v %s), want %v", ev.Kind, ev.Err, ev.Reason, k)
		}
	}
	return ev
}

// An undeliverable reload is retried until the reloader's socket appears,
// then delivered once, carrying the event it serves.
func TestControllerRetriesUntilSocketAppears(t *testing.T) {
	path := sockPath(t)
	c := startController(t, Options{Socket: path})
	at := time.Now().Add(-time.Second)
	c.Serve(Target{Config: []byte(cfgA), EventAt: at})
	if ev := expect(t, c, Written); ev.Path != PathReload || ev.Reason == "" {
		t.Fatalf("written %+v", ev)
	}
	expect(t, c, DeliveryFailed, DeliveryFailed)
	l := fakesock.NewReloader(t, path)
	var ev Event
	for ev = next(t, c); ev.Kind == DeliveryFailed; ev = next(t, c) {
	}
	if ev.Kind != Delivered || ev.Attempt < 3 || !ev.EventAt.Equal(at) {
		t.Fatalf("got %+v, want a delivery after the failed attempts carrying the event time", ev)
	}
	poll.Must(t, 10*time.Second, "the reload line", func() bool { lines, _ := l.Lines(); return len(lines) == 1 })
}

// Changes that arrive while a delivery is owed end in one reload, with the
// earliest event.
func TestControllerCoalesces(t *testing.T) {
	path := sockPath(t)
	c := startController(t, Options{Socket: path})
	first := time.Now().Add(-time.Minute)
	for i := 0; i < 20; i++ {
		at := first.Add(time.Duration(i) * time.Second)
		c.Serve(Target{Config: []byte(fmt.Sprintf("%s# %d\n", cfgA, i)), EventAt: at})
	}
	var ev Event
	for ev = next(t, c); ev.Kind == Written || ev.Kind == DeliveryFailed; ev = next(t, c) {
		if ev.Kind == DeliveryFailed && ev.Attempt == 2 {
			fakesock.NewReloader(t, path)
		}
	}
	if ev.Kind != Delivered || !ev.EventAt.Equal(first) {
		t.Fatalf("got %+v, want one delivery for the earliest event", ev)
	}
	c.Serve(Target{Config: []byte(cfgAB)})
	expect(t, c, Written, Delivered)
}

// A delivered reload haproxy does not act on is sent again after the verify
// timeout; once haproxy serves the set, it is confirmed with the send time.
func TestControllerConfirmsAndResends(t *testing.T) {
	path, rt := sockPath(t), sockPath(t)
	l := fakesock.NewReloader(t, path)
	fake := fakesock.NewRuntimeAPI(t, rt, "masters a 198.18.0.1 6443")
	c := startController(t, Options{Socket: path, StatsSocket: rt, VerifyTimeout: 200 * time.Millisecond})
	c.Serve(Target{Config: []byte(cfgAB)})
	sent := expect(t, c, Written, Delivered).At
	ev := expect(t, c, NotServing)
	if !ev.SentAt.Equal(sent) || ev.At.Sub(sent) < 200*time.Millisecond {
		t.Fatalf("not-serving %+v after %v", ev, ev.At.Sub(sent))
	}
	expect(t, c, Delivered)
	fake.Set("masters a 198.18.0.1 6443", "masters b fd00::2 6443")
	if ev := expect(t, c, Serving); ev.SentAt.IsZero() || ev.Path != PathReload {
		t.Fatalf("serving %+v, want after a reload with its send time", ev)
	}
	poll.Must(t, 10*time.Second, "two reload lines", func() bool { lines, _ := l.Lines(); return len(lines) >= 2 })
	if lines, _ := l.Lines(); len(lines) != 2 {
		t.Fatalf("%d reloads, want the first and the one sent again", len(lines))
	}
}

// A configuration found on disk is checked, not rewritten or reloaded, when
// haproxy serves it; reloaded when haproxy serves something else.
func TestControllerChecksConfigFoundOnDisk(t *testing.T) {
	path, rt := sockPath(t), sockPath(t)
	l := fakesock.NewReloader(t, path)
	fake := fakesock.NewRuntimeAPI(t, rt, "masters a 198.18.0.1 6443")
	file := &apply.File{Path: filepath.Join(t.TempDir(), "haproxy.cfg")}
	if _, err := file.Apply(context.Background(), []byte(cfgA)); err != nil {
		t.Fatal(err)
	}
	c := startController(t, Options{Socket: path, StatsSocket: rt, File: file})
	c.Serve(Target{Config: []byte(cfgA)})
	if ev := expect(t, c, Serving); !ev.SentAt.IsZero() || ev.Path != "" {
		t.Fatalf("a check reported a send: %+v", ev)
	}
	fake.Set("masters a 198.18.0.9 6443")
	c2 := startController(t, Options{Socket: path, StatsSocket: rt, File: file})
	c2.Serve(Target{Config: []byte(cfgA)})
	expect(t, c2, Stale, Delivered)
	poll.Must(t, 10*time.Second, "the reload line", func() bool { lines, _ := l.Lines(); return len(lines) >= 1 })
	if lines, _ := l.Lines(); len(lines) != 1 {
		t.Fatalf("%d reloads, want 1 (for the stale one only)", len(lines))
	}
}

// Without a runtime API socket (a template that has none) a reload cannot be
// confirmed: said once, not retried.
func TestControllerWithoutRuntimeSocket(t *testing.T) {
	path := sockPath(t)
	l := fakesock.NewReloader(t, path)
	c := startController(t, Options{Socket: path, StatsSocket: sockPath(t), VerifyTimeout: 100 * time.Millisecond})
	c.Serve(Target{Config: []byte(cfgA)})
	expect(t, c, Written, Delivered, Unverifiable)
	poll.Must(t, 10*time.Second, "the reload line", func() bool { lines, _ := l.Lines(); return len(lines) >= 1 })
	if lines, _ := l.Lines(); len(lines) != 1 {
		t.Fatalf("%d reloads, want 1", len(lines))
	}
}

func TestServes(t *testing.T) {
	rt := func(rows ...string) []runtimeapi.Server {
		var out []runtimeapi.Server
		for _, r := range rows {
			p := strings.Fields(r)
			out = append(out, runtimeapi.Server{Backend: p[0], Name: p[1], Addr: p[2], Port: p[3]})
		}
		return out
	}
	want := haproxycfg.Servers([]byte(cfgAB + "backend other\n  server c api.example:443\n"))
	tests := []struct {
		name    string
		servers []runtimeapi.Server
		ok      bool
	}{
		{"exactly", rt("masters a 198.18.0.1 6443", "masters b fd00::2 6443", "other c 203.0.113.7 443"), true},
		{"one missing", rt("masters a 198.18.0.1 6443", "other c 203.0.113.7 443"), false},
		{"one extra", rt("masters a 198.18.0.1 6443", "masters b fd00::2 6443", "masters x 198.18.0.9 6443", "other c 1.2.3.4 443"), false},
		{"other address", rt("masters a 198.18.0.9 6443", "masters b fd00::2 6443", "other c 1.2.3.4 443"), false},
		{"other port", rt("masters a 198.18.0.1 6444", "masters b fd00::2 6443", "other c 1.2.3.4 443"), false},
		{"same name in another backend", rt("other a 198.18.0.1 6443", "masters b fd00::2 6443", "other c 1.2.3.4 443"), false},
	}
	for _, tc := range tests {
		if got := Serves(tc.servers, want); got != tc.ok {
			t.Errorf("%s: Serves = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

// Durations left zero get the documented defaults; the stats socket
// defaults to the admin socket.
func TestOptionDefaults(t *testing.T) {
	got := Options{AdminSocket: "/a.sock"}.withDefaults()
	want := Options{AdminSocket: "/a.sock", StatsSocket: "/a.sock", VerifyTimeout: 10 * time.Second, SampleInterval: 6 * time.Second,
		SendTimeout: 2 * time.Second, MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second,
		RetryMin: time.Second, RetryMax: 30 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("defaults %+v\nwant     %+v", got, want)
	}
	set := Options{StatsSocket: "/s.sock", VerifyTimeout: time.Millisecond, SampleInterval: time.Millisecond,
		SendTimeout: time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
		RetryMin: time.Millisecond, RetryMax: time.Millisecond}
	if got := set.withDefaults(); !reflect.DeepEqual(got, set) {
		t.Fatalf("set options changed: %+v", got)
	}
}

// The sampler counts the servers up and down from the stats socket.
func TestControllerSamples(t *testing.T) {
	rt := sockPath(t)
	fakesock.NewRuntimeAPI(t, rt, "masters a 198.18.0.1 6443", "masters b fd00::2 6443", "masters c 198.18.0.3 6443 down")
	c := startController(t, Options{Socket: sockPath(t), StatsSocket: rt, SampleInterval: time.Hour})
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-c.Events():
			if ev.Kind != Sampled {
				continue
			}
			if ev.Err != nil || ev.Up != 2 || ev.Down != 1 {
				t.Fatalf("sample %+v, want 2 up and 1 down", ev)
			}
			return
		case <-timeout:
			t.Fatal("no sample within 10s")
		}
	}
}

// Before a reload the servers' states are saved to the configuration's
// server-state-file; a configuration without one gets none.
func TestControllerWritesTheStateFile(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	for _, tc := range []struct {
		name, cfg string
		written   bool
	}{
		{"without a state file", cfgA, false},
		{"with one", "global\n  server-state-file " + state + "\n" + cfgA, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, rt := sockPath(t), sockPath(t)
			fakesock.NewReloader(t, path)
			fakesock.NewRuntimeAPI(t, rt, "masters a 198.18.0.1 6443")
			c := startController(t, Options{Socket: path, StatsSocket: rt, SampleInterval: time.Hour})
			c.Serve(Target{Config: []byte(tc.cfg)})
			written := false
			timeout := time.After(10 * time.Second)
			for done := false; !done; {
				select {
				case ev := <-c.Events():
					switch ev.Kind {
					case StateFileWritten:
						written = ev.Err == nil
					case Delivered:
						done = true
					}
				case <-timeout:
					t.Fatal("no delivery within 10s")
				}
			}
			b, err := os.ReadFile(state)
			if written != tc.written || (tc.written && (err != nil || !strings.Contains(string(b), "masters 1 a 198.18.0.1"))) {
				t.Fatalf("state file written %v (%q, %v), want %v", written, b, err, tc.written)
			}
		})
	}
}

// Every phase the controller moves to is logged.
func TestControllerLogsPhases(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	path, rt := sockPath(t), sockPath(t)
	fakesock.NewReloader(t, path)
	fakesock.NewRuntimeAPI(t, rt, "masters a 198.18.0.1 6443")
	c := startController(t, Options{Socket: path, StatsSocket: rt, Log: log})
	c.Serve(Target{Config: []byte(cfgA)})
	expect(t, c, Written, Delivered, Serving)
	poll.Must(t, 10*time.Second, "the serving phase logged", func() bool {
		for _, e := range hook.AllEntries() {
			if e.Message == "haproxy: serving" && e.Data["to"] == "serving" && e.Data["from"] != "serving" {
				return true
			}
		}
		return false
	})
	for _, e := range hook.AllEntries() {
		if e.Data["from"] == e.Data["to"] {
			t.Errorf("logged a move to the same phase: %v", e.Data)
		}
	}
}
