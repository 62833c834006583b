package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// apiRequests sums apiserver_request_total for the resources the monitors
// read (nodes, endpointslices), from the apiserver's own metrics.
func (b *bench) apiRequests() (float64, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: b.cp.CA.Pool(), MinVersion: tls.VersionTLS12}}}
	req, _ := http.NewRequest(http.MethodGet, b.cp.APIServers[0].URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+b.cp.Token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		if !strings.Contains(line, `resource="nodes"`) && !strings.Contains(line, `resource="endpointslices"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, nil
}

// apiLoad: requests per minute in steady state, for 1 and 3 monitors.
func (b *bench) apiLoad() error {
	ctx := context.Background()
	if err := b.resetNodes(ctx); err != nil {
		return err
	}
	rate := map[string]float64{}
	for _, n := range []int{1, 3} {
		for _, impl := range []string{ours, baseline} {
			var ins []*instance
			for i := 0; i < n; i++ {
				in, err := b.start(impl)
				if err != nil {
					return err
				}
				ins = append(ins, in)
			}
			for _, in := range ins {
				if err := in.ready(); err != nil {
					return err
				}
			}
			before, err := b.apiRequests()
			if err != nil {
				return err
			}
			start := time.Now()
			time.Sleep(b.cfg.apiWindow) // the measurement window itself
			after, err := b.apiRequests()
			if err != nil {
				return err
			}
			perMin := (after - before) / time.Since(start).Minutes()
			key := fmt.Sprintf("%s/%d", impl, n)
			rate[key] = perMin
			b.sample(fmt.Sprintf("APILoad/monitors=%d/impl=%s", n, impl), perMin, "req/min")
			fmt.Printf("   %-16s x%d  %.1f requests/min\n", impl, n, perMin)
			for _, in := range ins {
				in.stop()
			}
		}
	}
	b.printf("\n## 2. API load in steady state\n\n")
	b.printf("Requests to kube-apiserver for nodes and endpointslices over a %v window, from the apiserver's own\n", b.cfg.apiWindow)
	b.printf("`apiserver_request_total`. A watch counts once, when it ends (every 5-10 minutes per watch), so a window\n")
	b.printf("shorter than that can show 0 for haproxy-monitor; its long-run rate is at most 3 watches × 1 per 5 min = 0.6/min\n")
	b.printf("per monitor.\n\n")
	b.printf("| monitors | haproxy-monitor | baseline | ratio |\n|---|---|---|---|\n")
	for _, n := range []int{1, 3} {
		o, base := rate[fmt.Sprintf("%s/%d", ours, n)], rate[fmt.Sprintf("%s/%d", baseline, n)]
		b.printf("| %d | %.1f req/min | %.1f req/min | %s |\n", n, o, base, ratio(base, o, 0.6*float64(n)))
	}
	return nil
}

// ratio is base/o, or a lower bound against floor when o measured zero.
func ratio(base, o, floor float64) string {
	if o > 0 {
		return fmt.Sprintf("%.0f×", base/o)
	}
	return fmt.Sprintf("≥ %.0f× (ours 0 in the window; vs its %.1f/min bound)", base/floor, floor)
}
