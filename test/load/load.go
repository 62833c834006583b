// Package load is the one load generator of the integration suite, the lab,
// the benchmarks and the demo: workers send HTTPS GETs, each on a new TCP
// connection, and one Result with one definition of "failed" and "outage"
// says what happened.
package load

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"
)

// Options shape a run. Duration is required: every load loop is bounded.
type Options struct {
	URL string
	// RootCAs verifies the server; nil skips verification (the suites'
	// stand-in backends behind a TCP passthrough).
	RootCAs  *x509.CertPool
	Workers  int           // default 4
	Pause    time.Duration // between one worker's requests
	Requests int           // stop after this many in all; 0: no limit
	Duration time.Duration // upper bound on the run
	Timeout  time.Duration // per request; default 2s
}

// Result is what a run saw.
type Result struct {
	Sent int64 `json:"sent"`
	// Failed counts requests without a 200 answer: a connection, TLS or
	// timeout error, or another status.
	Failed int64 `json:"failed"`
	// FailedInFlight counts the failed requests whose connection had
	// completed its TLS handshake: a server had them (a killed apiserver's
	// requests in flight, an error status). The others, Failed minus
	// FailedInFlight, found no server: refused, reset or timed out before
	// the handshake.
	FailedInFlight int64 `json:"failed_in_flight"`
	// FailedToConnect counts the failed requests whose TCP connect failed
	// (refused, unreachable, timed out): nothing took the connection. The
	// rest of Failed minus FailedInFlight were taken and then dropped
	// before the handshake ended (an apiserver's kernel accepted them as
	// it died).
	FailedToConnect int64 `json:"failed_to_connect"`
	// LongestOutageMS is the longest time between two successful requests
	// with failures in between (to the end of the run if it ended failing).
	LongestOutageMS float64 `json:"longest_outage_ms"`
	// SlowestMS is the longest a successful request took: a stall without
	// failures (a SYN sent again after a second) shows here, not as an
	// outage.
	SlowestMS float64 `json:"slowest_ms"`
	// ByBackend counts successful answers by their X-Backend header (the
	// suites' stand-in apiservers name themselves there).
	ByBackend map[string]int64 `json:"by_backend,omitempty"`
	// Errors are the first five failures, each with when it ended (seconds
	// into the run).
	Errors []string `json:"errors,omitempty"`
	// Start is when the run began; Requests are every request in the order
	// they ended, up to MaxRecords (the rest are counted in Unrecorded),
	// for timelines.
	Start      time.Time `json:"start"`
	Requests   []Record  `json:"requests,omitempty"`
	Unrecorded int64     `json:"unrecorded,omitempty"`
}

// Record is one request: when it ended, in milliseconds after the run's
// start, how long it took, and whether it failed.
type Record struct {
	EndMS     float64 `json:"t"`
	LatencyMS float64 `json:"ms"`
	Failed    bool    `json:"f,omitempty"`
}

// MaxRecords bounds Result.Requests: 300 000 requests, about 30 minutes of
// the lab's load, a few megabytes.
const MaxRecords = 300_000

// LongestOutage is LongestOutageMS as a duration.
func (r Result) LongestOutage() time.Duration {
	return time.Duration(r.LongestOutageMS * float64(time.Millisecond))
}

// recorder keeps the result while workers report.
type recorder struct {
	mu          sync.Mutex
	res         Result
	lastOK      time.Time
	start       time.Time
	failedSince bool
}

func (r *recorder) record(backend string, took time.Duration, st stage, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Sent++
	now := time.Now()
	if len(r.res.Requests) < MaxRecords {
		r.res.Requests = append(r.res.Requests, Record{EndMS: ms(now.Sub(r.start)), LatencyMS: ms(took), Failed: err != nil})
	} else {
		r.res.Unrecorded++
	}
	if err != nil {
		r.res.Failed++
		switch st {
		case handshook:
			r.res.FailedInFlight++
		case notConnected:
			r.res.FailedToConnect++
		}
		r.failedSince = true
		if len(r.res.Errors) < 5 {
			r.res.Errors = append(r.res.Errors, fmt.Sprintf("at %.3fs: %v", now.Sub(r.start).Seconds(), err))
		}
		return
	}
	r.res.ByBackend[backend]++
	r.res.SlowestMS = max(r.res.SlowestMS, float64(took)/float64(time.Millisecond))
	r.closeOutage(now)
	r.lastOK = now
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *recorder) closeOutage(now time.Time) {
	if !r.failedSince {
		return
	}
	if gap := float64(now.Sub(r.lastOK)) / float64(time.Millisecond); gap > r.res.LongestOutageMS {
		r.res.LongestOutageMS = gap
	}
	r.failedSince = false
}

// Run sends load until ctx ends, Duration passes or Requests were sent.
func Run(ctx context.Context, o Options) Result {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Duration <= 0 {
		o.Duration = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	now := time.Now()
	rec := &recorder{res: Result{ByBackend: map[string]int64{}, Start: now}, lastOK: now, start: now}
	var claimed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: o.Timeout, Transport: &http.Transport{DisableKeepAlives: true,
				TLSClientConfig: &tls.Config{RootCAs: o.RootCAs, InsecureSkipVerify: o.RootCAs == nil, MinVersion: tls.VersionTLS12}}} //nolint:gosec // see RootCAs
			for ctx.Err() == nil {
				if o.Requests > 0 && claimed.Add(1) > int64(o.Requests) {
					return
				}
				sent := time.Now()
				backend, st, err := get(ctx, client, o.URL)
				if ctx.Err() != nil && err != nil {
					return // cut off by the end of the run, not a failure
				}
				rec.record(backend, time.Since(sent), st, err)
				if o.Pause > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(o.Pause):
					}
				}
			}
		}()
	}
	wg.Wait()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.closeOutage(time.Now())
	return rec.res
}

// stage is how far a request's connection got.
type stage int

const (
	notConnected stage = iota // the TCP connect failed
	connected                 // TCP up, TLS handshake not finished
	handshook                 // TLS handshake done: a server had it
)

// get sends one request and reports how far its connection got.
func get(ctx context.Context, c *http.Client, url string) (backend string, st stage, err error) {
	var conn, done atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		ConnectDone:      func(_, _ string, err error) { conn.Store(conn.Load() || err == nil) },
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) { done.Store(err == nil) },
	})
	how := func() stage {
		switch {
		case done.Load():
			return handshook
		case conn.Load():
			return connected
		}
		return notConnected
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", notConnected, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", how(), err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", handshook, fmt.Errorf("status %s", resp.Status)
	}
	return resp.Header.Get("X-Backend"), handshook, nil
}
