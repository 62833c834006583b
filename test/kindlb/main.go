// Command kindlb stands in for kind's load-balancer image (envoy, which
// Debian does not package and no registry serves here) in the kind lab: it
// is scaffolding for kind's own part only. kind starts it as "envoy -c
// /home/envoy/envoy.yaml" and then writes the listener (LDS) and cluster
// (CDS) files that envoy's bootstrap names. kindlb reads them, listens on
// the listener's port and passes each TCP connection to the next endpoint
// of the cluster that accepts it, reading the files again when they change.
// It does no health checks beyond a connect: the lab's measurements go
// through the VIP, never through it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"
)

// bootstrap is the part of envoy's bootstrap kind writes that names the
// dynamic files.
type bootstrap struct {
	DynamicResources struct {
		CDS struct {
			Path struct {
				Path string `json:"path"`
			} `json:"path_config_source"`
		} `json:"cds_config"`
		LDS struct {
			Path struct {
				Path string `json:"path"`
			} `json:"path_config_source"`
		} `json:"lds_config"`
	} `json:"dynamic_resources"`
}

type socketAddress struct {
	Address   string `json:"address"`
	PortValue int    `json:"port_value"`
}

// resources is an LDS or CDS file: the listeners' addresses, the clusters'
// endpoints.
type resources struct {
	Resources []struct {
		Address struct {
			Socket socketAddress `json:"socket_address"`
		} `json:"address"`
		LoadAssignment struct {
			Endpoints []struct {
				LBEndpoints []struct {
					Endpoint struct {
						Address struct {
							Socket socketAddress `json:"socket_address"`
						} `json:"address"`
					} `json:"endpoint"`
				} `json:"lb_endpoints"`
			} `json:"endpoints"`
		} `json:"load_assignment"`
	} `json:"resources"`
}

func readYAML(path string, into any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return yaml.Unmarshal(b, into)
}

// config is what the files say: the listener's host:port and the
// endpoints'.
type config struct {
	listen    string
	endpoints []string
}

func load(b bootstrap) (config, error) {
	var lds, cds resources
	if err := readYAML(b.DynamicResources.LDS.Path.Path, &lds); err != nil {
		return config{}, err
	}
	if err := readYAML(b.DynamicResources.CDS.Path.Path, &cds); err != nil {
		return config{}, err
	}
	var c config
	for _, r := range lds.Resources {
		s := r.Address.Socket
		c.listen = net.JoinHostPort(s.Address, strconv.Itoa(s.PortValue))
	}
	for _, r := range cds.Resources {
		for _, e := range r.LoadAssignment.Endpoints {
			for _, lb := range e.LBEndpoints {
				s := lb.Endpoint.Address.Socket
				c.endpoints = append(c.endpoints, net.JoinHostPort(s.Address, strconv.Itoa(s.PortValue)))
			}
		}
	}
	return c, nil
}

func main() {
	path := flag.String("c", "/home/envoy/envoy.yaml", "envoy bootstrap file (kind's)")
	flag.Parse()
	var b bootstrap
	if err := readYAML(*path, &b); err != nil {
		log.Fatalf("kindlb: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var endpoints atomic.Pointer[[]string]
	endpoints.Store(&[]string{})
	var (
		mu       sync.Mutex
		listener net.Listener
		listenOn string
	)
	apply := func(c config) {
		endpoints.Store(&c.endpoints)
		mu.Lock()
		defer mu.Unlock()
		if c.listen == listenOn || c.listen == "" {
			return
		}
		if listener != nil {
			listener.Close()
		}
		ln, err := net.Listen("tcp", c.listen)
		if err != nil {
			log.Printf("kindlb: listen %s: %v", c.listen, err)
			return
		}
		listener, listenOn = ln, c.listen
		log.Printf("kindlb: listening on %s", c.listen)
		go serve(ln, &endpoints)
	}
	var last string
	for {
		c, err := load(b)
		if err == nil {
			if key := fmt.Sprint(c); key != last {
				last = key
				log.Printf("kindlb: %s -> %v", c.listen, c.endpoints)
				apply(c)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// serve passes every connection on ln to the endpoints, in turn, skipping
// one that refuses.
func serve(ln net.Listener, endpoints *atomic.Pointer[[]string]) {
	var next atomic.Uint64
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		go func() {
			defer c.Close()
			eps := *endpoints.Load()
			for range eps {
				ep := eps[int(next.Add(1))%len(eps)]
				up, err := net.DialTimeout("tcp", ep, 2*time.Second)
				if err != nil {
					continue
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); _ = up.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, up)
				return
			}
		}()
	}
}
