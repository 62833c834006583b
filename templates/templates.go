// Package templates embeds the shipped templates, so tools built from this
// repository (keepalived-conf in the image) carry them.
package templates

import _ "embed"

// KeepalivedConf is keepalived.conf.tmpl.
//
//go:embed keepalived.conf.tmpl
var KeepalivedConf string

// HAProxyCfg is haproxy.cfg.tmpl.
//
//go:embed haproxy.cfg.tmpl
var HAProxyCfg string
