package lbconfig

import (
	"strconv"
	"strings"
)

// APIServerNodes turns the apiserver addresses of the default/kubernetes
// Endpoints (degraded discovery: the Nodes may not be read) into members for
// Build. The Endpoints carry no names, so each address is named, in order of
// preference: this node's name when the address is one of its InternalIPs;
// the name the address had in the configuration last applied (known), so a
// switch between watch and degraded discovery changes nothing; else
// "apiserver-" and the address with '.' and ':' as '-'. Every name is a
// valid, unique node name; invalid addresses are left for Build to skip.
func APIServerNodes(addrs []string, self Node, known []Backend) []Node {
	used := map[string]bool{}
	named := make([]string, len(addrs))
	// Names from evidence first, the own name before remembered ones, so a
	// synthesized or stale name never takes them.
	for _, pick := range []func(raw string) string{
		func(raw string) string { return selfName(self, raw) },
		func(raw string) string { return knownName(known, raw) },
	} {
		for i, raw := range addrs {
			if cand := pick(raw); named[i] == "" && cand != "" && !used[cand] && ValidateNodeName(cand) == nil {
				named[i], used[cand] = cand, true
			}
		}
	}
	out := make([]Node, 0, len(addrs))
	for i, raw := range addrs {
		name := named[i]
		if name == "" {
			name = synthName(raw, used)
			used[name] = true
		}
		out = append(out, Node{Name: name, InternalIPs: []string{raw}})
	}
	return out
}

func selfName(self Node, addr string) string {
	a, err := ParseAddress(addr)
	if err != nil || self.Name == "" {
		return ""
	}
	for _, ip := range self.InternalIPs {
		if b, err := ParseAddress(ip); err == nil && a == b {
			return self.Name
		}
	}
	return ""
}

func knownName(known []Backend, raw string) string {
	a, err := ParseAddress(raw)
	if err != nil {
		return ""
	}
	for _, b := range known {
		if b.Address == a.String() {
			return b.Host
		}
	}
	return ""
}

// synthName derives a node name from an address; a name that is taken gets a
// numeric suffix.
func synthName(addr string, used map[string]bool) string {
	s := "apiserver-" + strings.NewReplacer(".", "-", ":", "-").Replace(strings.ToLower(addr))
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, s)
	if strings.HasSuffix(s, "-") {
		s += "0"
	}
	name := s
	for i := 2; used[name] || ValidateNodeName(name) != nil; i++ {
		name = s[:min(len(s), 240)] + "-" + strconv.Itoa(i)
	}
	return name
}

// MaxRememberedNames bounds the name memory degraded discovery draws on.
const MaxRememberedNames = 64

// RememberNames returns the name memory after backends were applied: their
// names first, then the remembered names of other addresses, most recent
// first, at most MaxRememberedNames. A master that leaves the Endpoints for
// a moment (its apiserver restarting) gets its name back when it returns.
func RememberNames(known, backends []Backend) []Backend {
	var out []Backend
	seen := map[string]bool{}
	for _, list := range [][]Backend{backends, known} {
		for _, b := range list {
			if len(out) == MaxRememberedNames {
				return out
			}
			if !seen[b.Address] {
				seen[b.Address] = true
				out = append(out, b)
			}
		}
	}
	return out
}
