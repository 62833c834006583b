package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/keepalived"
	"github.com/haproxy-monitor/haproxy-monitor/templates"
)

func TestRendersWithTheBuiltInTemplate(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"-interface", "eth0", "-vips", "198.18.0.100", "-priority", "101", "-auth-pass", "s3cret"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want, err := keepalived.RenderText(templates.KeepalivedConf, keepalived.Config{Interface: "eth0", VirtualRouterID: 51, Priority: 101,
		AuthPass: "s3cret", HealthURL: "http://127.0.0.1:9444/haproxy_ready", VIPs: []netip.Addr{netip.MustParseAddr("198.18.0.100")}})
	if err != nil || out.String() != string(want) {
		t.Fatalf("output differs from the package's rendering (%v):\n%s", err, out.String())
	}
}

func TestUsageNamesEveryRequiredFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-interface", "eth0", "-vips", "198.18.0.100"}, &out, &errOut); code == 0 || out.Len() != 0 {
		t.Fatalf("rendered without -auth-pass: exit %d", code)
	}
	if !strings.Contains(errOut.String(), "auth pass") {
		t.Errorf("the error does not name the missing password: %s", errOut.String())
	}
	errOut.Reset()
	run([]string{"-h"}, &out, &errOut)
	for _, f := range []string{"-interface", "-vips", "-auth-pass"} {
		if !strings.Contains(strings.SplitN(errOut.String(), "\n", 2)[0], f) {
			t.Errorf("usage line lacks %s: %q", f, strings.SplitN(errOut.String(), "\n", 2)[0])
		}
	}
}
