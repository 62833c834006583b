// Package haproxycfg reads a rendered haproxy.cfg back: its sections and the
// server lines of its backends, so the monitor can tell what a file on disk
// describes without trusting that it rendered it.
package haproxycfg

import (
	"net/netip"
	"strconv"
	"strings"
)

// Server is one "server" line of a backend or listen section.
type Server struct {
	Section string // the backend (or listen) section's name
	Name    string
	Address string // as written, brackets removed
	Port    uint16
	// Keywords are the words after the address, in order.
	Keywords []string
}

// Servers returns the server lines of every backend and listen section, in
// file order. Lines it cannot read (no address, a port out of range) are
// left out: what it returns is only ever a hint about the file.
func Servers(cfg []byte) []Server { return Parse(cfg).Servers }

// sectionKeywords start a section wherever they stand (indentation means
// nothing to haproxy).
var sectionKeywords = map[string]bool{
	"global": true, "defaults": true, "frontend": true, "backend": true, "listen": true,
	"peers": true, "resolvers": true, "userlist": true, "mailers": true, "program": true,
	"http-errors": true, "ring": true, "cache": true, "crt-store": true, "traces": true,
}

func stripComment(line string) string {
	line, _, _ = strings.Cut(line, "#")
	return line
}

// SplitAddress reads a server address the way haproxy does: "[v6]:port",
// or the last colon separating the port ("fd00::1:6443" is fd00::1 port
// 6443); without a port it is 0. IP literals come back canonical, as the
// runtime API prints them.
func SplitAddress(s string) (host string, port uint16, ok bool) {
	portText := ""
	switch {
	case strings.HasPrefix(s, "["):
		inner, rest, closed := strings.Cut(s[1:], "]")
		p, hasPort := strings.CutPrefix(rest, ":")
		if !closed || (rest != "" && !hasPort) {
			return "", 0, false
		}
		host, portText = inner, p
	case strings.Contains(s, ":"):
		i := strings.LastIndexByte(s, ':')
		host, portText = s[:i], s[i+1:]
	default:
		host = s
	}
	if portText != "" {
		p, err := strconv.ParseUint(portText, 10, 16)
		if err != nil {
			return "", 0, false
		}
		port = uint16(p)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	return host, port, host != ""
}

// Parsed is a configuration split into its server lines and everything else.
type Parsed struct {
	// Skeleton is every line but the server lines of backend and listen
	// sections, comments and trailing blanks dropped: two files with the
	// same skeleton differ in their servers only.
	Skeleton string
	Servers  []Server
	// StateFile is the global server-state-file path, joined to
	// server-state-base when relative; "" when there is none.
	StateFile string
}

// Parse reads cfg.
func Parse(cfg []byte) Parsed {
	var p Parsed
	var skel strings.Builder
	var section, stateBase string
	for _, line := range strings.Split(string(cfg), "\n") {
		f := strings.Fields(stripComment(line))
		if len(f) == 0 {
			continue
		}
		if sectionKeywords[f[0]] {
			section = f[0]
			if (f[0] == "backend" || f[0] == "listen") && len(f) > 1 {
				section = f[0] + " " + f[1]
			}
		}
		if f[0] == "server" && len(f) >= 3 && (strings.HasPrefix(section, "backend ") || strings.HasPrefix(section, "listen ")) {
			if host, port, ok := SplitAddress(f[2]); ok {
				p.Servers = append(p.Servers, Server{Section: strings.SplitN(section, " ", 2)[1], Name: f[1], Address: host, Port: port, Keywords: f[3:]})
				continue
			}
		}
		if section == "global" && len(f) == 2 {
			switch f[0] {
			case "server-state-file":
				p.StateFile = f[1]
			case "server-state-base":
				stateBase = f[1]
			}
		}
		skel.WriteString(strings.Join(f, " "))
		skel.WriteByte('\n')
	}
	if p.StateFile != "" && !strings.HasPrefix(p.StateFile, "/") && stateBase != "" {
		p.StateFile = strings.TrimSuffix(stateBase, "/") + "/" + p.StateFile
	}
	p.Skeleton = skel.String()
	return p
}
