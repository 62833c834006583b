package harness

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// FakeMaster is a TLS server on its own loopback address standing in for a
// master's kube-apiserver: it answers /readyz (haproxy's health check) and
// names itself in every response, so a test sees which backend served it.
type FakeMaster struct {
	Name    string
	Address string
	Port    int
	Hits    atomic.Int64

	handler http.Handler
	srv     *http.Server
	healthy atomic.Bool
	hung    atomic.Bool
	mu      sync.Mutex
	ln      net.Listener
	tlsConf *tls.Config
}

// StartFakeMaster listens on address:port.
func StartFakeMaster(ca *CA, name, address string, port int) (*FakeMaster, error) {
	tlsConf, err := ca.TLSConfig(name, []string{name}, []net.IP{net.ParseIP(address)})
	if err != nil {
		return nil, err
	}
	m := &FakeMaster{Name: name, Address: address, Port: port, tlsConf: tlsConf}
	m.healthy.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		for m.hung.Load() && r.Context().Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		if r.URL.Path == "/readyz" && !m.healthy.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		m.Hits.Add(1)
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "ok %s\n", name)
	})
	m.handler = mux
	return m, m.Start()
}

// Start (re)opens the listener.
func (m *FakeMaster) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ln != nil {
		return errors.New("already listening")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(m.Address, strconv.Itoa(m.Port)))
	if err != nil {
		return fmt.Errorf("fake master %s: %w", m.Name, err)
	}
	m.ln = ln
	// A closed http.Server cannot serve again: one per start.
	m.srv = &http.Server{Handler: m.handler, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: log.New(io.Discard, "", 0)}
	go func(srv *http.Server) { _ = srv.Serve(tls.NewListener(ln, m.tlsConf)) }(m.srv)
	return nil
}

// SetHung makes every request wait, unanswered, until it is set back (an
// apiserver that accepts connections and never answers).
func (m *FakeMaster) SetHung(hung bool) { m.hung.Store(hung) }

// SetHealthy makes /readyz answer 200 or 503.
func (m *FakeMaster) SetHealthy(ok bool) { m.healthy.Store(ok) }

// Close stops the server.
func (m *FakeMaster) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.srv != nil {
		_ = m.srv.Close()
	}
	m.ln = nil
}
