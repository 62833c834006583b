// Command loadgen runs test/load in another network namespace (the lab's
// client host) until its time limit or SIGTERM, then prints the load.Result
// as JSON.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/load"
)

func main() {
	o := load.Options{}
	flag.StringVar(&o.URL, "url", "", "URL to GET")
	caFile := flag.String("ca", "", "CA bundle to verify the server with")
	flag.DurationVar(&o.Duration, "duration", time.Minute, "upper bound on the run")
	flag.IntVar(&o.Workers, "workers", 4, "concurrent clients")
	flag.DurationVar(&o.Pause, "interval", 20*time.Millisecond, "pause between a worker's requests")
	flag.Parse()
	ca, err := os.ReadFile(*caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	o.RootCAs = x509.NewCertPool()
	o.RootCAs.AppendCertsFromPEM(ca)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	_ = json.NewEncoder(os.Stdout).Encode(load.Run(ctx, o))
}
