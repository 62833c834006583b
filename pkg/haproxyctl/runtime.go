package haproxyctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
)

// successes are how haproxy 2.6 answers a command that worked; commands not
// listed answer nothing on success.
var successes = map[string][]string{
	"add server":      {"New server registered."},
	"del server":      {"Server deleted."},
	"set server addr": {"IP changed from", "no need to change the addr", "port changed from"},
}

// runCommand sends one command on the admin socket and turns anything but
// its success answer into an error.
func runCommand(ctx context.Context, socket, cmd string) error {
	out, err := runtimeapi.Command(ctx, socket, cmd)
	if err != nil {
		return fmt.Errorf("runtime API %q: %w", cmd, err)
	}
	out = strings.TrimSpace(out)
	verb := cmd
	if strings.HasPrefix(cmd, "set server ") && strings.Contains(cmd, " addr ") {
		verb = "set server addr"
	} else if f := strings.Fields(cmd); len(f) >= 2 {
		verb = f[0] + " " + f[1]
	}
	want, listed := successes[verb]
	if !listed && out == "" {
		return nil
	}
	for _, w := range want {
		if strings.HasPrefix(out, w) {
			return nil
		}
	}
	return fmt.Errorf("runtime API %q: %s", cmd, firstLine(out))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if line == "" {
		return "(no answer)"
	}
	return line
}

// sessions lists the ids of the sessions haproxy has on backend/server, from
// "show sess".
func sessions(ctx context.Context, socket, backend, server string) ([]string, error) {
	out, err := runtimeapi.Command(ctx, socket, "show sess")
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, line := range strings.Split(out, "\n") {
		id, rest, ok := strings.Cut(line, ": ")
		if !ok || !strings.HasPrefix(id, "0x") {
			continue
		}
		f := strings.Fields(rest)
		if contains(f, "be="+backend) && contains(f, "srv="+server) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
