// Command digest reads `go test -json` on its standard input, prints the
// output as go test would (every line with -v; otherwise the packages'
// result lines and the whole output of each failed test) and, when
// something failed, ends with a digest: each failed test with the first
// lines of each of its messages. A long run's first failure is then at the
// end of the log, where a CI page that shows only the tail still shows it.
// It exits 1 when a test or a package failed, or the input was not go
// test's.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

func main() {
	verbose := flag.Bool("v", false, "print every test's output as it comes (go test -v)")
	drop := flag.String("drop", "", "leave out output lines that start with this (e.g. a diff's context)")
	flag.Parse()
	failed, err := run(os.Stdin, os.Stdout, *verbose, *drop)
	if err != nil {
		fmt.Fprintln(os.Stderr, "digest:", err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

// event is one line of go test -json (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// Limits of the digest: a message's first lines, each cut to a width.
const (
	linesPerMessage = 6
	lineWidth       = 400
)

// messageStart matches the first line of a t.Log/t.Error message:
// indented, then file_test.go:line:.
var messageStart = regexp.MustCompile(`^\s+[\w.-]+_test\.go:\d+: `)

// testLog is what one test printed, and whether it failed.
type testLog struct {
	pkg, name string
	lines     []string
	failed    bool
	finished  bool
}

func run(r io.Reader, w io.Writer, verbose bool, drop string) (bool, error) {
	tests := map[string]*testLog{}
	var order []*testLog
	get := func(pkg, name string) *testLog {
		key := pkg + " " + name
		t := tests[key]
		if t == nil {
			t = &testLog{pkg: pkg, name: name}
			tests[key] = t
			order = append(order, t)
		}
		return t
	}
	// A package's own output (not a test's), and the packages that failed.
	pkgLines := map[string][]string{}
	var failedPkgs []string
	anyFailed, sawEvent := false, false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not an event (a build error printed before the tests): as is.
			fmt.Fprintln(w, sc.Text())
			if strings.HasPrefix(sc.Text(), "FAIL") {
				anyFailed = true
			}
			continue
		}
		sawEvent = true
		switch e.Action {
		case "build-output":
			io.WriteString(w, e.Output)
		case "build-fail":
			anyFailed = true
		case "output":
			if drop != "" && strings.HasPrefix(e.Output, drop) {
				continue
			}
			if verbose || (e.Test == "" && e.Output != "PASS\n") {
				io.WriteString(w, e.Output)
			}
			line := strings.TrimRight(e.Output, "\n")
			if e.Test == "" {
				pkgLines[e.Package] = append(pkgLines[e.Package], line)
				continue
			}
			t := get(e.Package, e.Test)
			t.lines = append(t.lines, line)
		case "fail":
			anyFailed = true
			if e.Test == "" {
				failedPkgs = append(failedPkgs, e.Package)
				continue
			}
			t := get(e.Package, e.Test)
			t.failed, t.finished = true, true
			if !verbose {
				// go test without -v prints a failed test's output at its end.
				for _, l := range t.lines {
					if !strings.HasPrefix(l, "=== ") {
						fmt.Fprintln(w, l)
					}
				}
			}
		case "pass", "skip":
			if e.Test != "" {
				t := get(e.Package, e.Test)
				t.finished, t.lines = true, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	if !sawEvent && !anyFailed {
		return true, fmt.Errorf("no go test -json events on the input")
	}
	// A test that started and never ended: the binary died (a timeout's
	// panic, a crash) while it ran.
	for _, t := range order {
		if !t.finished && len(t.lines) > 0 {
			t.failed = true
		}
	}
	if anyFailed {
		digest(w, order, failedPkgs, pkgLines)
	}
	return anyFailed, nil
}

// digest prints each failed test's messages, a few lines each.
func digest(w io.Writer, order []*testLog, failedPkgs []string, pkgLines map[string][]string) {
	n, inPkg := 0, map[string]bool{}
	for _, t := range order {
		if t.failed {
			n++
			inPkg[t.pkg] = true
		}
	}
	fmt.Fprintf(w, "\n=== digest: %d failed (each message's first %d lines; the whole output is above)\n", n, linesPerMessage)
	// A package that failed with no failed test: its build, TestMain, or a
	// panic outside a test; its last lines say which.
	for _, p := range failedPkgs {
		if inPkg[p] {
			continue
		}
		fmt.Fprintf(w, "--- FAIL: package %s, in no test\n", p)
		lines := pkgLines[p]
		for _, l := range lines[max(0, len(lines)-linesPerMessage):] {
			fmt.Fprintln(w, "    "+l)
		}
	}
	for _, t := range order {
		if !t.failed {
			continue
		}
		state := "FAIL"
		if !t.finished {
			state = "DID NOT FINISH"
		}
		fmt.Fprintf(w, "--- %s: %s\n", state, strings.TrimSpace(t.pkg+" "+t.name))
		inMessage, kept := false, 0
		for _, l := range t.lines {
			switch {
			case messageStart.MatchString(l):
				inMessage, kept = true, 0
			case !inMessage || !continues(l):
				inMessage = false
				continue
			}
			kept++
			if kept == linesPerMessage+1 {
				fmt.Fprintln(w, "        …")
			}
			if kept > linesPerMessage {
				continue
			}
			if len(l) > lineWidth {
				l = l[:lineWidth] + " …"
			}
			fmt.Fprintln(w, l)
		}
	}
}

// continues reports a line that goes on the message before it: indented,
// and not a test's result line.
func continues(l string) bool {
	return (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") || l == "") &&
		!strings.HasPrefix(strings.TrimSpace(l), "--- ")
}
