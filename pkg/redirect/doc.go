// Package redirect sends traffic for VIP:api-port to haproxy's lb-port,
// like the original monitor: nftables table ocp_nat (per address family),
// chains ocp_prerouting and ocp_output, rules commented OCP_API_LB_REDIRECT,
// switched with hysteresis (Switch); and, for a VIP that is moving away, a
// hold on new connections.
package redirect
