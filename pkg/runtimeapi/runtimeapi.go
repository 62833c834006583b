// Package runtimeapi reads haproxy's Runtime API (a stats socket) to learn
// which servers the running haproxy really has, so a reload can be confirmed
// instead of assumed.
package runtimeapi

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Server is one server of a backend as the running haproxy has it.
type Server struct {
	Backend string
	Name    string
	Addr    string
	Port    string
	Up      bool // srv_op_state 2 (SRV_ST_RUNNING)
	// Admin is srv_admin_state: 0x01 forced maintenance, 0x08 forced
	// drain, 0x10 drain inherited.
	Admin int
}

// Draining reports whether the server takes no new connections because it
// is in drain.
func (s Server) Draining() bool { return s.Admin&0x18 != 0 }

// Command sends one command and returns haproxy's whole answer.
func Command(ctx context.Context, socket, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return "", SocketError(socket, err)
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	_ = c.SetDeadline(dl)
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// SocketError explains a failed dial of a unix socket path that exists but
// is no socket ("connection refused" would hide it), and passes other errors
// through.
func SocketError(path string, err error) error {
	st, serr := os.Stat(path)
	if serr != nil || st.Mode()&fs.ModeSocket != 0 {
		return err
	}
	kind := "regular file"
	if st.IsDir() {
		kind = "directory"
	} else if !st.Mode().IsRegular() {
		kind = st.Mode().Type().String()
	}
	return fmt.Errorf("%s is a %s, not a unix socket: %w", path, kind, err)
}

// ServersState returns the servers of backend from "show servers state";
// an empty backend means all of them.
func ServersState(ctx context.Context, socket, backend string) ([]Server, error) {
	out, err := Command(ctx, socket, strings.TrimSpace("show servers state "+backend))
	if err != nil {
		return nil, err
	}
	return ParseServersState(out)
}

// ByName indexes the servers of one backend by name.
func ByName(servers []Server, backend string) map[string]Server {
	out := map[string]Server{}
	for _, s := range servers {
		if s.Backend == backend {
			out[s.Name] = s
		}
	}
	return out
}

// ParseServersState parses the answer of "show servers state <backend>":
// a version line, a "# be_id be_name ..." header, then one row per server.
func ParseServersState(out string) ([]Server, error) {
	servers := []Server{}
	ok := EachServerRow(out, func(_ string, row map[string]string) {
		admin, _ := strconv.Atoi(row["srv_admin_state"])
		servers = append(servers, Server{Backend: row["be_name"], Name: row["srv_name"], Addr: row["srv_addr"],
			Port: row["srv_port"], Up: row["srv_op_state"] == "2", Admin: admin})
	})
	if !ok {
		return nil, fmt.Errorf("unexpected runtime API answer: %q", firstLine(out))
	}
	return servers, nil
}

// EachServerRow calls f with each server row of a "show servers state"
// answer, as its trimmed line and its fields by column name. It reports
// whether the answer had the header at all.
func EachServerRow(out string, f func(line string, row map[string]string)) bool {
	var header []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "# be_id"):
			header = strings.Fields(strings.TrimPrefix(line, "# "))
			continue
		case line == "" || strings.HasPrefix(line, "#") || header == nil:
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < len(header) {
			continue
		}
		row := make(map[string]string, len(header))
		for i, name := range header {
			row[name] = fields[i]
		}
		f(line, row)
	}
	return header != nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
