package e2e

import (
	"context"
	"strconv"
	"strings"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
)

func runtimeCommand(sock, cmd string) (string, error) {
	return runtimeapi.Command(context.Background(), sock, cmd)
}

// statField reads one field of "show stat" CSV for proxy/server.
func statField(csv, proxy, server, field string) int64 {
	lines := strings.Split(strings.TrimPrefix(csv, "# "), "\n")
	if len(lines) == 0 {
		return 0
	}
	col := -1
	for i, name := range strings.Split(lines[0], ",") {
		if name == field {
			col = i
		}
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) > col && col >= 0 && f[0] == proxy && f[1] == server {
			v, _ := strconv.ParseInt(f[col], 10, 64)
			return v
		}
	}
	return 0
}
