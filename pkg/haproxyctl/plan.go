package haproxyctl

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxycfg"
)

// OpKind is one kind of runtime change to a server.
type OpKind int

const (
	// OpAdd adds a server with its keywords, enables its health checks and
	// makes it ready.
	OpAdd OpKind = iota
	// OpSetAddr moves a server to another address or port and shuts the
	// sessions that still go to the old one.
	OpSetAddr
	// OpRetire drains a server; the controller removes it after the grace
	// period.
	OpRetire
	// OpRestore brings back a server still draining before its removal:
	// the file names it again. It moves to the file's address and port if
	// they changed (shutting the sessions to the old one) and is ready
	// again.
	OpRestore
)

func (k OpKind) String() string { return [...]string{"add", "set-addr", "retire", "restore"}[k] }

// Op is one runtime change.
type Op struct {
	Kind     OpKind
	Backend  string
	Server   string
	Address  string
	Port     uint16
	Keywords []string
	// Moved: an OpRestore whose address or port changed while it drained.
	Moved bool
}

// Retiring is a server haproxy still has, draining, though the file no
// longer names it; keyed "backend/server" for MakePlan.
type Retiring struct {
	Address string
	Port    uint16
}

// Plan is how to get haproxy from one configuration to the next: runtime
// operations, or a reload with the reason why the runtime API cannot do it.
type Plan struct {
	Reload bool
	Reason string
	Ops    []Op
}

// addServerKeywords are the server keywords known to work with "add server"
// in haproxy 2.6, and how many arguments each takes. Anything else reloads.
var addServerKeywords = map[string]int{
	"check": 0, "check-ssl": 0, "no-check-ssl": 0, "ssl": 0, "no-ssl": 0, "backup": 0, "no-backup": 0,
	"send-proxy": 0, "send-proxy-v2": 0, "no-send-proxy": 0,
	"inter": 1, "fastinter": 1, "downinter": 1, "fall": 1, "rise": 1, "weight": 1, "verify": 1,
	"port": 1, "maxconn": 1, "minconn": 1, "maxqueue": 1, "sni": 1, "check-sni": 1, "slowstart": 1,
	"observe": 1, "error-limit": 1, "on-error": 1,
}

// token is what may go on a runtime API command line: ';' would start
// another command, '#' a comment, white space another argument.
var token = regexp.MustCompile(`^[A-Za-z0-9._:\[\]/@%+-]+$`)

// MakePlan turns the configuration haproxy runs into the next one. It is
// pure: the two files and the servers haproxy still drains before their
// removal (retiring, keyed "backend/server") in, a plan out; nothing edits
// the plan after. Only differences in the server lines of backend and
// listen sections are runtime changes; any other difference, a keyword "add
// server" may refuse, a changed keyword on an existing server, or a token
// that is not safe on a command line means a reload. A server the file
// names again while it drains is restored, not added.
func MakePlan(running, next []byte, retiring map[string]Retiring) Plan {
	old, cur := haproxycfg.Parse(running), haproxycfg.Parse(next)
	if old.Skeleton != cur.Skeleton {
		return Plan{Reload: true, Reason: "the configuration changed outside the server lines"}
	}
	type key struct{ backend, name string }
	before := map[key]haproxycfg.Server{}
	for _, s := range old.Servers {
		before[key{s.Section, s.Name}] = s
	}
	after := map[key]bool{}
	var plan Plan
	for _, s := range cur.Servers {
		k := key{s.Section, s.Name}
		if after[k] {
			return Plan{Reload: true, Reason: fmt.Sprintf("server %s/%s appears twice", s.Section, s.Name)}
		}
		after[k] = true
		if why := unsafe(s); why != "" {
			return Plan{Reload: true, Reason: why}
		}
		prev, had := before[k]
		r, draining := retiring[s.Section+"/"+s.Name]
		switch {
		case !had && draining:
			if !isIP(s.Address) {
				return Plan{Reload: true, Reason: fmt.Sprintf("server %s/%s moves to a host name", s.Section, s.Name)}
			}
			plan.Ops = append(plan.Ops, Op{Kind: OpRestore, Backend: s.Section, Server: s.Name, Address: s.Address, Port: s.Port,
				Moved: r.Address != s.Address || r.Port != s.Port})
		case !had:
			if why := unsupported(s.Keywords); why != "" {
				return Plan{Reload: true, Reason: fmt.Sprintf("server %s/%s: %s", s.Section, s.Name, why)}
			}
			plan.Ops = append(plan.Ops, Op{Kind: OpAdd, Backend: s.Section, Server: s.Name, Address: s.Address, Port: s.Port, Keywords: s.Keywords})
		case !slices.Equal(prev.Keywords, s.Keywords):
			return Plan{Reload: true, Reason: fmt.Sprintf("server %s/%s changed its keywords", s.Section, s.Name)}
		case prev.Address != s.Address || prev.Port != s.Port:
			if !isIP(s.Address) {
				return Plan{Reload: true, Reason: fmt.Sprintf("server %s/%s moves to a host name", s.Section, s.Name)}
			}
			plan.Ops = append(plan.Ops, Op{Kind: OpSetAddr, Backend: s.Section, Server: s.Name, Address: s.Address, Port: s.Port})
		}
	}
	for _, s := range old.Servers {
		if !after[key{s.Section, s.Name}] {
			if why := unsafe(s); why != "" {
				return Plan{Reload: true, Reason: why}
			}
			plan.Ops = append(plan.Ops, Op{Kind: OpRetire, Backend: s.Section, Server: s.Name, Address: s.Address, Port: s.Port})
		}
	}
	sort.SliceStable(plan.Ops, func(i, j int) bool { return plan.Ops[i].Kind < plan.Ops[j].Kind })
	return plan
}

func unsafe(s haproxycfg.Server) string {
	for _, t := range append([]string{s.Section, s.Name, s.Address}, s.Keywords...) {
		if !token.MatchString(t) {
			return fmt.Sprintf("server %s/%s: %q is not safe on a runtime API command line", s.Section, s.Name, t)
		}
	}
	return ""
}

func unsupported(kw []string) string {
	for i := 0; i < len(kw); i++ {
		n, ok := addServerKeywords[kw[i]]
		if !ok {
			return fmt.Sprintf("keyword %q is not known to work with add server", kw[i])
		}
		i += n
		if i >= len(kw) {
			return fmt.Sprintf("keyword %q lacks its argument", kw[len(kw)-1])
		}
	}
	return ""
}

// Commands are the runtime API commands that carry out the op's immediate
// part (a retired server's removal comes after its grace period:
// RemoveCommands).
func (o Op) Commands() []string {
	id := o.Backend + "/" + o.Server
	switch o.Kind {
	case OpAdd:
		cmds := []string{strings.Join(append([]string{"add server", id, hostPort(o.Address, o.Port)}, o.Keywords...), " ")}
		if slices.Contains(o.Keywords, "check") {
			cmds = append(cmds, "enable health "+id)
		}
		return append(cmds, "set server "+id+" state ready")
	case OpSetAddr:
		return []string{"set server " + id + " addr " + o.Address + " port " + strconv.Itoa(int(o.Port)),
			"shutdown sessions server " + id}
	case OpRetire:
		return []string{"set server " + id + " state drain"}
	case OpRestore:
		cmds := []string{"set server " + id + " addr " + o.Address + " port " + strconv.Itoa(int(o.Port))}
		if o.Moved {
			cmds = append(cmds, "shutdown sessions server "+id)
		}
		return append(cmds, "set server "+id+" state ready")
	}
	return nil
}

// RemoveCommands end a retired server once its grace period is over.
func RemoveCommands(backend, server string) []string {
	id := backend + "/" + server
	return []string{"set server " + id + " state maint", "shutdown sessions server " + id, "del server " + id}
}

func hostPort(addr string, port uint16) string {
	if a, err := netip.ParseAddr(addr); err == nil && a.Is6() {
		addr = "[" + addr + "]"
	}
	return addr + ":" + strconv.Itoa(int(port))
}
