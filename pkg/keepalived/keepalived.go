// Package keepalived renders keepalived.conf for the API VIP from
// templates/keepalived.conf.tmpl: one VRRP instance per address family, each
// tracking haproxy's monitor-uri.
package keepalived

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/apply"
)

// Config is what the template needs.
type Config struct {
	Interface       string
	VirtualRouterID int // the IPv6 instance uses VirtualRouterID+1
	Priority        int
	AuthPass        string // VRRPv2 only; unused with a sub-second AdvertInt
	HealthURL       string
	VIPs            []netip.Addr
	// TrackFile is the file haproxy-monitor writes (--keepalived-track-file);
	// empty leaves the curl script alone in charge.
	TrackFile string
	// AdvertInt is VRRP's advertisement interval, "1" (seconds) by default;
	// below one second it needs VRRPv3, for IPv4 too.
	AdvertInt string
}

// VRRPv3 reports whether the advert interval needs VRRPv3 for IPv4.
func (c Config) VRRPv3() bool {
	f, err := strconv.ParseFloat(c.advertInt(), 64)
	return err == nil && f < 1
}

// ScriptFall is how many failed runs (one a second) of the check script put
// the instance in FAULT. Alone, 2. Beside the monitor's track file, enough
// that the script fails only after a backup's master-down interval (3 ×
// advert_int + skew, under 3 × advert_int + 1 s) has passed since haproxy
// stopped serving, plus two runs of margin: the monitor's make-before-break
// move comes first, and the script decides alone when the monitor is dead.
func (c Config) ScriptFall() int {
	if c.TrackFile == "" {
		return 2
	}
	f, err := strconv.ParseFloat(c.advertInt(), 64)
	if err != nil {
		f = 1
	}
	return int(math.Ceil(3*f+1)) + 2
}

func (c Config) advertInt() string {
	if c.AdvertInt == "" {
		return "1"
	}
	return c.AdvertInt
}

type family struct {
	Name string
	VIPs []string
}

// families splits the VIPs into one instance per address family, IPv4 first.
func (c Config) families() []family {
	v4, v6 := family{Name: "V4"}, family{Name: "V6"}
	for _, v := range c.VIPs {
		if v.Unmap().Is4() {
			v4.VIPs = append(v4.VIPs, v.Unmap().String()+"/32")
		} else {
			v6.VIPs = append(v6.VIPs, v.String()+"/128")
		}
	}
	var out []family
	for _, f := range []family{v4, v6} {
		if len(f.VIPs) > 0 {
			out = append(out, f)
		}
	}
	return out
}

var (
	ifaceRE  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)
	passRE   = regexp.MustCompile(`^[A-Za-z0-9]{1,8}$`)
	urlRE    = regexp.MustCompile(`^https?://[A-Za-z0-9.:\[\]/_-]+$`)
	advertRE = regexp.MustCompile(`^[0-9]{1,3}(\.[0-9]{1,2})?$`)
	pathRE   = regexp.MustCompile(`^/[A-Za-z0-9._/-]+$`)
)

// Validate refuses values keepalived would reject or that could break out of
// their place in the file.
func (c Config) Validate() error {
	switch {
	case !ifaceRE.MatchString(c.Interface):
		return fmt.Errorf("interface %q is not an interface name", c.Interface)
	case c.VirtualRouterID < 1 || c.VirtualRouterID+max(len(c.families()), 1)-1 > 255:
		// Each address family gets its own instance, numbered from the id.
		return fmt.Errorf("virtual router id %d is outside 1-%d (VRRP ids end at 255; one per address family of the VIPs)",
			c.VirtualRouterID, 256-max(len(c.families()), 1))
	case c.Priority < 1 || c.Priority > 254:
		return fmt.Errorf("priority %d is outside 1-254", c.Priority)
	case !c.VRRPv3() && !passRE.MatchString(c.AuthPass):
		return fmt.Errorf("auth pass must be 1-8 letters or digits (keepalived truncates longer ones)")
	case !advertRE.MatchString(c.advertInt()) || c.advertInt() == "0" || strings.Trim(c.advertInt(), "0.") == "":
		return fmt.Errorf("advert interval %q is not a positive number of seconds", c.AdvertInt)
	case c.TrackFile != "" && !pathRE.MatchString(c.TrackFile):
		return fmt.Errorf("track file %q is not a plain absolute path", c.TrackFile)
	case !urlRE.MatchString(c.HealthURL):
		return fmt.Errorf("health URL %q is not a plain http(s) URL", c.HealthURL)
	case len(c.VIPs) == 0:
		return fmt.Errorf("no VIP")
	}
	return nil
}

// Render executes the template file at path with c.
func Render(path string, c Config) ([]byte, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return RenderText(string(text), c)
}

// RenderText executes the template text with c.
func RenderText(text string, c Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	t, err := template.New("keepalived.conf").Funcs(template.FuncMap{"add": func(a, b int) int { return a + b }}).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parsing the keepalived template: %w", err)
	}
	c.AdvertInt = c.advertInt()
	data := struct {
		Config
		Families []family
	}{c, c.families()}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("rendering the keepalived template: %w", err)
	}
	return buf.Bytes(), nil
}

// Level is what the track file tells keepalived about this node. The
// template reads the file with weight -1: the number is taken off the node's
// priority, and 254 (below keepalived's -253) puts the instance in FAULT.
type Level int

const (
	// Holding: the local haproxy serves and this node holds the VIP. The
	// priority goes up by 253, to keepalived's ceiling of 254, so no node
	// takes the VIP from a holder that serves, not even one with a higher
	// priority coming back from a restart: every move of the VIP resets
	// the connections through it, so it moves only when it has to.
	Holding Level = -253
	// Serving: the local haproxy serves; the node keeps its priority.
	Serving Level = 0
	// LocalOnly: haproxy does not serve but the local apiserver does, and
	// VIP:api-port reaches it directly. The priority drops to 1, so any node
	// that serves takes the VIP after VRRP's master-down interval, and
	// the old holder keeps it, answering, until then: nobody is left
	// without a VIP holder in between.
	LocalOnly Level = 253
	// Fault: neither haproxy nor the local apiserver serves, or the monitor
	// is shutting down: the instance leaves at once (a priority-0 advert).
	Fault Level = 254
)

func (l Level) String() string {
	switch l {
	case Holding:
		return "serving, holding the VIP"
	case Serving:
		return "serving"
	case LocalOnly:
		return "local apiserver only"
	case Fault:
		return "fault"
	}
	return strconv.Itoa(int(l))
}

// TrackFile is keepalived's track file for this node (track_file with
// weight -1), holding a Level.
type TrackFile struct {
	Path string
}

// Set writes the file atomically, so keepalived never reads half a value.
func (t TrackFile) Set(l Level) error {
	_, err := (&apply.File{Path: t.Path, DefaultMode: 0o644}).Apply(context.Background(), []byte(strconv.Itoa(int(l))+"\n"))
	return err
}

// Level reads what the file says. A missing file or one keepalived would
// not read as a number is an error.
func (t TrackFile) Level() (Level, error) {
	b, err := os.ReadFile(t.Path)
	if err != nil {
		return Fault, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return Fault, fmt.Errorf("track file %s: %w", t.Path, err)
	}
	return Level(n), nil
}
