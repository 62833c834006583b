// Command runcshim is the runtime the kind lab's Docker engine runs
// containers with: it takes CAP_SYS_RESOURCE out of a container's
// capabilities, then runs runc with the same arguments. The machines here
// lack that capability, and a privileged container (every kind node is one)
// asks for all of them, so runc fails without it. Lab scaffolding only; a
// user's Docker runs kind without it.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// dropped is what the host cannot give.
const dropped = "CAP_SYS_RESOURCE"

func main() {
	runc := os.Getenv("RUNCSHIM_RUNC")
	if runc == "" {
		runc = "/usr/sbin/runc"
	}
	// A container's config (create, run), or a process's (exec, as
	// "docker exec --privileged" asks for every capability too).
	var specs []string
	if bundle := flagValue(os.Args[1:], "--bundle", "-b"); bundle != "" {
		specs = append(specs, filepath.Join(bundle, "config.json"))
	}
	if process := flagValue(os.Args[1:], "--process", "-p"); process != "" {
		specs = append(specs, process)
	}
	for _, spec := range specs {
		if err := dropCapability(spec); err != nil {
			fmt.Fprintln(os.Stderr, "runcshim:", err)
			os.Exit(1)
		}
	}
	err := syscall.Exec(runc, append([]string{runc}, os.Args[1:]...), os.Environ())
	fmt.Fprintln(os.Stderr, "runcshim:", err)
	os.Exit(1)
}

// flagValue is the value of a runc option given as long or short, with a
// space or (long) an equals sign.
func flagValue(args []string, long, short string) string {
	for i, a := range args {
		switch {
		case (a == long || a == short) && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(a, long+"="):
			return a[len(long)+1:]
		}
	}
	return ""
}

// dropCapability rewrites an OCI runtime config (capabilities under
// "process") or an exec's process (at the top) without dropped in any
// capability set, keeping every other field as it was.
func dropCapability(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	proc, ok := spec["process"].(map[string]any)
	if !ok {
		proc = spec
	}
	caps, _ := proc["capabilities"].(map[string]any)
	if caps == nil {
		return nil
	}
	changed := false
	for set, v := range caps {
		list, _ := v.([]any)
		kept := slices.DeleteFunc(slices.Clone(list), func(c any) bool { return c == dropped })
		if len(kept) != len(list) {
			caps[set], changed = kept, true
		}
	}
	if !changed {
		return nil
	}
	out, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	tmp := path + ".runcshim"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
