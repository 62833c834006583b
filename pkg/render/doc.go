// Package render executes the haproxy.cfg template. The template is parsed and
// trial-executed once at start-up, so a broken template is reported before any
// file is touched.
package render
