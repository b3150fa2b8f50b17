// Package rawio gives TCP and Unix connections whose reads and writes skip
// the Go runtime's syscall bookkeeping, for the long-lived connections that
// carry every event (the broker's Redis subscription, NATS clients).
//
// An ordinary read or write syscall on a process whose processors are all
// idle wakes the runtime's monitor thread, which then polls every 20 µs for
// about a millisecond. With events a few hundred microseconds apart the
// monitor never sleeps again, and on a small machine it costs more CPU
// than the syscalls themselves. Sockets in Go are non-blocking, so the
// syscalls here never wait: the descriptor's poller still does the
// waiting, deadlines included, as for any net.Conn.
//
// Elsewhere than on Linux, Wrap returns the connection unchanged.
package rawio
