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
