package lbconfig

import "net/netip"

// TemplateData is the value the template is executed with. Its shape (field
// names and types) is the original monitor's contract: templates in the wild
// use {{ .LBConfig.LbPort }}, {{ range .LBConfig.Backends }} and so on.
type TemplateData struct {
	LBConfig LBConfig
}

// LBConfig mirrors the original's ApiLBConfig field for field.
type LBConfig struct {
	ApiPort  uint16 //nolint:revive // name is part of the template contract
	LbPort   uint16
	StatPort uint16
	Backends []Backend
	// FrontendAddr is "::" when the first VIP is IPv6, else empty.
	FrontendAddr string
}

// Backend is one kube-apiserver haproxy balances to.
type Backend struct {
	Host    string // node name, used as the haproxy server name
	Address string // canonical IP literal
	Port    uint16 // the api-port
}

// Node is what discovery knows about one control-plane member: only the fields
// that can change the rendered configuration.
type Node struct {
	Name        string
	InternalIPs []string // as published in status.addresses, in order
}

// Options are the monitor's settings that shape the template data.
type Options struct {
	APIPort  uint16
	LBPort   uint16
	StatPort uint16
	// VIPs in the order given on the command line; the first one decides the
	// frontend family and the preferred backend subnet.
	VIPs []netip.Addr
	// VIPSubnets[i] is the prefix of a local interface that contains VIPs[i],
	// or the zero Prefix when no local interface is on that VIP's subnet.
	VIPSubnets []netip.Prefix
}

// Skipped records a node that produced no backend and why.
type Skipped struct {
	Node   string
	Reason string
}
