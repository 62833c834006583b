package load

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// Failures and the outage are what the result says: a server that fails a
// stretch of requests in the middle shows as failed requests and an outage
// at least as long as the stretch.
func TestRunCountsFailuresAndOutage(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		if i > 10 && i <= 20 {
			time.Sleep(10 * time.Millisecond)
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Backend", "m1")
	}))
	defer srv.Close()
	res := Run(context.Background(), Options{URL: srv.URL, Workers: 1, Requests: 40, Duration: 30 * time.Second})
	if res.Sent != 40 || res.Failed != 10 || res.FailedInFlight != 10 || res.ByBackend["m1"] != 30 {
		t.Fatalf("result %+v, want 40 sent, 10 failed (all in flight: a server answered), 30 from m1", res)
	}
	if res.LongestOutage() < 100*time.Millisecond || len(res.Errors) != 5 {
		t.Fatalf("outage %v, errors %v; want at least the 10 × 10 ms failing and five errors", res.LongestOutage(), res.Errors)
	}
	// The per-request record: every request, in order, the failing ones
	// marked, each ending after the one before.
	if len(res.Requests) != 40 || res.Unrecorded != 0 {
		t.Fatalf("%d records, %d unrecorded; want 40", len(res.Requests), res.Unrecorded)
	}
	failed := 0
	for i, rec := range res.Requests {
		if rec.Failed {
			failed++
			if i < 10 || i >= 20 || rec.LatencyMS < 10 {
				t.Errorf("request %d recorded failed after %.1f ms; want only 11-20, each at least 10 ms", i+1, rec.LatencyMS)
			}
		}
		if i > 0 && rec.EndMS < res.Requests[i-1].EndMS {
			t.Errorf("request %d ended before request %d", i+1, i)
		}
	}
	if failed != 10 {
		t.Errorf("%d records failed, want 10", failed)
	}
}

// A slow success is a stall, not an outage: it shows as the slowest
// request.
func TestRunReportsTheSlowestRequest(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		if n.Add(1) == 3 {
			time.Sleep(300 * time.Millisecond)
		}
	}))
	defer srv.Close()
	res := Run(context.Background(), Options{URL: srv.URL, Workers: 1, Requests: 5, Duration: 30 * time.Second})
	if res.Failed != 0 || res.LongestOutageMS != 0 || res.SlowestMS < 300 {
		t.Fatalf("result %+v; want 0 failed, no outage, slowest at least 300 ms", res)
	}
}

// A connection taken and dropped before the TLS handshake ends (a
// listener that closes every connection at once, as haproxy does without a
// server to forward to) is neither in flight nor a failed connect.
func TestRunTellsNewConnectionsFromInFlight(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	res := Run(context.Background(), Options{URL: "https://" + ln.Addr().String() + "/", Workers: 1, Requests: 5, Duration: 30 * time.Second})
	if res.Sent != 5 || res.Failed != 5 || res.FailedInFlight != 0 || res.FailedToConnect != 0 {
		t.Fatalf("result %+v, want 5 sent, 5 failed, none in flight, all connected", res)
	}
}

// A refused connect is a failure to connect.
func TestRunCountsRefusedConnects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	res := Run(context.Background(), Options{URL: "https://" + addr + "/", Workers: 1, Requests: 3, Duration: 30 * time.Second})
	if res.Failed != 3 || res.FailedToConnect != 3 || res.FailedInFlight != 0 {
		t.Fatalf("result %+v, want 3 failed, all to connect", res)
	}
}

// The run is bounded by Duration whatever the server does.
func TestRunIsBounded(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	start := time.Now()
	res := Run(context.Background(), Options{URL: srv.URL, Duration: 200 * time.Millisecond, Pause: time.Millisecond})
	if d := time.Since(start); d > 5*time.Second || res.Sent == 0 || res.Failed != 0 {
		t.Fatalf("ran %v, %+v", d, res)
	}
}
