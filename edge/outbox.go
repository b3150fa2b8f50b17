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
	onClose func(closeReason) // called once, without mu held, when the outbox closes

	mu       sync.Mutex
	pending  net.Buffers // what is left to write, frames in parts
	frames   int         // frames (or what is left of them) in pending
	bytes    int
	flushing bool
	closing  bool // final bytes are queued: close after the queue drains
	closed   bool
	// reason is why the outbox closed, or began closing: set once, by
	// whoever ended it first.
	reason closeReason
	// written counts the bytes the kernel accepted, events the event
	// frames handed over (written or queued), for the connection's log
	// line: plain adds under the mutex each write holds anyway.
	written int64
	events  int64
}

// closeReason is why a connection ended, as its log line says.
type closeReason uint8

const (
	reasonNone        closeReason = iota
	reasonClientLeft              // the client closed, or its socket failed
	reasonKill                    // Mastodon's kill: token revoked, account suspended
	reasonSlow                    // the client could not keep up
	reasonShutdown                // the edge is shutting down
	reasonNATSLost                // shed while NATS is down
	reasonPingTimeout             // no pong to the previous ping
	reasonProtocol                // a WebSocket protocol violation or a binary message
	reasonServerError             // the edge could not serve the connection
)

func (r closeReason) String() string {
	switch r {
	case reasonClientLeft:
		return "client_left"
	case reasonKill:
		return "kill"
	case reasonSlow:
		return "slow_client"
	case reasonShutdown:
		return "shutdown"
	case reasonNATSLost:
		return "nats_lost"
	case reasonPingTimeout:
		return "ping_timeout"
	case reasonProtocol:
		return "protocol_error"
	case reasonServerError:
		return "server_error"
	}
	return "unknown"
}

// outboxLimits bound one client's queue; shared by all outboxes of an edge.
type outboxLimits struct {
	maxFrames    int
	maxBytes     int
	writeTimeout time.Duration
}

func newOutbox(conn net.Conn, limits *outboxLimits, onClose func(closeReason)) *outbox {
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

// send queues b, a frame that is not an event (a heartbeat, a ping, an
// error), for the client; see sendFrame.
func (o *outbox) send(b []byte) bool { return o.put(frame{body: b}, 0) }

// sendFrame queues the event frame fr for the client. It never blocks on
// the client. It reports false when the outbox is closed or has just been
// closed (slow or broken).
func (o *outbox) sendFrame(fr frame) bool { return o.put(fr, 1) }

// put queues fr, counting it as events event frames.
func (o *outbox) put(fr frame, events int64) bool {
	o.mu.Lock()
	if o.closed || o.closing {
		o.mu.Unlock()
		return false
	}
	n := 0
	if !o.flushing && len(o.pending) == 0 {
		var err error
		n, err = o.tryWrite(fr)
		o.written += int64(n)
		if err == nil && n == fr.len() {
			o.events += events
			o.mu.Unlock()
			return true
		}
		if err != nil && err != errWouldBlock {
			o.closeLocked(reasonClientLeft)
			return false
		}
	}
	if o.frames >= o.limits.maxFrames || o.bytes+fr.len()-n > o.limits.maxBytes {
		o.closeLocked(reasonSlow)
		return false
	}
	o.events += events
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
		n, err := o.tryWrite(frame{body: head})
		o.written += int64(n)
		if err == nil && n == len(head) {
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
// closes the connection, for why, once everything queued before them is
// written.
func (o *outbox) finish(final []byte, why closeReason) {
	o.mu.Lock()
	if o.closed || o.closing {
		o.mu.Unlock()
		return
	}
	o.closing = true
	o.reason = why
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

// end closes the connection because the client left (or its input
// ended), unless a finish is already draining the queue, in which case
// the flusher closes it (bounded by the write timeout).
func (o *outbox) end() {
	o.mu.Lock()
	if o.closed || o.closing {
		o.mu.Unlock()
		return
	}
	o.closeLocked(reasonClientLeft)
}

// abort closes the connection at once, for why, dropping anything queued.
func (o *outbox) abort(why closeReason) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closeLocked(why)
}

// closeLocked closes the connection, recording why unless a reason is
// already set (a finish that was draining). Lock must be held; it is
// released.
func (o *outbox) closeLocked(why closeReason) {
	o.closed = true
	if o.reason == reasonNone {
		o.reason = why
	}
	why = o.reason
	o.pending = nil
	o.frames, o.bytes = 0, 0
	o.mu.Unlock()
	_ = o.conn.Close()
	if o.onClose != nil {
		o.onClose(why)
	}
}

// stats reports what the outbox sent and why it closed (reasonNone while
// open).
func (o *outbox) stats() (written, events int64, why closeReason) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.written, o.events, o.reason
}

// flush drains the queue with blocking, deadline-bounded writev calls. It is
// the only goroutine an outbox ever starts; it exits when the queue is empty
// (or the connection is closed).
func (o *outbox) flush() {
	var wrote int64 // by the previous round, counted under the lock
	for {
		o.mu.Lock()
		o.written += wrote
		wrote = 0
		if o.closed {
			o.mu.Unlock()
			return
		}
		if len(o.pending) == 0 {
			o.flushing = false
			if o.closing {
				o.closeLocked(reasonNone)
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
		var err error
		wrote, err = bufs.WriteTo(o.conn)
		if f, ok := o.conn.(interface{ Flush() error }); ok && err == nil {
			// A connection that buffers writes (an HTTP/2 stream, TLS)
			// sends the round's frames together.
			err = f.Flush()
		}
		if err != nil {
			o.mu.Lock()
			o.written += wrote
			if o.closed {
				o.mu.Unlock()
				return
			}
			why := reasonClientLeft
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				why = reasonSlow
			}
			o.closeLocked(why)
			return
		}
	}
}
