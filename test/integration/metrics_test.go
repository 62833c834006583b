package integration

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haproxy-monitor/haproxy-monitor/test/harness"
)

func scrape(t *testing.T, port int) map[string]float64 {
	t.Helper()
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://127.0.0.1:" + strconv.Itoa(port) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "haproxy_monitor_") {
			i := strings.LastIndexByte(line, ' ')
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err == nil {
				out[line[:i]] = v
			}
		}
	}
	return out
}

// The metrics follow real changes: every delivered reload is confirmed in
// haproxy's runtime API, backend states come from haproxy, API requests are
// counted, and the event-to-reload histogram has one sample per change.
func TestMetricsFollowChanges(t *testing.T) {
	s := newSite(t)
	port := s.health()
	s.node("m1", harness.MasterLabel, 11)
	s.node("m2", harness.MasterLabel, 12)
	s.startHAProxy()
	s.startMonitor()
	s.waitServing(30*time.Second, "m1", "m2")
	s.node("m3", harness.MasterLabel, 13)
	s.waitServing(30*time.Second, "m1", "m2", "m3")
	s.masters[hostIP(12)].SetHealthy(false) // haproxy's check marks m2 DOWN

	var m map[string]float64
	ok := harness.Poll(20*time.Second, 100*time.Millisecond, func() bool {
		m = scrape(t, port)
		return m[`haproxy_monitor_reload_verifications_total{result="serving"}`] == 2 &&
			m[`haproxy_monitor_config_writes_total`] == 2 &&
			m[`haproxy_monitor_backends{state="down"}`] == 1
	})
	if !ok {
		t.Fatalf("metrics never showed 2 confirmed reloads and 1 backend down: %v", m)
	}
	want := map[string]float64{
		`haproxy_monitor_backends{state="configured"}`:                 3,
		`haproxy_monitor_backends{state="up"}`:                         2,
		`haproxy_monitor_reloads_total{result="delivered"}`:            1, // the first config; m3 came at runtime
		`haproxy_monitor_changes_applied_total{path="reload"}`:         1,
		`haproxy_monitor_changes_applied_total{path="runtime"}`:        1,
		`haproxy_monitor_runtime_command_failures_total`:               0,
		`haproxy_monitor_reloads_total{result="failed"}`:               0,
		`haproxy_monitor_reload_verifications_total{result="timeout"}`: 0,
		`haproxy_monitor_config_writes_total`:                          2,
		`haproxy_monitor_haproxy_runtime_api_up`:                       1,
		`haproxy_monitor_reload_retries_total`:                         0,
		`haproxy_monitor_config_failures_total{stage="reload"}`:        0,
		`haproxy_monitor_event_to_apply_seconds_count{path="reload"}`:  1,
		`haproxy_monitor_event_to_apply_seconds_count{path="runtime"}`: 1,
		`haproxy_monitor_reload_to_serving_seconds_count`:              1,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if m[`haproxy_monitor_api_requests_total{code="200"}`] < 3 {
		t.Errorf("API requests not counted: %v", m[`haproxy_monitor_api_requests_total{code="200"}`])
	}
	if age := m["haproxy_monitor_api_last_contact_age_seconds"]; age < 0 || age > 120 {
		t.Errorf("last contact age %v", age)
	}
	t.Logf("event→apply: reload %.3fs, runtime %.3fs; reload→serving %.3fs",
		m[`haproxy_monitor_event_to_apply_seconds_sum{path="reload"}`], m[`haproxy_monitor_event_to_apply_seconds_sum{path="runtime"}`],
		m["haproxy_monitor_reload_to_serving_seconds_sum"])
}
