package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// closeWatch notices SSE clients leaving without a goroutine per client. An
// SSE client never speaks after its request, so all an idle connection
// needs is word of its end: one epoll set, separate from Go's netpoller,
// holds every watched socket (hang-up, error or input), and one goroutine
// waits on it. A goroutine parked in read(2) per client would cost its
// stack, several KB per idle connection.
//
// Sockets are never removed explicitly: closing one drops it from every
// epoll set, and events carry a key of their own rather than the file
// descriptor, so a reused descriptor number cannot be mistaken for a
// closed connection.
type closeWatch struct {
	epfd   int
	logger *slog.Logger

	mu      sync.Mutex
	next    uint64
	watched map[uint64]watched
}

type watched struct {
	raw  syscall.RawConn
	left func()
}

func newCloseWatch(logger *slog.Logger) (*closeWatch, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("edge: epoll: %w", err)
	}
	return &closeWatch{epfd: fd, logger: logger, watched: make(map[uint64]watched)}, nil
}

// watch calls left once, from the watch goroutine, when the client hangs
// up, errs or sends anything but more bytes to discard. forget must be
// called when the connection ends for any reason. ok is false when conn
// cannot be watched (the caller must notice the end itself).
func (w *closeWatch) watch(conn net.Conn, left func()) (forget func(), ok bool) {
	sc, isSC := conn.(syscall.Conn)
	if !isSC {
		return nil, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, false
	}
	w.mu.Lock()
	w.next++
	key := w.next
	w.watched[key] = watched{raw: raw, left: left}
	w.mu.Unlock()
	forget = func() {
		w.mu.Lock()
		delete(w.watched, key)
		w.mu.Unlock()
	}
	var cerr error
	err = raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(uint32(key)), Pad: int32(uint32(key >> 32))}
		cerr = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || cerr != nil {
		forget()
		return nil, false
	}
	return forget, true
}

// run waits for events until ctx is done, then closes the epoll set.
func (w *closeWatch) run(ctx context.Context) {
	defer unix.Close(w.epfd)
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
			if !ok {
				continue // ended meanwhile
			}
			if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 && discard(c.raw, buf[:]) {
				continue // stray bytes from the client, not an end
			}
			w.mu.Lock()
			delete(w.watched, key)
			w.mu.Unlock()
			c.left()
		}
	}
}

// discard reads what the client sent, without blocking, and reports whether
// the connection is still open. RawConn.Read holds the descriptor, so a
// concurrent close cannot make it read another socket.
func discard(raw syscall.RawConn, buf []byte) (open bool) {
	err := raw.Read(func(fd uintptr) bool {
		n, rerr := unix.Read(int(fd), buf)
		open = n > 0 || errors.Is(rerr, unix.EAGAIN)
		return true
	})
	return err == nil && open
}
