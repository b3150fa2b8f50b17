//go:build unix

package jsjson

import (
	"syscall"
	"testing"
	"time"
)

// processCPU returns the user+system CPU time of the whole process, GC
// workers included.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds a cpu-ns/op metric, which unlike ns/op does not count time
// the benchmark spent waiting for a CPU on a loaded machine.
func reportCPU(b *testing.B, start time.Duration) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}
