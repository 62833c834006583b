// Package lbconfig turns a snapshot of control-plane members into the data the
// haproxy.cfg template is executed with. It is pure: values in, values out, so
// every selection rule is one table-driven test case.
package lbconfig
