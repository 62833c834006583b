package reload

import (
	"strconv"
	"strings"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxycfg"
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
	var header []string
	for i, line := range strings.Split(strings.TrimRight(state, "\n"), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case i == 0 && t != "" && !strings.HasPrefix(t, "#"):
			out.WriteString(t + "\n") // the format version
			continue
		case strings.HasPrefix(t, "# be_id"):
			header = strings.Fields(strings.TrimPrefix(t, "# "))
			out.WriteString(t + "\n")
			continue
		case t == "" || strings.HasPrefix(t, "#") || header == nil:
			continue
		}
		f := strings.Fields(t)
		if len(f) < len(header) {
			continue
		}
		row := map[string]string{}
		for j, name := range header {
			row[name] = f[j]
		}
		if keep[key{row["be_name"], row["srv_name"], row["srv_addr"], row["srv_port"]}] {
			out.WriteString(t + "\n")
		}
	}
	return out.String()
}
