package keepalived

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/haproxy-monitor/haproxy-monitor/test/need"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const tmpl = "../../templates/keepalived.conf.tmpl"

func good() Config {
	return Config{Interface: "eth0", VirtualRouterID: 51, Priority: 100, AuthPass: "hapm1234",
		HealthURL: "http://127.0.0.1:9444/haproxy_ready",
		VIPs:      []netip.Addr{netip.MustParseAddr("198.18.0.100"), netip.MustParseAddr("fd00::100")}}
}

func TestRenderGoldenAndKeepalivedAccepts(t *testing.T) {
	tracked := good()
	tracked.TrackFile, tracked.AdvertInt, tracked.AuthPass = "/run/haproxy-monitor/haproxy", "0.2", ""
	for golden, c := range map[string]Config{"testdata/dual-stack.conf": good(), "testdata/track-file-vrrp3.conf": tracked} {
		got, err := Render(tmpl, c)
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			_ = os.WriteFile(golden, got, 0o644)
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test ./pkg/keepalived -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("rendered differently from %s:\n%s", golden, got)
		}
		bin := need.Tool(t, "keepalived")[0]
		f := filepath.Join(t.TempDir(), "keepalived.conf")
		_ = os.WriteFile(f, got, 0o644)
		if out, err := exec.Command(bin, "--config-test", "-f", f).CombinedOutput(); err != nil {
			t.Fatalf("%s: keepalived --config-test: %v\n%s", golden, err, out)
		}
	}
}

// The track file holds the level as a number, replaced atomically, and reads
// back; a missing directory is an error.
func TestTrackFile(t *testing.T) {
	tf := TrackFile{Path: filepath.Join(t.TempDir(), "haproxy")}
	for _, l := range []Level{Serving, Holding, LocalOnly, Fault, Serving} {
		if err := tf.Set(l); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(tf.Path); string(b) != fmt.Sprintf("%d\n", int(l)) {
			t.Fatalf("%v: file holds %q", l, b)
		}
		if got, err := tf.Level(); err != nil || got != l {
			t.Fatalf("%v: read back %v, %v", l, got, err)
		}
	}
	if err := (TrackFile{Path: "/nonexistent-dir/haproxy"}).Set(Serving); err == nil {
		t.Fatal("a missing directory was not an error")
	}
	if err := os.WriteFile(tf.Path, []byte("serving\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := tf.Level(); err == nil {
		t.Fatal("a file that is not a number read as a level")
	}
}

func TestValidateRefuses(t *testing.T) {
	cases := map[string]struct {
		mutate func(*Config)
		want   string // in the error
	}{
		"interface injection":             {func(c *Config) { c.Interface = "eth0\n}" }, "not an interface name"},
		"router id 0":                     {func(c *Config) { c.VirtualRouterID = 0 }, "outside 1-254"},
		"router id 255 with two families": {func(c *Config) { c.VirtualRouterID = 255 }, "id 255 is outside 1-254"},
		"router id 256":                   {func(c *Config) { c.VirtualRouterID = 256; c.VIPs = c.VIPs[:1] }, "id 256 is outside 1-255"},
		"priority":                        {func(c *Config) { c.Priority = 0 }, "priority 0"},
		"long pass":                       {func(c *Config) { c.AuthPass = "123456789" }, "auth pass"},
		"url with quote":                  {func(c *Config) { c.HealthURL = `http://x/" ; rm -rf /` }, "URL"},
		"no vip":                          {func(c *Config) { c.VIPs = nil }, "VIP"},
	}
	for name, tc := range cases {
		c := good()
		tc.mutate(&c)
		if _, err := Render(tmpl, c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one saying %q", name, err, tc.want)
		}
	}
}

// Every instance's router id is within VRRP's 1-255, checked by keepalived:
// the last id fits with one family, and with two the second instance's does.
func TestRouterIDEdges(t *testing.T) {
	bin := need.Tool(t, "keepalived")[0]
	v4 := good()
	v4.VIPs, v4.VirtualRouterID = v4.VIPs[:1], 255
	dual := good()
	dual.VirtualRouterID = 254
	for name, c := range map[string]Config{"IPv4 only, 255": v4, "dual stack, 254 and 255": dual} {
		out, err := Render(tmpl, c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f := filepath.Join(t.TempDir(), "keepalived.conf")
		_ = os.WriteFile(f, out, 0o644)
		if msg, err := exec.Command(bin, "--config-test", "-f", f).CombinedOutput(); err != nil {
			t.Fatalf("%s: keepalived --config-test: %v\n%s", name, err, msg)
		}
	}
}

// Beside the track file the check script fails only after a backup's
// master-down interval (3 × advert_int + skew) has passed; alone it keeps 2.
func TestScriptFallOutlastsMasterDown(t *testing.T) {
	for _, tc := range []struct {
		track, advert string
		want          int
	}{{"", "1", 2}, {"/run/haproxy-monitor/haproxy", "1", 6}, {"/run/haproxy-monitor/haproxy", "0.2", 4}, {"/run/haproxy-monitor/haproxy", "2", 9}} {
		c := Config{TrackFile: tc.track, AdvertInt: tc.advert}
		got := c.ScriptFall()
		if got != tc.want {
			t.Errorf("track %q, advert_int %s: fall %d, want %d", tc.track, tc.advert, got, tc.want)
		}
		if f, _ := strconv.ParseFloat(tc.advert, 64); tc.track != "" && float64(got-2) < 3*f+1 {
			t.Errorf("advert_int %s: %d runs do not outlast the master-down interval", tc.advert, got)
		}
	}
}
