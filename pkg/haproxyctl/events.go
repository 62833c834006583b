package haproxyctl

import "time"

// Kind says what an Event reports.
type Kind int

const (
	// Written: the file changed; Path says how haproxy takes it, Reason why
	// not at runtime. Err with Stage sync: replaced but not durable.
	Written Kind = iota
	// WriteFailed: the file was not replaced (Stage, Err); retried with
	// backoff.
	WriteFailed
	// Current: the file already holds the target; nothing to write.
	Current
	// RuntimeApplied: haproxy took the change through its runtime API.
	RuntimeApplied
	// RuntimeFailed: a runtime change failed (Err); the reload path follows.
	RuntimeFailed
	// Delivered: the reload line went out on the reloader's socket.
	Delivered
	// DeliveryFailed: the socket did not take it; retried with backoff.
	DeliveryFailed
	// Serving: haproxy's runtime API shows exactly the file's servers. Path
	// says after what: runtime, reload, or "" for a file found at start-up.
	Serving
	// NotServing: a delivered reload did not show within VerifyTimeout (the
	// reloader may have dropped it); the reload is sent again.
	NotServing
	// Unverifiable: there is no runtime API socket to check with (a
	// template without one); the reload is taken as done.
	Unverifiable
	// Stale: at start-up haproxy serves other servers than the file on disk
	// (the monitor died between a write and its reload); reloading.
	Stale
	// Drained: Server was put in drain (On) or back to ready.
	Drained
	// Retired: a removed server's grace period ended; its last sessions
	// were shut and it was deleted from haproxy.
	Retired
	// StateFileWritten: the server-state-file was written before a reload
	// (Err when it could not be).
	StateFileWritten
	// Sampled: the servers' health as haproxy sees it.
	Sampled
)

func (k Kind) String() string {
	return [...]string{"written", "write-failed", "current", "runtime-applied", "runtime-failed", "delivered", "delivery-failed",
		"serving", "not-serving", "unverifiable", "stale", "drained", "retired", "state-file-written", "sampled"}[k]
}

// Event is one outcome, reported to the monitor's loop in order.
type Event struct {
	Kind Kind
	At   time.Time
	Err  error
	// Stage of a write failure (apply.Stage*).
	Stage string
	// Path of a Written or Serving: PathRuntime or PathReload.
	Path string
	// Reason a Written change reloads instead of going through the
	// runtime API.
	Reason string
	// Config is what was Written.
	Config []byte
	// Attempt numbers the tries of one delivery.
	Attempt int
	// EventAt is the first cluster event behind a Delivered reload or a
	// RuntimeApplied change.
	EventAt time.Time
	// SentAt is when the reload Serving or NotServing is about went out.
	SentAt time.Time
	// Server and On describe a drain or a retirement.
	Server string
	On     bool
	// Up and Down count servers (Sampled, when Err is nil).
	Up, Down int
}
