//go:build !unix

package main

import (
	"io"

	"github.com/spillway/spillway/cmd/loadtest/internal/loadgen"
)

// warnFileLimit has no limit to check where there is no RLIMIT_NOFILE.
func warnFileLimit(loadgen.Config, io.Writer) {}
