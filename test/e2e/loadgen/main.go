// Command loadgen sends HTTPS GETs to one URL from a few workers, each on a
// new TCP connection, until its time limit or SIGTERM, then prints what
// happened as JSON: requests, failures and the longest outage (the longest
// gap between successes that had failures in it). The lab runs it inside the
// client namespace.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

type result struct {
	Sent            int64    `json:"sent"`
	Failed          int64    `json:"failed"`
	LongestOutageMS float64  `json:"longest_outage_ms"`
	Errors          []string `json:"errors,omitempty"`
}

func main() {
	url := flag.String("url", "", "URL to GET")
	caFile := flag.String("ca", "", "CA bundle to verify the server with")
	limit := flag.Duration("duration", time.Minute, "upper bound on the run")
	workers := flag.Int("workers", 4, "concurrent clients")
	pause := flag.Duration("interval", 20*time.Millisecond, "pause between a worker's requests")
	flag.Parse()
	ca, err := os.ReadFile(*caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *limit)
	defer cancel()

	var mu sync.Mutex
	res := result{}
	lastOK := time.Now()
	failedSince := false
	record := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Sent++
		now := time.Now()
		if err != nil {
			res.Failed++
			failedSince = true
			if len(res.Errors) < 5 {
				res.Errors = append(res.Errors, err.Error())
			}
			return
		}
		if failedSince {
			if gap := float64(now.Sub(lastOK)) / float64(time.Millisecond); gap > res.LongestOutageMS {
				res.LongestOutageMS = gap
			}
			failedSince = false
		}
		lastOK = now
	}
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
				DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
			for ctx.Err() == nil {
				resp, err := client.Get(*url)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				if ctx.Err() != nil {
					return // cut off by the end of the run, not a failure
				}
				record(err)
				select {
				case <-ctx.Done():
				case <-time.After(*pause):
				}
			}
		}()
	}
	wg.Wait()
	if failedSince {
		if gap := float64(time.Since(lastOK)) / float64(time.Millisecond); gap > res.LongestOutageMS {
			res.LongestOutageMS = gap
		}
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
}
