package load

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Held is a set of long-lived connections through a load balancer, each an
// HTTPS keep-alive connection that made one request and stays open, like a
// client's watch. Check asks each for another answer on the same connection.
type Held struct {
	addr  string
	mu    sync.Mutex
	conns []*heldConn
}

type heldConn struct {
	c       *tls.Conn
	r       *bufio.Reader
	backend string // who answered the first request
	cut     bool
}

// Hold opens n connections to addr (host:port) and makes one request on
// each.
func Hold(addr string, n int) (*Held, error) {
	h := &Held{addr: addr}
	for i := 0; i < n; i++ {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // passthrough to test backends
		if err != nil {
			h.Close()
			return nil, err
		}
		hc := &heldConn{c: c, r: bufio.NewReader(c)}
		b, err := hc.ask()
		if err != nil {
			h.Close()
			return nil, err
		}
		hc.backend = b
		h.conns = append(h.conns, hc)
	}
	return h, nil
}

func (hc *heldConn) ask() (string, error) {
	_ = hc.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(hc.c, "GET /version HTTP/1.1\r\nHost: lb\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(hc.r, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	buf := make([]byte, 512)
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			break
		}
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return resp.Header.Get("X-Backend"), nil
}

// Check asks every connection not yet cut for an answer and returns how many
// connections are cut, in all and by the backend that first answered them.
func (h *Held) Check() (cut int, byBackend map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	byBackend = map[string]int{}
	for _, hc := range h.conns {
		if !hc.cut {
			if _, err := hc.ask(); err != nil {
				hc.cut = true
				hc.c.Close()
			}
		}
		if hc.cut {
			cut++
			byBackend[hc.backend]++
		}
	}
	return cut, byBackend
}

// Backends counts the connections by the backend that first answered them.
func (h *Held) Backends() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for _, hc := range h.conns {
		out[hc.backend]++
	}
	return out
}

// Close closes every connection.
func (h *Held) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, hc := range h.conns {
		hc.c.Close()
	}
}
