package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/spillway/spillway/cmd/loadtest/internal/sse"
	"github.com/spillway/spillway/shared/benchdata/payload"
)

// Buffer sizes chosen to keep ~20,000 idle connections cheap: small socket
// read buffers, line buffers that only grow to the size of one event.
const (
	connReadBuf  = 1024
	sseLineBuf   = 4096
	maxEventSize = 4 << 20
	maxKeptFrame = 64 << 10
)

type clientState int32

const (
	statePending clientState = iota
	stateConnected
	stateFailed
	stateDropped
)

// client is one receive-only connection. Fields above mu are fixed at
// creation; state, probes and confirmed are atomics; the rest is guarded by
// mu.
type client struct {
	idx    int
	sse    bool
	stream *Stream
	// ch is the channel whose update events the client receives and nch the
	// channel of its notification events; either may be nil (a
	// user:notification client has no ch, and only instance runs give user
	// clients an nch).
	ch, nch *channel
	token   string
	dialer  int // index into the run's dialers (source address)
	// churn is set on a soak's churn clients, whose events are only
	// counted there.
	churn *churnStats

	state atomic.Int32
	// probes has probeUpdate and probeNotify set as probes arrive on ch and
	// nch; confirmed is set once every channel of the client has seen one.
	probes    atomic.Uint32
	confirmed atomic.Bool

	mu        sync.Mutex
	reason    string
	connectNS int64
	inWindow  bool
	tracker   seqTracker // deliveries on ch
	ntracker  seqTracker // deliveries on nch
}

// Bits of client.probes.
const (
	probeUpdate uint32 = 1 << iota
	probeNotify
)

// wantProbes is the probes value of a fully confirmed client.
func (c *client) wantProbes() uint32 {
	var w uint32
	if c.ch != nil {
		w |= probeUpdate
	}
	if c.nch != nil {
		w |= probeNotify
	}
	return w
}

func (c *client) setState(s clientState, reason string) {
	c.mu.Lock()
	c.reason = reason
	c.mu.Unlock()
	c.state.Store(int32(s))
}

// httpStatusError is a refused SSE request or WebSocket upgrade.
type httpStatusError struct {
	code int
	msg  string
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("http %d: %s", e.code, e.msg)
}

// wsErrorFrame is a {"error":…,"status":N} frame (e.g. a failed subscribe).
type wsErrorFrame struct {
	status int
	msg    string
}

func (e *wsErrorFrame) Error() string {
	return fmt.Sprintf("ws error %d: %s", e.status, e.msg)
}

// classify turns a connection error into a short, token-free reason.
func classify(err error) string {
	var hs *httpStatusError
	var wf *wsErrorFrame
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case err == nil:
		return "closed"
	case errors.As(err, &hs):
		return fmt.Sprintf("http %d", hs.code)
	case errors.As(err, &wf):
		return fmt.Sprintf("ws error %d", wf.status)
	case errors.As(err, &ce):
		return fmt.Sprintf("ws close %d", ce.Code)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return "no local port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, sse.ErrLineTooLong), errors.Is(err, websocket.ErrReadLimit):
		return "event too large"
	case errors.Is(err, websocket.ErrBadHandshake):
		return "bad handshake"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "other"
	}
}

// session is an established connection's read side.
type session interface {
	read(r *runState, c *client) error
	close()
}

// runClient connects c, signals connectDone, then reads until the
// connection ends or ctx is cancelled.
func (r *runState) runClient(ctx context.Context, c *client, connectDone func()) {
	start := time.Now()
	var s session
	var err error
	if c.sse {
		s, err = r.connectSSE(ctx, c)
	} else {
		s, err = r.connectWS(ctx, c, false)
	}
	if err != nil {
		c.setState(stateFailed, classify(err))
		r.failed.Add(1)
		connectDone()
		return
	}
	elapsed := time.Since(start)
	if h := r.connHist.Load(); h != nil {
		h.Record(elapsed.Nanoseconds())
	}
	c.mu.Lock()
	c.connectNS = elapsed.Nanoseconds()
	c.mu.Unlock()
	c.state.Store(int32(stateConnected))
	r.connected.Add(1)
	connectDone()

	stop := context.AfterFunc(ctx, s.close)
	err = s.read(r, c)
	stop()
	s.close()
	if ctx.Err() != nil {
		return
	}
	r.connected.Add(-1)
	var wf *wsErrorFrame
	if errors.As(err, &wf) && !c.confirmed.Load() {
		// The subscription itself was refused: that is a failed client,
		// not one that dropped after working.
		c.setState(stateFailed, classify(err))
		r.failed.Add(1)
		return
	}
	c.setState(stateDropped, classify(err))
	r.dropped.Add(1)
}

// onEvent handles the data of one `update` event, or of a `notification`
// event when notify is set (SSE data or a whole WS frame). It is the
// per-delivery hot path.
func (r *runState) onEvent(c *client, notify bool, data []byte) {
	ch, tr, bit := c.ch, &c.tracker, probeUpdate
	if notify {
		ch, tr, bit = c.nch, &c.ntracker, probeNotify
	}
	if c.churn != nil {
		c.churn.events.Add(1)
		return
	}
	if ch == nil {
		if notify {
			// Nothing this run published: a real notification.
			r.otherEvents.Add(1)
		} else if _, ok := payload.Decode(data); ok {
			r.misrouted.Add(1)
		} else {
			r.foreign.Add(1)
		}
		return
	}
	info, ok := payload.Decode(data)
	if !ok {
		r.foreign.Add(1)
		return
	}
	if info.Probe {
		if got := c.probes.Or(bit) | bit; got == c.wantProbes() && c.confirmed.CompareAndSwap(false, true) {
			r.confirmedN.Add(1)
		}
		return
	}
	if info.Seq < ch.lo.Load() {
		r.stale.Add(1)
		return
	}
	now := r.nowNS()
	c.mu.Lock()
	if !c.inWindow {
		c.mu.Unlock()
		r.stale.Add(1)
		return
	}
	dup := tr.record(info.Seq)
	c.mu.Unlock()
	r.received.Add(1)
	if dup {
		r.dups.Add(1)
		return
	}
	if h := r.lat.Load(); h != nil {
		h.Record(now - info.SentNS)
	}
}

type sseSession struct {
	conn   net.Conn
	parser *sse.Parser
	once   sync.Once
}

func (s *sseSession) close() { s.once.Do(func() { _ = s.conn.Close() }) }

func (s *sseSession) read(r *runState, c *client) error {
	for {
		it, err := s.parser.Next()
		if err != nil {
			return err
		}
		r.handleSSE(c, it)
	}
}

func (r *runState) handleSSE(c *client, it sse.Item) {
	if it.Kind != sse.KindEvent {
		return
	}
	switch string(it.Name) {
	case "update":
		r.onEvent(c, false, it.Data)
	case "notification":
		r.onEvent(c, true, it.Data)
	default:
		r.otherEvents.Add(1)
	}
}

func (r *runState) connectSSE(ctx context.Context, c *client) (_ session, err error) {
	conn, err := r.netDialers[c.dialer].DialContext(ctx, "tcp", r.addr)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = conn.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if err := conn.SetDeadline(time.Now().Add(r.cfg.ConnectTimeout)); err != nil {
		return nil, err
	}
	var req strings.Builder
	req.WriteString("GET ")
	req.WriteString(r.pathPrefix)
	req.WriteString(c.stream.SSEPath())
	req.WriteString(" HTTP/1.1\r\nHost: ")
	req.WriteString(r.hostHeader)
	req.WriteString("\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nUser-Agent: spillway-loadtest\r\n")
	if c.token != "" {
		req.WriteString("Authorization: Bearer ")
		req.WriteString(c.token)
		req.WriteString("\r\n")
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(conn, req.String()); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(conn, connReadBuf)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, &httpStatusError{code: resp.StatusCode, msg: string(body)}
	}
	p := sse.NewParser(resp.Body, sseLineBuf, maxEventSize)
	for {
		it, err := p.Next()
		if err != nil {
			return nil, err
		}
		if it.Kind == sse.KindComment && string(it.Comment) == ")" {
			break
		}
		r.handleSSE(c, it)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return &sseSession{conn: conn, parser: p}, nil
}

type wsSession struct {
	conn *websocket.Conn
	buf  []byte
	once sync.Once
}

func (s *wsSession) close() { s.once.Do(func() { _ = s.conn.Close() }) }

func (s *wsSession) read(r *runState, c *client) error {
	for {
		mt, rd, err := s.conn.NextReader()
		if err != nil {
			return err
		}
		if mt != websocket.TextMessage {
			continue
		}
		s.buf, err = readInto(s.buf[:0], rd)
		if err != nil {
			return err
		}
		f, ok := payload.ParseFrame(s.buf)
		switch {
		case !ok:
			r.foreign.Add(1)
		case f.IsError:
			return &wsErrorFrame{status: f.Status, msg: f.ErrMsg}
		case string(f.Event) == "update":
			r.onEvent(c, false, s.buf)
		case string(f.Event) == "notification":
			r.onEvent(c, true, s.buf)
		default:
			r.otherEvents.Add(1)
		}
		if cap(s.buf) > maxKeptFrame {
			s.buf = nil // let one huge frame's buffer go
		}
	}
}

// readInto appends all of rd to dst, growing it as needed.
func readInto(dst []byte, rd io.Reader) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := rd.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if errors.Is(err, io.EOF) {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// connectWS opens a WebSocket for c, subscribed to c's stream in the URL or
// with a subscribe message (-ws-subscribe); a bare one subscribes to
// nothing.
func (r *runState) connectWS(ctx context.Context, c *client, bare bool) (_ session, err error) {
	subscribe := r.cfg.WSSubscribe && !bare
	u := r.wsBase
	if !r.cfg.WSSubscribe && !bare {
		u += "?" + c.stream.WSQuery().Encode()
	}
	var hdr http.Header
	if c.token != "" {
		hdr = http.Header{"Authorization": {"Bearer " + c.token}}
	}
	conn, resp, err := r.wsDialers[c.dialer].DialContext(ctx, u, hdr)
	if err != nil {
		if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
			return nil, &httpStatusError{code: resp.StatusCode, msg: resp.Header.Get("X-Error-Message")}
		}
		return nil, err
	}
	conn.SetReadLimit(maxEventSize)
	if subscribe {
		if err := conn.SetWriteDeadline(time.Now().Add(r.cfg.ConnectTimeout)); err != nil {
			_ = conn.Close()
			return nil, err
		}
		if err := conn.WriteMessage(websocket.TextMessage, c.stream.SubscribeMessage()); err != nil {
			_ = conn.Close()
			return nil, err
		}
		if err := conn.SetWriteDeadline(time.Time{}); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	return &wsSession{conn: conn}, nil
}
