package haproxycfg

import (
	"reflect"
	"testing"
)

func TestServers(t *testing.T) {
	cfg := `global
  stats socket /x level admin
frontend main
  bind :9445
  default_backend masters
  server not-a-backend 198.18.0.9:1
backend masters
  option httpchk GET /readyz HTTP/1.0
  server m1 198.18.0.11:6443 weight 1 check # a comment
  server m2 [fd00::12]:6443 check
  server m3 fd00::13:6443 check
server unindented 198.18.0.13:6443
  server noport 198.18.0.14
  server badbracket [fd00::1
  server badport 198.18.0.15:99999
  #server commented 198.18.0.16:6443
listen other
  server x 127.0.0.1:80
`
	got := Servers([]byte(cfg))
	want := []Server{
		{Section: "masters", Name: "m1", Address: "198.18.0.11", Port: 6443, Keywords: []string{"weight", "1", "check"}},
		{Section: "masters", Name: "m2", Address: "fd00::12", Port: 6443, Keywords: []string{"check"}},
		{Section: "masters", Name: "m3", Address: "fd00::13", Port: 6443, Keywords: []string{"check"}},
		{Section: "masters", Name: "unindented", Address: "198.18.0.13", Port: 6443, Keywords: []string{}},
		{Section: "masters", Name: "noport", Address: "198.18.0.14", Port: 0, Keywords: []string{}},
		{Section: "other", Name: "x", Address: "127.0.0.1", Port: 80, Keywords: []string{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseSkeletonAndStateFile(t *testing.T) {
	a := Parse([]byte("global\n  server-state-base /run/h/\n  server-state-file state\nbackend b\n  server m1 198.18.0.1:6443 check # x\n  option httpchk\n"))
	b := Parse([]byte("global\n    server-state-base /run/h/\n  server-state-file   state\n\nbackend b\n  option httpchk\n  server m2 198.18.0.2:6443 check\n  server m3 198.18.0.3:6443 check\n"))
	if a.Skeleton != b.Skeleton {
		t.Fatalf("skeletons differ:\n%s\n---\n%s", a.Skeleton, b.Skeleton)
	}
	if a.StateFile != "/run/h/state" || len(a.Servers) != 1 || len(b.Servers) != 2 {
		t.Fatalf("parsed %+v / %+v", a, b)
	}
	c := Parse([]byte("global\n  server-state-file /x\nbackend b\n  option httpchk GET /livez\n  server m1 198.18.0.1:6443 check\n"))
	if c.Skeleton == a.Skeleton || c.StateFile != "/x" {
		t.Fatalf("a changed option kept the skeleton: %+v", c)
	}
}

func TestSplitAddress(t *testing.T) {
	for _, c := range []struct {
		in   string
		host string
		port uint16
		ok   bool
	}{
		{"198.18.0.1:6443", "198.18.0.1", 6443, true},
		{"198.18.0.1", "198.18.0.1", 0, true},
		{"[fd00::1]:6443", "fd00::1", 6443, true},
		{"[fd00::1]", "fd00::1", 0, true},
		{"[fd00::1]x", "", 0, false},
		{"[fd00::1]:", "fd00::1", 0, true},
		{"[fd00::1", "", 0, false},
		{"fd00::1:6443", "fd00::1", 6443, true},
		{"[::ffff:198.18.0.1]:80", "198.18.0.1", 80, true},
		{"[FD00::0001]:1", "fd00::1", 1, true},
		{"m1.example:65535", "m1.example", 65535, true},
		{"m1.example:65536", "", 0, false},
		{"m1.example:x", "", 0, false},
		{":6443", "", 6443, false},
		{"", "", 0, false},
	} {
		host, port, ok := SplitAddress(c.in)
		if host != c.host || port != c.port || ok != c.ok {
			t.Errorf("SplitAddress(%q) = %q, %d, %v; want %q, %d, %v", c.in, host, port, ok, c.host, c.port, c.ok)
		}
	}
}

func TestParseEdges(t *testing.T) {
	cfg := "# a comment at the first column\n" +
		"global\n" +
		"  server-state-file rel\n" +
		"  server-state-file\n" +
		"backend\n" +
		"  server orphan 198.18.0.1:6443\n" +
		"backend b\n" +
		"  server short\n" +
		"  server three 198.18.0.3:6443\n" +
		"frontend f\n" +
		"  server-state-file /not/global\n"
	p := Parse([]byte(cfg))
	if p.StateFile != "rel" {
		t.Errorf("state file %q, want the relative path kept as written without a base", p.StateFile)
	}
	want := []Server{{Section: "b", Name: "three", Address: "198.18.0.3", Port: 6443, Keywords: []string{}}}
	if !reflect.DeepEqual(p.Servers, want) {
		t.Errorf("servers %+v, want %+v", p.Servers, want)
	}
	wantSkel := "global\nserver-state-file rel\nserver-state-file\nbackend\nserver orphan 198.18.0.1:6443\nbackend b\nserver short\nfrontend f\nserver-state-file /not/global\n"
	if p.Skeleton != wantSkel {
		t.Errorf("skeleton\n%s\nwant\n%s", p.Skeleton, wantSkel)
	}
	abs := Parse([]byte("global\n  server-state-base /base\n  server-state-file /abs\n"))
	if abs.StateFile != "/abs" {
		t.Errorf("absolute state file joined to its base: %q", abs.StateFile)
	}
	joined := Parse([]byte("global\n  server-state-base /base\n  server-state-file s\n"))
	if joined.StateFile != "/base/s" {
		t.Errorf("relative state file %q, want /base/s", joined.StateFile)
	}
}
