package main

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// summary is min/median/p99 of a sample (nearest rank).
type summary struct {
	N                int
	Min, Median, P99 float64
}

func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return summary{N: len(s), Min: s[0], Median: rank(0.5), P99: rank(0.99)}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// procSample is a process's resident memory and cumulative CPU time.
type procSample struct {
	RSSKiB int64
	CPU    time.Duration
	At     time.Time
}

// sampleProc reads /proc/<pid>/status (VmRSS) and /proc/<pid>/stat (utime,
// stime in clock ticks of 1/100 s on Linux).
func sampleProc(pid int) (procSample, error) {
	st := procSample{At: time.Now()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			st.RSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the whole line.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	f := strings.Fields(rest)
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	sy, _ := strconv.ParseInt(f[12], 10, 64)
	st.CPU = time.Duration(ut+sy) * 10 * time.Millisecond
	return st, nil
}

// footprint watches a process over a window: peak RSS and CPU share.
type footprint struct {
	PeakRSSMiB float64
	CPUPercent float64
}

func measureFootprint(pid int, window time.Duration, during func(stop <-chan struct{})) (footprint, error) {
	start, err := sampleProc(pid)
	if err != nil {
		return footprint{}, err
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	if during != nil {
		go func() { during(stop); close(done) }()
	} else {
		close(done)
	}
	peak := start.RSSKiB
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if s, err := sampleProc(pid); err == nil && s.RSSKiB > peak {
			peak = s.RSSKiB
		}
	}
	close(stop)
	<-done
	last, err := sampleProc(pid)
	if err != nil {
		return footprint{}, err
	}
	wall := last.At.Sub(start.At)
	return footprint{
		PeakRSSMiB: float64(max(peak, last.RSSKiB)) / 1024,
		CPUPercent: 100 * float64(last.CPU-start.CPU) / float64(wall),
	}, nil
}
