package main

import (
	"bufio"
	"net"
	"os"
	"sync"
	"time"
)

// sink stands in for the haproxy container's reloader: a unix socket that
// timestamps every "reload" line.
type sink struct {
	ln    net.Listener
	mu    sync.Mutex
	times []time.Time
}

func newSink(path string) (*sink, error) {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if sc.Text() == "reload" {
						s.mu.Lock()
						s.times = append(s.times, time.Now())
						s.mu.Unlock()
					}
				}
			}()
		}
	}()
	return s, nil
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.times)
}

// waitAfter returns the first reload after n reloads, or false at the deadline.
func (s *sink) waitAfter(n int, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		if len(s.times) > n {
			t := s.times[n]
			s.mu.Unlock()
			return t, true
		}
		s.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
	return time.Time{}, false
}

func (s *sink) close() { s.ln.Close() }
