// Command pause is the lab's pod sandbox image: it sleeps until SIGTERM or
// SIGINT, as the kubelet's pause container does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
