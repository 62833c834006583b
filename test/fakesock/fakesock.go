// Package fakesock serves, on real unix sockets, the two sockets of the
// haproxy container that the monitor talks to, for unit tests: the
// reloader's (recording every line it receives) and haproxy's runtime API
// (answering "show servers state" from rows the test sets). Suites that need
// the real thing use test/harness's haproxy and the manifest's reloader.
package fakesock

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
)

// Reloader stands in for the reloader's socket: it accepts connections
// and records each line.
type Reloader struct {
	mu    sync.Mutex
	lines []string
	conns int
}

// NewReloader listens on path until the test ends.
func NewReloader(t testing.TB, path string) *Reloader {
	t.Helper()
	r := &Reloader{}
	serve(t, path, func(c net.Conn) {
		r.mu.Lock()
		r.conns++
		r.mu.Unlock()
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, sc.Text())
			r.mu.Unlock()
		}
	})
	return r
}

// Lines is every line received, in order, and the connections made.
func (r *Reloader) Lines() (lines []string, conns int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...), r.conns
}

// Reloads counts the "reload" lines; any other line fails t.
func (r *Reloader) Reloads(t testing.TB) int {
	t.Helper()
	lines, _ := r.Lines()
	n := 0
	for _, l := range lines {
		if l != "reload" {
			t.Fatalf("unexpected line on the reload socket: %q", l)
		}
		n++
	}
	return n
}

// RuntimeAPI stands in for haproxy's runtime API socket: it answers every
// command with "show servers state" for the rows set, each "backend name
// address port", as a haproxy that loaded them would; a fifth word "down"
// shows the server down.
type RuntimeAPI struct {
	mu   sync.Mutex
	rows []string
}

// NewRuntimeAPI listens on path until the test ends.
func NewRuntimeAPI(t testing.TB, path string, rows ...string) *RuntimeAPI {
	t.Helper()
	a := &RuntimeAPI{rows: rows}
	serve(t, path, func(c net.Conn) {
		_, _ = bufio.NewReader(c).ReadString('\n')
		_, _ = c.Write([]byte(a.state()))
	})
	return a
}

// Set replaces the rows.
func (a *RuntimeAPI) Set(rows ...string) {
	a.mu.Lock()
	a.rows = rows
	a.mu.Unlock()
}

func (a *RuntimeAPI) state() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var b strings.Builder
	b.WriteString("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port\n")
	for i, r := range a.rows {
		f := strings.Fields(r)
		op := 2
		if len(f) > 4 && f[4] == "down" {
			op = 0
		}
		fmt.Fprintf(&b, "3 %s %d %s %s %d 0 1 1 1 1 0 2 0 0 0 0 - %s\n", f[0], i+1, f[1], f[2], op, f[3])
	}
	return b.String()
}

// serve accepts on a unix socket at path, one goroutine per connection,
// closing each when handle returns.
func serve(t testing.TB, path string, handle func(net.Conn)) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}
