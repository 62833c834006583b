// Package reload tells the haproxy container to reload by writing "reload\n" to
// its unix socket, the protocol of the static pod's socat/bash reloader. Each
// reload is a fresh connection with a deadline; an undeliverable reload stays
// pending and is retried with backoff instead of ending the process.
package reload
