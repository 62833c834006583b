// Package haproxyctl gets haproxy to serve a configuration and proves it:
// through haproxy's runtime API when only server lines change (add, move,
// drain, and remove after a grace period), else by writing the file and
// delivering "reload\n" on the static pod reloader's socket (retried with
// backoff while undeliverable), then confirming in the runtime API that
// haproxy serves exactly the file's servers, reloading again when it does
// not within the verify timeout. The rules are a pure state machine
// (machine.go: a named Phase, steps that take an input and the time and
// return effects); the Controller is the driver that carries the effects
// out on the sockets, the file and the clock. Outcomes go to the monitor's
// loop as Events.
package haproxyctl
