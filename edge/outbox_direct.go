//go:build linux && !spillway_portable

package edge

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directFD returns the descriptor direct writes use, or -1 when conn has
// none.
func directFD(conn net.Conn) int {
	fd := -1
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			_ = raw.Control(func(d uintptr) { fd = int(d) })
		}
	}
	return fd
}

// writeDirect writes fr to the non-blocking socket fd with one write(2),
// or one writev(2) for a frame in parts, and reports how much went out;
// errWouldBlock when the socket buffer is full.
func writeDirect(fd int, fr frame) (int, error) {
	n, errno := writeFrame(fd, fr)
	switch errno {
	case 0:
		return n, nil
	case syscall.EAGAIN:
		return 0, errWouldBlock
	}
	return 0, errno
}

// writeFrame issues write(2), or writev(2) for a frame in parts, with
// RawSyscall: the socket is non-blocking, so the call never waits, and the
// runtime's syscall bookkeeping only hurts here. A loopback write of a few
// KB spends 10–20 µs in the kernel, long enough for the runtime's monitor
// to take the P away mid-call, hand it to another thread and switch back
// afterwards: context switches on the edge's own core for every write.
func writeFrame(fd int, fr frame) (int, syscall.Errno) {
	for {
		var (
			r     uintptr
			errno syscall.Errno
		)
		if len(fr.head) == 0 && len(fr.tail) == 0 {
			r, _, errno = syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(fr.body))), uintptr(len(fr.body)))
		} else {
			var iov [3]unix.Iovec
			n := 0
			for _, p := range [3][]byte{fr.head, fr.body, fr.tail} {
				if len(p) > 0 {
					iov[n] = unix.Iovec{Base: unsafe.SliceData(p)}
					iov[n].SetLen(len(p))
					n++
				}
			}
			r, _, errno = syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(n))
		}
		if errno != syscall.EINTR {
			return int(r), errno
		}
	}
}
