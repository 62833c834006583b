package haproxyctl

import (
	"strings"
	"testing"

	"github.com/haproxy-monitor/haproxy-monitor/pkg/haproxycfg"
)

const stateSample = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port
3 masters 1 m1 198.18.0.11 0 0 1 1 40 8 2 0 6 0 0 0 - 6443
3 masters 2 m2 198.18.0.12 2 8 1 1 40 6 3 4 6 0 0 0 - 6443
3 masters 3 m3 198.18.0.13 2 0 1 1 40 6 3 4 6 0 0 0 - 6443
3 masters 4 m4 fd00::14 2 0 1 1 40 6 3 4 6 0 0 0 - 6443
`

func TestPruneState(t *testing.T) {
	next := haproxycfg.Servers([]byte(head + srv("m1", "198.18.0.11:6443") + srv("m2", "198.18.0.12:6443") +
		srv("m3", "198.18.0.23:6443") + srv("m4", "fd00::14:6443") + srv("m5", "198.18.0.15:6443")))
	got := PruneState(stateSample, next)
	want := []string{"3 masters 1 m1 ", "3 masters 2 m2 ", "3 masters 4 m4 "}
	rows := strings.Split(strings.TrimSpace(got), "\n")
	if rows[0] != "1" || !strings.HasPrefix(rows[1], "# be_id") || len(rows) != 2+len(want) {
		t.Fatalf("pruned state:\n%s", got)
	}
	for i, w := range want {
		if !strings.HasPrefix(rows[2+i], w) {
			t.Errorf("row %d = %q, want %q...", i, rows[2+i], w)
		}
	}
	// m1 DOWN and m2 drained carry over; m3 moved (starts fresh); m5 is new.
	if strings.Contains(got, " m3 ") || strings.Contains(got, " m5 ") {
		t.Errorf("a moved or new server carried over:\n%s", got)
	}
}

func FuzzPruneState(f *testing.F) {
	f.Add(stateSample, head+srv("m1", "198.18.0.11:6443"))
	f.Fuzz(func(t *testing.T, st, cfg string) {
		next := haproxycfg.Servers([]byte(cfg))
		out := PruneState(st, next)
		if strings.Count(out, "\n") > strings.Count(st, "\n")+1 {
			t.Fatalf("pruning added lines:\n%q\n->\n%q", st, out)
		}
		if again := PruneState(out, next); again != out {
			t.Fatalf("not idempotent:\n%q\n%q", out, again)
		}
	})
}
