// Package reload gets haproxy to serve the configuration on disk and proves
// it. The Controller delivers "reload\n" on the static pod reloader's socket
// (a fresh connection with a deadline per attempt, retried with backoff while
// undeliverable), confirms through haproxy's runtime API that haproxy serves
// exactly the file's servers, sends the reload again when it does not within
// the verify timeout, and at start-up reloads only when haproxy serves
// something other than the file. Its outcomes go to the monitor's loop as
// Events.
package haproxyctl
