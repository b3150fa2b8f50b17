//go:build unix

package main

import (
	"fmt"
	"io"
	"syscall"

	"github.com/spillway/spillway/cmd/loadtest/internal/loadgen"
)

// warnFileLimit warns when the open-file limit cannot hold every client
// (Go already raised the soft limit to the hard limit at startup).
func warnFileLimit(cfg loadgen.Config, stderr io.Writer) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := cfg.Clients
	if cfg.Ramp != nil {
		want = cfg.Ramp.Max
	}
	if cfg.Soak != nil {
		want += cfg.Soak.MaxLive()
	}
	if uint64(want)+64 > lim.Cur {
		_, _ = fmt.Fprintf(stderr, "loadtest: warning: open-file limit %d is below %d clients + 64; later connections will fail with \"too many open files\"\n", lim.Cur, want)
	}
}
