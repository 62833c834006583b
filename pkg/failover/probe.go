package failover

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// HoldConnection returns a Watch that opens a connection to haproxy's probe
// listener (probeURL, its monitor-uri), asks for probeURL once and keeps the
// connection open, idle, until it is closed: by the kernel the moment
// haproxy dies, by haproxy on a reload's soft stop (it closes idle
// keep-alive connections at once; one that never sent a request would keep
// the old process alive until its request timeout) or after its keep-alive
// timeout, or by ctx.
//
// The request is plain HTTP: an https:// or unusable probeURL is an error.
func HoldConnection(probeURL string, dialTimeout time.Duration) (func(ctx context.Context) error, error) {
	addr, err := ProbeAddr(probeURL)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(probeURL) // ProbeAddr parsed it
	if u.Scheme != "http" {
		return nil, fmt.Errorf("probe URL %q: the held connection speaks plain HTTP", probeURL)
	}
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n\r\n"
	return func(ctx context.Context) error {
		d := net.Dialer{Timeout: dialTimeout}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
		defer stop()
		defer conn.Close()
		if _, err := io.WriteString(conn, req); err != nil {
			return err
		}
		r := bufio.NewReader(conn)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		_ = resp.Body.Close()
		if resp.Close {
			return fmt.Errorf("haproxy closes the connection after answering: %s", resp.Status)
		}
		// Idle from here: any byte or the end is the event.
		_, err = r.ReadByte()
		if err == nil {
			err = errors.New("unexpected data on the held connection")
		}
		return err
	}, nil
}

// ProbeAddr is the host:port a probe URL connects to.
func ProbeAddr(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	if u.Host == "" {
		return "", fmt.Errorf("probe URL %q has no host", rawURL)
	}
	if u.Port() != "" {
		return u.Host, nil
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// HTTPProbe returns a probe that GETs url and wants a 2xx answer: haproxy's
// monitor-uri, which fails while no apiserver backend is up.
func HTTPProbe(url string) func(ctx context.Context) error {
	return probe(&http.Transport{DisableKeepAlives: true}, url, func(code int) bool { return code/100 == 2 })
}

// APIServerProbe returns a probe of a kube-apiserver's /readyz at url that
// skips certificate verification (it asks only whether the apiserver
// serves): 200 passes, and so do 401 and 403, an apiserver that serves but
// does not answer anonymous readiness checks.
func APIServerProbe(url string) func(ctx context.Context) error {
	tr := &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // readiness only, nothing sent
	return probe(tr, url, func(code int) bool {
		return code == http.StatusOK || code == http.StatusUnauthorized || code == http.StatusForbidden
	})
}

// probe GETs url through tr and passes when ok accepts the status.
func probe(tr *http.Transport, url string, ok func(code int) bool) func(ctx context.Context) error {
	client := &http.Client{Transport: tr}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		if !ok(resp.StatusCode) {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}
