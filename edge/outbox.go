package edge

import (
	"errors"
	"net"
	"sync"
	"time"
)

// outbox owns every write to one client socket. Writes are attempted
// directly from the caller's goroutine with a non-blocking write(2): on a
// healthy client the frame goes out at once and no goroutine or buffer is
// needed. Only when the kernel's socket buffer is full does the outbox queue
// frames (references to shared, immutable bytes — never copies) and start a
// flusher goroutine that drains the whole queue with one writev per round,
// which also batches bursts. The queue is bounded; overflowing it or missing
// the write deadline closes the connection, so a slow client costs bounded
// memory and never delays anyone else.
type outbox struct {
	conn net.Conn
	// fd is conn's descriptor, or -1 when it has none (tests over
	// net.Pipe) or direct writes are not built in (outbox_portable.go):
	// then every frame goes through the flusher. Direct writes use it without the runtime's descriptor
	// lock: only the outbox closes conn, and it marks itself closed under
	// mu first, while direct writes happen under mu after checking that
	// mark, so no write can meet a closed (or reused) descriptor.
	fd int
	// write, when set, replaces the non-blocking write(2) (benchmarks).
	write   func(frame) (int, error)
	limits  *outboxLimits
	onClose func(slow bool) // called once, without mu held, when the outbox closes

	mu       sync.Mutex
	pending  net.Buffers // what is left to write, frames in parts
	frames   int         // frames (or what is left of them) in pending
	bytes    int
	flushing bool
	closing  bool // final bytes are queued: close after the queue drains
	closed   bool
}

// outboxLimits bound one client's queue; shared by all outboxes of an edge.
type outboxLimits struct {
	maxFrames    int
	maxBytes     int
	writeTimeout time.Duration
}

func newOutbox(conn net.Conn, limits *outboxLimits, onClose func(slow bool)) *outbox {
	return &outbox{conn: conn, fd: directFD(conn), limits: limits, onClose: onClose}
}

// errWouldBlock reports that the socket buffer is full.
var errWouldBlock = errors.New("would block")

// tryWrite writes fr without blocking, with one write(2), or one writev(2)
// for a frame in parts, and reports how much went out. Lock must be held
// (it keeps writers in order).
func (o *outbox) tryWrite(fr frame) (int, error) {
	if o.write != nil {
		return o.write(fr)
	}
	if o.fd < 0 {
		return 0, errWouldBlock
	}
	return writeDirect(o.fd, fr)
}

// send queues b for the client; see sendFrame.
func (o *outbox) send(b []byte) bool { return o.sendFrame(frame{body: b}) }

// sendFrame queues fr for the client. It never blocks on the client. It
// reports false when the outbox is closed or has just been closed (slow or
// broken).
func (o *outbox) sendFrame(fr frame) bool {
	o.mu.Lock()
	if o.closed || o.closing {
		o.mu.Unlock()
		return false
	}
	n := 0
	if !o.flushing && len(o.pending) == 0 {
		var err error
		n, err = o.tryWrite(fr)
		if err == nil && n == fr.len() {
			o.mu.Unlock()
			return true
		}
		if err != nil && err != errWouldBlock {
			o.closeLocked(false)
			return false
		}
	}
	if o.frames >= o.limits.maxFrames || o.bytes+fr.len()-n > o.limits.maxBytes {
		o.closeLocked(true)
		return false
	}
	// Queue what is left, skipping the n bytes already written.
	for _, p := range [3][]byte{fr.head, fr.body, fr.tail} {
		if n >= len(p) {
			n -= len(p)
			continue
		}
		o.pending = append(o.pending, p[n:])
		o.bytes += len(p) - n
		n = 0
	}
	o.frames++
	if !o.flushing {
		o.flushing = true
		go o.flush()
	}
	o.mu.Unlock()
	return true
}

// hold makes every send queue until release, so that a response head can
// be written after subscriptions are in place but before any event.
func (o *outbox) hold() {
	o.mu.Lock()
	o.flushing = true
	o.mu.Unlock()
}

// release writes head (which may be empty), then whatever was queued
// while held.
func (o *outbox) release(head []byte) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	if len(head) == 0 {
		if len(o.pending) == 0 && !o.closing {
			o.flushing = false
			o.mu.Unlock()
			return
		}
		o.mu.Unlock()
		go o.flush()
		return
	}
	if len(o.pending) == 0 {
		if n, err := o.tryWrite(frame{body: head}); err == nil && n == len(head) {
			o.flushing = false
			o.mu.Unlock()
			return
		} else if err == nil || err == errWouldBlock {
			head = head[n:]
		}
	}
	o.pending = append(net.Buffers{head}, o.pending...)
	o.frames++
	o.bytes += len(head)
	o.mu.Unlock()
	go o.flush()
}

// finish queues final bytes (an SSE terminator, a WebSocket close frame) and
// closes the connection once everything queued before them is written.
func (o *outbox) finish(final []byte) {
	o.mu.Lock()
	if o.closed || o.closing {
		o.mu.Unlock()
		return
	}
	o.closing = true
	if len(final) > 0 {
		o.pending = append(o.pending, final)
		o.frames++
		o.bytes += len(final)
	}
	if o.flushing {
		o.mu.Unlock()
		return
	}
	o.flushing = true
	o.mu.Unlock()
	// The flusher writes what is left and closes; running it on its own
	// goroutine keeps finish non-blocking for the dispatcher.
	go o.flush()
}

// end closes the connection unless a finish is already draining the queue,
// in which case the flusher closes it (bounded by the write timeout).
func (o *outbox) end() {
	o.mu.Lock()
	if o.closed || o.closing {
		o.mu.Unlock()
		return
	}
	o.closeLocked(false)
}

// abort closes the connection at once, dropping anything queued.
func (o *outbox) abort() {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closeLocked(false)
}

// closeLocked closes the connection. Lock must be held; it is released.
func (o *outbox) closeLocked(slow bool) {
	o.closed = true
	o.pending = nil
	o.frames, o.bytes = 0, 0
	o.mu.Unlock()
	_ = o.conn.Close()
	if o.onClose != nil {
		o.onClose(slow)
	}
}

// flush drains the queue with blocking, deadline-bounded writev calls. It is
// the only goroutine an outbox ever starts; it exits when the queue is empty
// (or the connection is closed).
func (o *outbox) flush() {
	for {
		o.mu.Lock()
		if o.closed {
			o.mu.Unlock()
			return
		}
		if len(o.pending) == 0 {
			o.flushing = false
			if o.closing {
				o.closeLocked(false)
				return
			}
			o.mu.Unlock()
			return
		}
		bufs := o.pending
		o.pending = nil
		o.frames, o.bytes = 0, 0
		o.mu.Unlock()

		_ = o.conn.SetWriteDeadline(time.Now().Add(o.limits.writeTimeout))
		_, err := bufs.WriteTo(o.conn)
		if f, ok := o.conn.(interface{ Flush() error }); ok && err == nil {
			// A connection that buffers writes (an HTTP/2 stream)
			// sends the round's frames together.
			err = f.Flush()
		}
		if err != nil {
			o.mu.Lock()
			if o.closed {
				o.mu.Unlock()
				return
			}
			var ne net.Error
			o.closeLocked(errors.As(err, &ne) && ne.Timeout())
			return
		}
	}
}
