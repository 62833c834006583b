package e2e

import (
	"fmt"
	"github.com/haproxy-monitor/haproxy-monitor/test/chart"
	"os"
	"strings"
	"testing"

	"github.com/haproxy-monitor/haproxy-monitor/test/load"
)

// The baseline lab: the same three masters, client and load, with the
// original's setup instead of ours (docs/lab.md, "the original's
// setup, side by side"): the OpenShift-style haproxy template (checks every 5 s, down
// after 3, no redispatch, every change a reload), keepalived with a
// weight-20 track script on haproxy's monitor-uri every 2 s, 3 failures to
// fail, and the original's monitor algorithm (test/bench/baseline: LIST every
// 6 s, three identical polls, the redirect in after 3 good probes and out
// after 11 bad ones). VRRP priorities, advert_int 1, the reloader and the
// apiservers are the lab's, so the columns differ only in what we changed.
// It runs with HAPM_LAB_BASELINE=1 (make lab-report), not in make test.

var baselineFam = family{name: "IPv4", vip: "198.18.4.100", host: "198.18.4.2", etcd: "198.18.4.5", client: "198.18.4.50",
	serviceCIDR: "198.18.132.0/24", bits: 24, nftFamily: "ip",
	master: func(i int) string { return fmt.Sprintf("198.18.4.%d", 10+i) }}

// baselineResults are the baseline's figures by scenario number.
var baselineResults = map[string]load.Result{}

// baselineEvents are the moments of the baseline's scenarios, by scenario.
var baselineEvents = map[string][]chart.Event{}

// baselineHealthPort is the upstream template's monitor-uri port.
const baselineHealthPort = 9444

// baselineArgv is the stand-in monitor's command line for m. Flags first:
// it parses with Go's flag package, which stops at the first positional
// argument (the original's pflag does not).
func baselineArgv(m *master, vip, kubeconfig string) []string {
	return []string{"--api-port", "6443", "--lb-port", "9445", "--stat-port", "29445",
		"--check-interval", "6s", "--api-vips", vip, "--reload-socket", m.hap.MasterSock, "--api-redirect",
		"--probe-url", fmt.Sprintf("http://127.0.0.1:%d/haproxy_ready", baselineHealthPort),
		kubeconfig, m.hap.TemplatePath, m.hap.CfgPath}
}

// baselineKeepalived is the original's keepalived settings for m: the track
// script lowers the priority by 20 instead of forcing FAULT, so a backup
// takes over only once its priority is higher (or the master-down interval
// passes), after 3 failed runs 2 s apart.
func (l *lab) baselineKeepalived(m *master, advert string) string {
	return fmt.Sprintf(`global_defs {
  enable_script_security
  script_user root
}
vrrp_script chk_ocp {
  script "/usr/bin/curl -o /dev/null -kLfs http://127.0.0.1:%d/haproxy_ready"
  interval 2
  fall 3
  weight 20
}
vrrp_instance API_VIP {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority %d
  advert_int %s
  authentication {
    auth_type PASS
    auth_pass hapmlab
  }
  virtual_ipaddress {
    %s/32
  }
  track_script {
    chk_ocp
  }
}
`, baselineHealthPort, priorityBase()+m.index, advert, l.vip)
}

// redirectRule reports whether name's nftables redirect of VIP:6443 is in.
func (l *lab) redirectRule(name string) bool {
	if name == "" {
		return false
	}
	out, _ := l.net.Run(name, "nft", "list", "table", l.fam.nftFamily, "ocp_nat")
	return strings.Contains(out, l.fam.nftFamily+" daddr "+l.vip+" tcp dport 6443 redirect to :9445")
}

// TestBaselineLab runs the failure scenarios against the original's setup
// for LAB.md's second column. The scenarios' bounds and the checks of what
// only ours does are not applied to it: it is measured, not judged.
func TestBaselineLab(t *testing.T) {
	if os.Getenv("HAPM_LAB_BASELINE") == "" {
		t.Skip("the baseline column runs with HAPM_LAB_BASELINE=1 (make lab-report)")
	}
	lb, err := setup(baselineFam, "o", true)
	if lb != nil {
		defer lb.teardown()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Run("steady", lb.steadyState)
	t.Run("kill-apiserver", lb.killAPIServer)
	t.Run("kill-haproxy", lb.killHAProxy)
	t.Run("cut-link", lb.cutLink)
	t.Run("haproxy-restart", lb.haproxyRestart)
	t.Run("rolling-restart", lb.rollingRestart)
	t.Run("monitor-killed", lb.monitorKilledThenHAProxy)
	t.Run("control-plane-dies", lb.holderControlPlaneDies)
}

// baselineText explains the baseline columns, when they were measured.
func baselineText(baseline map[string]load.Result) string {
	if len(baseline) == 0 {
		return ""
	}
	return "The last two columns are the same scenario, in the same run, against the original's setup (HAPM_LAB_BASELINE=1,\n" +
		"test/e2e/baseline_test.go): the OpenShift-style haproxy template (checks every 5 s, down after 3 failures, no\n" +
		"redispatch to another server, every change a reload), keepalived with a weight-20 track script on haproxy's monitor-uri every\n" +
		"2 s, 3 failures to fail, and the original's monitor algorithm (test/bench/baseline: a LIST every 6 s, three\n" +
		"identical polls, the redirect in after 3 good probes and out after 11 bad ones, one per 6 s). VRRP priorities,\n" +
		"advert_int 1, the reloader, the apiservers and the load are the lab's.\n\n"
}
