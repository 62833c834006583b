package haproxyctl

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
)

// DefaultSocket is where the static pod's reloader listens.
const DefaultSocket = "/var/run/haproxy/haproxy-master.sock"

// Send writes one reload command to the socket at path. ctx bounds the whole
// exchange; a socket that accepts but never reads cannot hang the caller.
func Send(ctx context.Context, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("connecting to reload socket: %w", runtimeapi.SocketError(path, err))
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte("reload\n")); err != nil {
		return fmt.Errorf("writing to reload socket %s: %w", path, err)
	}
	// Half-close so the reloader's "read" sees the end of the line and the
	// connection, then close: socat forks one handler per connection.
	if uc, ok := conn.(*net.UnixConn); ok {
		_ = uc.CloseWrite()
	}
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
