package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goTestJSON runs go test -json on a throwaway module holding src as its
// test file and returns what go test printed.
func goTestJSON(t *testing.T, src string) []byte {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":          "module example.com/fixture\n\ngo 1.22\n",
		"fixture.go":      "package fixture\n",
		"fixture_test.go": src,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-json", "-count=1", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	out, _ := cmd.Output() // a failing fixture exits 1: the output is what counts
	if !bytes.Contains(out, []byte(`"Action":`)) {
		t.Fatalf("go test -json printed no events:\n%s", out)
	}
	return out
}

const fixture = `package fixture

import (
	"os"
	"strings"
	"testing"
)

func TestPasses(t *testing.T) { t.Log("quiet line of a passing test") }

func TestFails(t *testing.T) {
	t.Run("first", func(t *testing.T) {
		t.Log("a figure that comes before the failure")
		t.Errorf("the VIP moved again\n%s", strings.Repeat("node log line\n", 20))
	})
	t.Run("second", func(t *testing.T) { t.Log("passes") })
}

func TestDies(t *testing.T) {
	if os.Getenv("FIXTURE_DIE") != "" {
		t.Log("about to die")
		os.Exit(3)
	}
}
`

func TestDigestNamesEachFailureWithItsMessage(t *testing.T) {
	in := goTestJSON(t, fixture)
	var out bytes.Buffer
	failed, err := run(bytes.NewReader(in), &out, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Fatalf("a failing package reported as passing:\n%s", out.String())
	}
	s := out.String()
	i := strings.Index(s, "=== digest: ")
	if i < 0 {
		t.Fatalf("no digest:\n%s", s)
	}
	d := s[i:]
	for _, want := range []string{"--- FAIL: example.com/fixture TestFails/first", "the VIP moved again",
		"a figure that comes before the failure", "…"} {
		if !strings.Contains(d, want) {
			t.Errorf("digest lacks %q:\n%s", want, d)
		}
	}
	if n := strings.Count(d, "node log line"); n != linesPerMessage-1 {
		t.Errorf("digest kept %d lines of the long message, want %d:\n%s", n, linesPerMessage-1, d)
	}
	for _, not := range []string{"TestPasses", "TestFails/second", "quiet line"} {
		if strings.Contains(d, not) {
			t.Errorf("digest names %q, which passed:\n%s", not, d)
		}
	}
	// Without -v, as go test: a passing test's output is not printed.
	if strings.Contains(s, "quiet line of a passing test") {
		t.Errorf("a passing test's output printed without -v:\n%s", s)
	}
}

func TestDigestVerbosePrintsEverythingAndPassesQuietly(t *testing.T) {
	in := goTestJSON(t, strings.Replace(fixture, `t.Errorf("the VIP`, `t.Logf("the VIP`, 1))
	var out bytes.Buffer
	failed, err := run(bytes.NewReader(in), &out, true, "")
	if err != nil || failed {
		t.Fatalf("failed %v, err %v:\n%s", failed, err, out.String())
	}
	if s := out.String(); !strings.Contains(s, "quiet line of a passing test") || strings.Contains(s, "=== digest") {
		t.Errorf("-v output of a passing run:\n%s", s)
	}
}

func TestDigestNamesATestTheBinaryDiedIn(t *testing.T) {
	t.Setenv("FIXTURE_DIE", "1")
	in := goTestJSON(t, fixture)
	var out bytes.Buffer
	failed, err := run(bytes.NewReader(in), &out, false, "")
	if err != nil || !failed {
		t.Fatalf("failed %v, err %v:\n%s", failed, err, out.String())
	}
	d := out.String()[strings.Index(out.String(), "=== digest"):]
	if !strings.Contains(d, "TestDies") {
		t.Errorf("the test the binary died in is not named:\n%s", d)
	}
}

func TestDigestRefusesInputThatIsNotGoTest(t *testing.T) {
	var out bytes.Buffer
	if _, err := run(strings.NewReader(""), &out, false, ""); err == nil {
		t.Error("empty input accepted")
	}
}

func TestDigestNamesAPackageThatDidNotBuild(t *testing.T) {
	in := goTestJSON(t, "package fixture\n\nimport \"testing\"\n\nfunc TestX(t *testing.T) { undefinedHere() }\n")
	var out bytes.Buffer
	failed, err := run(bytes.NewReader(in), &out, false, "")
	if err != nil || !failed {
		t.Fatalf("failed %v, err %v:\n%s", failed, err, out.String())
	}
	s := out.String()
	if !strings.Contains(s, "undefined: undefinedHere") {
		t.Errorf("the compiler's message is not printed:\n%s", s)
	}
	if d := s[strings.Index(s, "=== digest"):]; !strings.Contains(d, "--- FAIL: package example.com/fixture, in no test") {
		t.Errorf("the package is not named in the digest:\n%s", d)
	}
}
