package haproxyctl

import (
	"reflect"
	"strings"
	"testing"
)

const head = `global
  stats socket /var/run/haproxy/haproxy-admin.sock mode 600 level admin
frontend main
  bind :9445
  default_backend masters
backend masters
  option httpchk GET /readyz HTTP/1.0
`

func srv(name, addr string) string {
	return "  server " + name + " " + addr + " weight 1 verify none check check-ssl inter 1s fall 2 rise 3\n"
}

func TestMakePlan(t *testing.T) {
	base := head + srv("m1", "198.18.0.11:6443") + srv("m2", "198.18.0.12:6443")
	tests := []struct {
		name   string
		next   string
		reload string // a substring of the reason; "" for a runtime plan
		ops    []string
		// retiring are servers haproxy still drains before removal.
		retiring map[string]Retiring
	}{
		{name: "nothing changed", next: base, ops: []string{}},
		{name: "only the order of servers changed", next: head + srv("m2", "198.18.0.12:6443") + srv("m1", "198.18.0.11:6443"), ops: []string{}},
		{name: "a server added", next: base + srv("m3", "198.18.0.13:6443"), ops: []string{
			"add server masters/m3 198.18.0.13:6443 weight 1 verify none check check-ssl inter 1s fall 2 rise 3",
			"enable health masters/m3", "set server masters/m3 state ready"}},
		{name: "an IPv6 server added", next: base + srv("m3", "fd00::13:6443"), ops: []string{
			"add server masters/m3 [fd00::13]:6443 weight 1 verify none check check-ssl inter 1s fall 2 rise 3",
			"enable health masters/m3", "set server masters/m3 state ready"}},
		{name: "a server removed", next: head + srv("m1", "198.18.0.11:6443"), ops: []string{"set server masters/m2 state drain"}},
		{name: "an address changed", next: head + srv("m1", "198.18.0.11:6443") + srv("m2", "198.18.0.22:6444"), ops: []string{
			"set server masters/m2 addr 198.18.0.22 port 6444", "shutdown sessions server masters/m2"}},
		{name: "add, move and remove at once", next: head + srv("m2", "198.18.0.22:6443") + srv("m3", "198.18.0.13:6443"), ops: []string{
			"add server masters/m3 198.18.0.13:6443 weight 1 verify none check check-ssl inter 1s fall 2 rise 3",
			"enable health masters/m3", "set server masters/m3 state ready",
			"set server masters/m2 addr 198.18.0.22 port 6443", "shutdown sessions server masters/m2",
			"set server masters/m1 state drain"}},
		{name: "two added and two removed: each kind in file order", next: head + srv("m3", "198.18.0.13:6443") + srv("m4", "198.18.0.14:6443"), ops: []string{
			"add server masters/m3 198.18.0.13:6443 weight 1 verify none check check-ssl inter 1s fall 2 rise 3",
			"enable health masters/m3", "set server masters/m3 state ready",
			"add server masters/m4 198.18.0.14:6443 weight 1 verify none check check-ssl inter 1s fall 2 rise 3",
			"enable health masters/m4", "set server masters/m4 state ready",
			"set server masters/m1 state drain", "set server masters/m2 state drain"}},
		{name: "a server added with the shipped template's error observation", next: base +
			"  server m3 198.18.0.13:6443 check observe layer4 error-limit 1 on-error mark-down\n", ops: []string{
			"add server masters/m3 198.18.0.13:6443 check observe layer4 error-limit 1 on-error mark-down",
			"enable health masters/m3", "set server masters/m3 state ready"}},
		{name: "a server back while it drains: restored in place", next: base + srv("m3", "198.18.0.13:6443"),
			retiring: map[string]Retiring{"masters/m3": {Address: "198.18.0.13", Port: 6443}}, ops: []string{
				"set server masters/m3 addr 198.18.0.13 port 6443", "set server masters/m3 state ready"}},
		{name: "a server back at another address while it drains: moved and restored", next: base + srv("m3", "198.18.0.23:6443"),
			retiring: map[string]Retiring{"masters/m3": {Address: "198.18.0.13", Port: 6443}}, ops: []string{
				"set server masters/m3 addr 198.18.0.23 port 6443", "shutdown sessions server masters/m3", "set server masters/m3 state ready"}},
		{name: "the frontend changed", next: strings.Replace(base, "bind :9445", "bind :9446", 1), reload: "outside the server lines"},
		{name: "a global setting changed", next: strings.Replace(base, "level admin", "level user", 1), reload: "outside the server lines"},
		{name: "a server's keywords changed", next: head + srv("m1", "198.18.0.11:6443") + "  server m2 198.18.0.12:6443 check\n", reload: "changed its keywords"},
		{name: "a keyword add server may refuse", next: base + "  server m3 198.18.0.13:6443 check resolvers dns\n", reload: `keyword "resolvers"`},
		{name: "a keyword without its argument", next: base + "  server m3 198.18.0.13:6443 check inter\n", reload: "lacks its argument"},
		{name: "a command separator in a name", next: base + "  server m3;del 198.18.0.13:6443 check\n", reload: "not safe"},
		{name: "a command separator in a keyword", next: base + "  server m3 198.18.0.13:6443 check weight 1;shutdown\n", reload: "not safe"},
		{name: "a server moved to a host name", next: head + srv("m1", "198.18.0.11:6443") + srv("m2", "api.example:6443"), reload: "host name"},
		{name: "a server twice", next: base + srv("m2", "198.18.0.12:6443"), reload: "twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := MakePlan([]byte(base), []byte(tc.next), tc.retiring)
			if tc.reload != "" {
				if !p.Reload || !strings.Contains(p.Reason, tc.reload) {
					t.Fatalf("plan %+v, want a reload because %q", p, tc.reload)
				}
				return
			}
			if p.Reload {
				t.Fatalf("reload (%s), want runtime ops", p.Reason)
			}
			cmds := []string{}
			for _, op := range p.Ops {
				cmds = append(cmds, op.Commands()...)
			}
			if !reflect.DeepEqual(cmds, tc.ops) {
				t.Fatalf("commands\n %q\nwant\n %q", cmds, tc.ops)
			}
		})
	}
}

// Whatever two files hold, a plan is a reload or commands whose every
// argument is safe on a runtime API line: one command each, no separator,
// no comment, no line break.
func FuzzMakePlan(f *testing.F) {
	f.Add(head+srv("m1", "198.18.0.11:6443"), head+srv("m2", "198.18.0.12:6443"))
	f.Add(head+srv("m1", "198.18.0.11:6443"), head+"  server m1 fd00::1:6443 weight 1 check\n  server x;y 1.2.3.4:5 check\n")
	f.Add("backend b\n server a 1.1.1.1:1 check\n", "backend b\n server a 1.1.1.1:1 check\n server b [::1]:2 inter 1s #x\n")
	f.Fuzz(func(t *testing.T, running, next string) {
		p := MakePlan([]byte(running), []byte(next), nil)
		if p.Reload {
			if p.Reason == "" || len(p.Ops) != 0 {
				t.Fatalf("reload without a reason or with ops: %+v", p)
			}
			return
		}
		for _, op := range p.Ops {
			for _, c := range append(op.Commands(), RemoveCommands(op.Backend, op.Server)...) {
				if strings.ContainsAny(c, ";#\n\r\t\x00") {
					t.Fatalf("unsafe command %q from %q -> %q", c, running, next)
				}
			}
		}
		if again := MakePlan([]byte(next), []byte(next), nil); again.Reload || len(again.Ops) != 0 {
			t.Fatalf("a file against itself plans %+v", again)
		}
	})
}
