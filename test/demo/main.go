// Command demo runs the monitor's main job on a self-contained local setup:
// etcd and kube-apiserver, fake masters, haproxy with the static pod's
// reloader, and the monitor. It adds a master, moves one, removes one (it
// drains, then goes) and changes the template, and shows for each step what
// haproxy runs, how haproxy took the change (runtime API or reload) and how
// long that took from the write; then it tears everything down. "make test"
// runs the same steps (demo_test.go), so this command cannot break unseen.
package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := Run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
	fmt.Println("\ndemo finished: everything stopped and removed")
}
