// Package firewall redirects traffic for VIP:api-port to haproxy's lb-port
// while haproxy reports the API reachable, like the original monitor: nftables
// table ocp_nat (per address family), chains ocp_prerouting and ocp_output,
// rules commented OCP_API_LB_REDIRECT, switched with hysteresis.
package firewall
