package main

import (
	"bytes"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestArgumentCount(t *testing.T) {
	for _, args := range [][]string{{}, {"a"}, {"a", "b"}, {"a", "b", "c", "d"}} {
		cmd := newCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		if err := cmd.Execute(); err == nil {
			t.Errorf("%d arguments accepted", len(args))
		}
		if !strings.Contains(out.String(), "Usage:") || !strings.Contains(out.String(), "accepts 3 arg(s)") {
			t.Errorf("%d arguments: no usage printed:\n%s", len(args), out.String())
		}
	}
}

// The original's flags keep their names, types and defaults.
func TestOriginalFlags(t *testing.T) {
	f := newCommand().Flags()
	want := map[string]string{
		"api-port": "6443", "lb-port": "9445", "stat-port": "29445", "check-interval": "6s",
		"api-vip": "", "api-vips": "[]",
	}
	for name, def := range want {
		fl := f.Lookup(name)
		if fl == nil {
			t.Errorf("flag --%s missing", name)
			continue
		}
		if fl.DefValue != def && !(def == "" && fl.DefValue == "<nil>") {
			t.Errorf("--%s default %q, want %q", name, fl.DefValue, def)
		}
	}
	if f.Lookup("api-port").Value.Type() != "uint16" || f.Lookup("check-interval").Value.Type() != "duration" {
		t.Error("flag types changed")
	}
}

// --metrics-bind-address, the flag's old name, still sets the address that
// --health-bind-address names.
func TestHealthBindAddressAndItsOldName(t *testing.T) {
	for _, name := range []string{"health-bind-address", "metrics-bind-address"} {
		f := newCommand().Flags()
		if err := f.Parse([]string{"--" + name, "127.0.0.1:1234"}); err != nil {
			t.Fatal(err)
		}
		for _, other := range []string{"health-bind-address", "metrics-bind-address"} {
			if got := f.Lookup(other).Value.String(); got != "127.0.0.1:1234" {
				t.Errorf("--%s given: --%s reads %q", name, other, got)
			}
		}
	}
}

func TestVIPList(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	ip := net.ParseIP
	cases := []struct {
		single net.IP
		list   []net.IP
		want   []string
		err    bool
	}{
		{single: ip("198.18.0.1"), want: []string{"198.18.0.1"}},
		{list: []net.IP{ip("fd00::1"), ip("198.18.0.1")}, want: []string{"fd00::1", "198.18.0.1"}},
		{single: ip("198.18.0.9"), list: []net.IP{ip("198.18.0.1")}, want: []string{"198.18.0.1"}},
		{single: ip("::ffff:198.18.0.1"), want: []string{"198.18.0.1"}},
		{want: []string{}},
		{single: ip("0.0.0.0"), err: true},
	}
	for _, tc := range cases {
		got, err := vipList(tc.single, tc.list, log)
		if tc.err {
			if err == nil {
				t.Errorf("vipList(%v, %v) accepted", tc.single, tc.list)
			}
			continue
		}
		strs := []string{}
		for _, a := range got {
			strs = append(strs, a.String())
		}
		if err != nil || !reflect.DeepEqual(strs, tc.want) {
			t.Errorf("vipList(%v, %v) = %v, %v; want %v", tc.single, tc.list, strs, err, tc.want)
		}
	}
}

func TestFindHAProxy(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	if p, err := findHAProxy("sh", false, log); err != nil || !strings.HasSuffix(p, "/sh") {
		t.Errorf("an installed binary: %q, %v", p, err)
	}
	if p, err := findHAProxy("no-such-haproxy-binary", false, log); err != nil || p != "" {
		t.Errorf("the default, not installed: %q, %v; want validation off", p, err)
	}
	if _, err := findHAProxy("no-such-haproxy-binary", true, log); err == nil {
		t.Error("an explicit binary that is missing was accepted")
	}
}
