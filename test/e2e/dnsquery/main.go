// Command dnsquery asks one DNS server for a name's addresses and prints
// them, one a line: the kubeadm lab runs it inside a node to check that
// CoreDNS answers on the kube-dns Service address.
//
//	dnsquery -server 198.19.144.10:53 -name kubernetes.default.svc.cluster.local
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	server := flag.String("server", "", "host:port of the DNS server")
	name := flag.String("name", "", "the name to look up")
	timeout := flag.Duration("timeout", 5*time.Second, "for the whole lookup")
	flag.Parse()
	if *server == "" || *name == "" {
		fmt.Fprintln(os.Stderr, "dnsquery: -server and -name are required")
		os.Exit(2)
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, *server)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	addrs, err := r.LookupHost(ctx, *name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsquery:", err)
		os.Exit(1)
	}
	for _, a := range addrs {
		fmt.Println(a)
	}
}
