//go:build !linux

package rawio

import "net"

// Wrap returns c unchanged: raw syscalls are a Linux refinement.
func Wrap(c net.Conn) net.Conn { return c }
