//go:build linux && !spillway_portable

package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// idleWithoutGoroutine reports whether an idle client costs no goroutine:
// one epoll set watches every idle socket.
const idleWithoutGoroutine = true

// watcher waits for input on client sockets without a goroutine per
// client. A goroutine parked in read(2) costs its stack, several KB per
// idle connection; instead one epoll set, separate from Go's netpoller,
// holds every idle socket and one goroutine waits on it. SSE clients never
// speak after their request, so for them (watchClose) input only means the
// end. WebSocket clients do speak, rarely (serveInput): their input is read
// on a goroutine started for it, which exits once the socket has nothing
// more to read.
//
// Sockets are never removed from the set explicitly: closing one drops it
// from every epoll set, and events carry a key of their own rather than the
// file descriptor, so a reused descriptor number cannot be mistaken for
// another connection.
type watcher struct {
	epfd   int
	logger *slog.Logger

	mu      sync.Mutex
	closed  bool // epfd is closed; no more watching
	next    uint64
	watched map[uint64]watched
}

type watched struct {
	raw syscall.RawConn
	// left is set for watchClose, consume and stop for serveInput.
	left    func()
	consume func(read func([]byte) (int, error)) bool
	stop    func()
}

func newWatcher(logger *slog.Logger) (*watcher, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("edge: epoll: %w", err)
	}
	return &watcher{epfd: fd, logger: logger, watched: make(map[uint64]watched)}, nil
}

// watchClose calls left once, from the watch goroutine, when the client
// hangs up, errs or sends anything but more bytes to discard. forget must
// be called when the connection ends for any reason. ok is false when conn
// cannot be watched (the caller must notice the end itself). A TLS
// connection is watched through its socket: SSE never reads the TLS stream
// again, so what the client sends is discarded as on plain TCP, and its
// hang-up is the end. Any other connection without a descriptor gets a
// goroutine of its own.
func (w *watcher) watchClose(conn net.Conn, left func()) (forget func(), ok bool) {
	if tc, isTLS := conn.(*tls.Conn); isTLS {
		conn = tc.NetConn()
	}
	if _, isSC := conn.(syscall.Conn); !isSC {
		watchCloseBlocking(conn, left)
		return func() {}, true
	}
	return w.add(conn, watched{left: left}, unix.EPOLLIN|unix.EPOLLRDHUP)
}

// serveInput runs consume on a goroutine of its own each time conn has
// input, never two at once. consume reads with read, which never blocks: it
// returns errWouldBlock once the socket is drained. consume returns true to
// wait for more input, false when it is done with the socket. stop is
// called instead of consume when the socket can no longer be watched (the
// edge is shutting down). forget must be called when the connection ends.
// A connection without a descriptor of its own to poll (TLS) is read by a
// goroutine of its own, with blocking reads.
func (w *watcher) serveInput(conn net.Conn, consume func(read func([]byte) (int, error)) bool, stop func()) (forget func(), ok bool) {
	if _, isSC := conn.(syscall.Conn); !isSC {
		serveInputBlocking(conn, consume)
		return func() {}, true
	}
	return w.add(conn, watched{consume: consume, stop: stop}, unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLONESHOT)
}

func (w *watcher) add(conn net.Conn, c watched, events uint32) (forget func(), ok bool) {
	sc, isSC := conn.(syscall.Conn)
	if !isSC {
		return nil, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, false
	}
	c.raw = raw
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, false
	}
	w.next++
	key := w.next
	if err := w.ctl(unix.EPOLL_CTL_ADD, raw, key, events); err != nil {
		return nil, false
	}
	w.watched[key] = c
	return func() { w.forget(key) }, true
}

func (w *watcher) forget(key uint64) {
	w.mu.Lock()
	delete(w.watched, key)
	w.mu.Unlock()
}

// ctl changes the socket's entry in the set. Lock must be held: it keeps
// epfd open meanwhile, and orders one input goroutine's work before the
// next one's start.
func (w *watcher) ctl(op int, raw syscall.RawConn, key uint64, events uint32) error {
	var cerr error
	err := raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: events, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
		cerr = unix.EpollCtl(w.epfd, op, int(fd), &ev)
	})
	if err != nil {
		return err
	}
	return cerr
}

// run waits for events until ctx is done, then closes the epoll set.
func (w *watcher) run(ctx context.Context) {
	defer func() {
		w.mu.Lock()
		w.closed = true
		unix.Close(w.epfd)
		w.mu.Unlock()
	}()
	events := make([]unix.EpollEvent, 256)
	var buf [512]byte
	for ctx.Err() == nil {
		// The timeout bounds how long a cancelled ctx goes unnoticed.
		n, err := unix.EpollWait(w.epfd, events, 200)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			w.logger.Error("epoll wait", "err", err)
			return
		}
		for _, ev := range events[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			w.mu.Lock()
			c, ok := w.watched[key]
			w.mu.Unlock()
			switch {
			case !ok:
				// ended meanwhile
			case c.consume != nil:
				// Owner: the WebSocket session; exits when the socket
				// has nothing more to read.
				go w.input(key, c)
			case ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 && discard(c.raw, buf[:]):
				// stray bytes from an SSE client, not an end
			default:
				w.forget(key)
				c.left()
			}
		}
	}
}

// input runs one round of consume and re-arms the socket's one-shot entry
// when it wants more.
func (w *watcher) input(key uint64, c watched) {
	read := func(p []byte) (int, error) { return readNow(c.raw, p) }
	if !c.consume(read) {
		return
	}
	w.mu.Lock()
	err := errors.New("watcher closed")
	if !w.closed {
		err = w.ctl(unix.EPOLL_CTL_MOD, c.raw, key, unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLONESHOT)
	}
	w.mu.Unlock()
	if err != nil {
		c.stop()
	}
}

// readNow reads without blocking; io.EOF when the client has closed.
// RawConn.Read holds the descriptor, so a concurrent close cannot make it
// read another socket.
func readNow(raw syscall.RawConn, p []byte) (int, error) {
	var (
		n    int
		rerr error
	)
	err := raw.Read(func(fd uintptr) bool {
		for {
			n, rerr = unix.Read(int(fd), p)
			if rerr != unix.EINTR {
				return true
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case rerr == unix.EAGAIN:
		return 0, errWouldBlock
	case rerr != nil:
		return 0, rerr
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// discard reads what the client sent, without blocking, and reports whether
// the connection is still open.
func discard(raw syscall.RawConn, buf []byte) (open bool) {
	n, err := readNow(raw, buf)
	return n > 0 || errors.Is(err, errWouldBlock)
}
