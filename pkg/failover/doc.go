// Package failover watches the local haproxy (a probe every 100 ms, and a
// held connection whose close is the news of its death) and acts on what it
// sees: it drives the VIP redirect (package redirect), grades this node for
// keepalived through its track file (Grade, a pure function of what was
// observed), and on shutdown hands the VIP over before the redirect comes
// out.
package failover
