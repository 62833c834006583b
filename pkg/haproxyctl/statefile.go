package haproxyctl

import (
	"strconv"
	"strings"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxycfg"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/runtimeapi"
)

// PruneState keeps, of a "show servers state" answer, the version line, the
// header and the rows of servers that keep their backend, name, address and
// port in next. haproxy lets a state file override a server's address
// (upstream issues 1412, 2103), so a server that moved starts fresh; one
// that left has nothing to carry.
func PruneState(state string, next []haproxycfg.Server) string {
	type key struct{ backend, name, addr, port string }
	keep := map[key]bool{}
	for _, s := range next {
		keep[key{s.Section, s.Name, s.Address, strconv.Itoa(int(s.Port))}] = true
	}
	var out strings.Builder
	lines := strings.Split(strings.TrimLeft(state, "\n"), "\n")
	if v := strings.TrimSpace(lines[0]); v != "" && !strings.HasPrefix(v, "#") {
		out.WriteString(v + "\n") // the format version
	}
	for _, l := range lines {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "# be_id") {
			out.WriteString(t + "\n")
			break
		}
	}
	runtimeapi.EachServerRow(state, func(line string, row map[string]string) {
		if keep[key{row["be_name"], row["srv_name"], row["srv_addr"], row["srv_port"]}] {
			out.WriteString(line + "\n")
		}
	})
	return out.String()
}
