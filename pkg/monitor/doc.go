// Package monitor wires discovery, lbconfig, render, apply and reload into the
// control loop, and serves health endpoints. cmd/monitor only parses flags.
package monitor
