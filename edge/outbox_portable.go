//go:build !linux || spillway_portable

package edge

import "net"

// directFD is -1 where direct writes are not built in: every frame is
// queued and the outbox's flusher goroutine writes it with conn.Write,
// bounded by the write timeout. Linux builds can select this path with
// the spillway_portable build tag, which is how it is tested.
func directFD(net.Conn) int { return -1 }

// writeDirect is never called: directFD is always -1.
func writeDirect(int, frame) (int, error) { return 0, errWouldBlock }
