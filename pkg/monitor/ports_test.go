package monitor

import (
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/lbconfig"
	"github.com/haproxy-monitor/haproxy-monitor/pkg/render"
)

// Linux's default ephemeral port range (net.ipv4.ip_local_port_range). A
// port inside it can be held by any outgoing connection on the node, and
// haproxy then exits at start ("cannot bind socket"), leaving its runtime
// API sockets on the shared run dir dead: the kubelet lab saw it with the
// seed's health port, 50936.
const ephemeralLow, ephemeralHigh = 32768, 60999

// Every TCP port the shipped template binds with the default flags, and the
// port the monitor probes, lies outside that range.
func TestShippedPortsOutsideTheEphemeralRange(t *testing.T) {
	def := DefaultConfig()
	r, err := render.Load(filepath.Join("..", "..", "templates", "haproxy.cfg.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := r.Render(lbconfig.TemplateData{LBConfig: lbconfig.LBConfig{ApiPort: def.APIPort, LbPort: def.LBPort, StatPort: def.StatPort,
		Backends: []lbconfig.Backend{{Host: "m0", Address: "198.18.0.10", Port: def.APIPort}}}})
	if err != nil {
		t.Fatal(err)
	}
	binds := regexp.MustCompile(`(?m)^\s*bind \S*:(\d+)`).FindAllStringSubmatch(string(cfg), -1)
	if len(binds) < 3 {
		t.Fatalf("found %d bind lines in the rendered template, want the frontend, health and stats:\n%s", len(binds), cfg)
	}
	ports := map[string]int{}
	for _, b := range binds {
		ports["bind :"+b[1]], _ = strconv.Atoi(b[1])
	}
	u, err := url.Parse(def.RedirectProbeURL)
	if err != nil {
		t.Fatal(err)
	}
	ports["--redirect-probe-url"], _ = strconv.Atoi(u.Port())
	for what, p := range ports {
		if p >= ephemeralLow && p <= ephemeralHigh {
			t.Errorf("%s: port %d is inside Linux's ephemeral range %d-%d", what, p, ephemeralLow, ephemeralHigh)
		}
	}
}
