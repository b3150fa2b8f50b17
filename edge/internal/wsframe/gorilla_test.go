package wsframe

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// FuzzReaderMatchesGorilla feeds the same client byte stream to Reader and
// to the reader of a server-side gorilla/websocket Conn, and requires both
// to deliver the same messages, pings and pongs, in the same order, and to
// end the same way: still open when the bytes run out, or closed with the
// same code (the client's, echoed, or the one a violation calls for).
//
// The stream is built from the fuzz input (see clientStream): mostly
// well-formed masked frames, fragmented messages with control frames
// between, close frames with every interesting code, and corruptions of
// each header field; or, for some inputs, the raw input itself.
//
// The two readers differ on purpose where gorilla is laxer than RFC 6455
// or than ws, the library of Mastodon's Node.js server, whose answers
// Spillway keeps. tolerated lists each such difference and checks that a
// mismatch is exactly that one; anything else fails.
func FuzzReaderMatchesGorilla(f *testing.F) {
	for _, s := range gorillaSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		stream, limit, step := clientStream(in)
		ours := readOurs(stream, limit, step)
		theirs, err := readGorilla(stream, limit)
		if err != nil {
			t.Fatal(err)
		}
		if ours.equal(theirs) {
			return
		}
		if why := tolerated(ours, theirs); why != "" {
			t.Logf("tolerated: %s", why)
			return
		}
		t.Fatalf("readers disagree on %x (limit %d)\nours:    %s\ngorilla: %s", stream, limit, ours, theirs)
	})
}

// tolerated reports which intended difference explains a mismatch, or ""
// if none does.
func tolerated(ours, theirs outcome) string {
	n := len(ours.events)
	sameStart := len(theirs.events) >= n && slices.Equal(ours.events, theirs.events[:n])
	switch {
	case !sameStart:
		return ""

	// Text that is not UTF-8: RFC 6455 section 8.1 says fail the
	// connection, and ws closes with 1007; gorilla leaves checking to
	// the application and delivers the message.
	case ours.end == "close 1007" && !ours.atCloseFrame && len(theirs.events) > n &&
		theirs.events[n].invalidText():
		return "text that is not UTF-8"

	// A close reason that is not UTF-8: 1007 (ws, and RFC 6455 section
	// 7.4.1 for data inconsistent with its type); gorilla calls it a
	// protocol error.
	case ours.end == "close 1007" && ours.atCloseFrame && len(theirs.events) == n &&
		theirs.end == "close 1002" && theirs.err == "websocket: invalid utf8 payload in close frame":
		return "close reason not UTF-8"

	// A close frame with a one-byte payload: not a status code, so a
	// protocol error (RFC 6455 section 5.5.1, ws); gorilla takes it for a
	// close without status. Gorilla reports 1005 only for a payload
	// shorter than two bytes, and Reader stops at the end of a close
	// frame with 1002 only for a one-byte payload or a bad code (which
	// gorilla refuses too), so this is the one-byte case.
	case ours.end == "close 1002" && ours.atCloseFrame && len(theirs.events) == n &&
		theirs.end == "close 1005" && theirs.err == "":
		return "one-byte close payload"

	// Close code 1014 (Bad Gateway) is registered for use on the wire and
	// ws accepts it; gorilla's list of codes predates it. Reader then
	// echoes it, or answers 1007 if the reason is not UTF-8.
	case ours.atCloseFrame && (ours.end == "close 1014" || ours.end == "close 1007") && len(theirs.events) == n &&
		theirs.end == "close 1002" && theirs.err == "websocket: bad close code 1014":
		return "close code 1014"

	// A 64-bit length with its top bit set: gorilla refuses it before
	// reading the mask, Reader once the whole header is in. They agree
	// (1009) when the mask follows; they differ only when the stream ends
	// in between.
	case ours.end == "open" && ours.hugeLengthPending && len(theirs.events) == n &&
		theirs.end == "close 1009":
		return "stream ends inside the header of a frame of negative length"
	}
	return ""
}

// event is one thing a reader delivered: "msg <op> <data>", "ping <data>"
// or "pong".
type event struct {
	kind string
	op   int
	data string
}

func (e event) String() string {
	switch e.kind {
	case "msg":
		return fmt.Sprintf("msg %d %q", e.op, abbrev(e.data))
	case "ping":
		return fmt.Sprintf("ping %q", e.data)
	}
	return e.kind
}

func (e event) invalidText() bool {
	return e.kind == "msg" && e.op == OpText && !utf8.ValidString(e.data)
}

func abbrev(s string) string {
	if len(s) > 40 {
		return s[:40] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

// outcome is what a reader made of a whole stream.
type outcome struct {
	events []event
	end    string // "open", or "close <code>"

	// Reader only: it stopped at the end of a close frame (rather than
	// on a header), or the bytes ran out in the header of a frame whose
	// 64-bit length has its top bit set.
	atCloseFrame, hugeLengthPending bool
	// gorilla only: the protocol error it reported.
	err string
}

func (o outcome) equal(p outcome) bool {
	return o.end == p.end && slices.Equal(o.events, p.events)
}

func (o outcome) String() string {
	var b strings.Builder
	for _, e := range o.events {
		b.WriteString(e.String())
		b.WriteString(" | ")
	}
	b.WriteString(o.end)
	if o.err != "" {
		b.WriteString(" (" + o.err + ")")
	}
	return b.String()
}

// ourRecorder is the Handler of readOurs.
type ourRecorder struct {
	r *Reader
	outcome
}

func (h *ourRecorder) GotMessage(op byte, data []byte) bool {
	h.events = append(h.events, event{kind: "msg", op: int(op), data: string(data)})
	return true
}
func (h *ourRecorder) GotPing(data []byte) {
	h.events = append(h.events, event{kind: "ping", data: string(data)})
}
func (h *ourRecorder) GotPong() { h.events = append(h.events, event{kind: "pong"}) }
func (h *ourRecorder) GotClose(code int) {
	h.end = fmt.Sprintf("close %d", code)
	// A close frame's payload is the only thing endFrame checks with the
	// frame's opcode set to OpClose: a header that fails checkStart leaves
	// op at the previous frame's, which is never a close.
	h.atCloseFrame = h.r.op == OpClose
}

// readOurs runs stream through a Reader, step bytes at a time.
func readOurs(stream []byte, limit int64, step int) outcome {
	r := &Reader{Limit: limit}
	h := &ourRecorder{r: r, outcome: outcome{end: "open"}}
	in := bytes.Clone(stream)
	for len(in) > 0 {
		n := min(step, len(in))
		if !r.Feed(in[:n], h) {
			break
		}
		in = in[n:]
	}
	if h.end == "open" && !r.inPayload && r.nhead >= 10 && r.head[1]&0x7f == 127 && r.head[2]&0x80 != 0 {
		h.hugeLengthPending = true
	}
	return h.outcome
}

// readGorilla runs stream through a server-side gorilla Conn: the upgrade
// is done on an in-memory connection whose reads return stream, then
// messages are read until an error.
func readGorilla(stream []byte, limit int64) (outcome, error) {
	conn := &memConn{in: bytes.NewReader(stream)}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	u := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	c, err := u.Upgrade(&hijacker{conn: conn}, req, nil)
	if err != nil {
		return outcome{}, fmt.Errorf("gorilla upgrade: %w", err)
	}
	conn.out.Reset() // the handshake response
	c.SetReadLimit(limit)
	o := outcome{}
	c.SetPingHandler(func(data string) error {
		o.events = append(o.events, event{kind: "ping", data: data})
		return nil
	})
	c.SetPongHandler(func(string) error {
		o.events = append(o.events, event{kind: "pong"})
		return nil
	})
	for {
		op, data, err := c.ReadMessage()
		if err == nil {
			o.events = append(o.events, event{kind: "msg", op: op, data: string(data)})
			continue
		}
		var ce *websocket.CloseError
		switch {
		case errors.As(err, &ce) && ce.Code == websocket.CloseAbnormalClosure, errors.Is(err, io.EOF):
			// Gorilla's report of the bytes running out.
			o.end = "open"
		case errors.As(err, &ce):
			o.end = fmt.Sprintf("close %d", ce.Code) // the client's close
		case errors.Is(err, websocket.ErrReadLimit):
			o.end = "close 1009"
		default:
			// A protocol error: gorilla says which code in the close
			// frame it writes.
			code, ok := writtenCloseCode(conn.out.Bytes())
			if !ok {
				return outcome{}, fmt.Errorf("gorilla ended with %v and wrote no close frame", err)
			}
			o.end, o.err = fmt.Sprintf("close %d", code), err.Error()
		}
		return o, nil
	}
}

// writtenCloseCode finds the first close frame among server frames and
// returns its code.
func writtenCloseCode(out []byte) (int, bool) {
	for len(out) >= 2 {
		op, n, h := out[0]&0x0f, int(out[1]&0x7f), 2
		switch n {
		case 126:
			n, h = int(binary.BigEndian.Uint16(out[2:])), 4
		case 127:
			n, h = int(binary.BigEndian.Uint64(out[2:])), 10
		}
		if len(out) < h+n {
			return 0, false
		}
		if op == OpClose && n >= 2 {
			return int(binary.BigEndian.Uint16(out[h:])), true
		}
		out = out[h+n:]
	}
	return 0, false
}

// memConn is a net.Conn whose reads come from in and whose writes are kept
// in out.
type memConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *memConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *memConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

// hijacker is the http.ResponseWriter gorilla upgrades: it hands over conn.
type hijacker struct {
	conn *memConn
	hdr  http.Header
}

func (w *hijacker) Header() http.Header {
	if w.hdr == nil {
		w.hdr = http.Header{}
	}
	return w.hdr
}
func (w *hijacker) Write(p []byte) (int, error) { return len(p), nil }
func (w *hijacker) WriteHeader(int)             {}
func (w *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}

// program reads the fuzz input as the choices clientStream makes; past its
// end every choice is 0.
type program struct{ b []byte }

func (p *program) next() byte {
	if len(p.b) == 0 {
		return 0
	}
	c := p.b[0]
	p.b = p.b[1:]
	return c
}

func (p *program) take(n int) []byte {
	n = min(n, len(p.b))
	out := p.b[:n]
	p.b = p.b[n:]
	return out
}

// gorillaLimits are the message limits the differential test reads with:
// around the control frame maximum and the length encodings' boundaries.
var gorillaLimits = []int64{1, 16, 125, 126, 300, 70000}

// closeCodes are the close codes worth sending: every registered one
// around the ranges' ends, reserved ones, and the private range's ends.
var closeCodes = []int{999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1011,
	1012, 1013, 1014, 1015, 1016, 2999, 3000, 3999, 4000, 4999, 5000, 65535}

// clientStream turns fuzz input into a client byte stream, the message
// size limit to read it with and the size of the pieces Reader is fed.
// The first byte picks the limit, the second the piece size, the third
// whether the rest is the stream itself (one input in eight) or a program
// of frames: each frame starts with a byte whose low two bits choose
//
//	0: a text or binary message of up to 84,000 bytes, cut into up to
//	   four fragments at points the input picks, pings between some; text
//	   is made UTF-8 unless a bit says otherwise, so cuts fall inside
//	   characters too;
//	1: a ping, pong or close frame, the close with a code from closeCodes
//	   or none, a one-byte body, and a reason that may be invalid UTF-8;
//	2: a frame with an arbitrary first byte (FIN, RSV bits, opcode);
//	3: a corruption: an unmasked frame, a length in a longer form than
//	   needed, a 64-bit length with its top bit set or past the limit, a
//	   truncated frame that ends the stream, or stray bytes.
func clientStream(in []byte) (stream []byte, limit int64, step int) {
	p := &program{b: in}
	limit = gorillaLimits[int(p.next())%len(gorillaLimits)]
	step = int(p.next()%32) + 1
	if p.next()%8 == 0 {
		return p.b, limit, step
	}
	var out []byte
	for len(p.b) > 0 && len(out) < 1<<17 {
		d := p.next()
		switch d % 4 {
		case 0:
			out = appendMessage(out, p, d)
		case 1:
			out = appendControl(out, p, d)
		case 2:
			b0 := p.next()
			out = appendFrame(out, b0, p.take(int(p.next()%64)), p.next(), 0)
		case 3:
			var done bool
			if out, done = appendCorruption(out, p, d); done {
				return out, limit, step
			}
		}
	}
	return out, limit, step
}

func appendMessage(out []byte, p *program, d byte) []byte {
	op := byte(OpText)
	if d&0x04 != 0 {
		op = OpBinary
	}
	size := int(p.next())
	if size >= 250 {
		size = (size - 249) * 14000 // up to past the 16-bit length form
	}
	data := p.take(size)
	if len(data) < size {
		data = append(bytes.Clone(data), bytes.Repeat([]byte("é"), (size-len(data))/2)...)
	}
	if op == OpText && d&0x10 == 0 {
		data = []byte(strings.ToValidUTF8(string(data), "é"))
	}
	nfrag := int(d>>6) + 1
	cuts := []int{0}
	for i := 1; i < nfrag; i++ {
		cuts = append(cuts, int(p.next())*len(data)/256)
	}
	cuts = append(cuts, len(data))
	slices.Sort(cuts)
	for i := 0; i+1 < len(cuts); i++ {
		b0 := byte(opContinuation)
		if i == 0 {
			b0 = op
		}
		if i+2 == len(cuts) {
			b0 |= 0x80
		}
		out = appendFrame(out, b0, data[cuts[i]:cuts[i+1]], p.next(), 0)
		if i+2 < len(cuts) && d&0x20 != 0 {
			out = appendFrame(out, 0x80|OpPing, p.take(int(p.next()%8)), p.next(), 0)
		}
	}
	return out
}

func appendControl(out []byte, p *program, d byte) []byte {
	switch (d >> 2) % 3 {
	case 0:
		return appendFrame(out, 0x80|OpPing, p.take(int(p.next()%128)), p.next(), 0)
	case 1:
		return appendFrame(out, 0x80|OpPong, p.take(int(p.next()%128)), p.next(), 0)
	}
	var body []byte
	switch c := p.next(); {
	case c < 16: // none
	case c < 32:
		body = []byte{p.next()}
	default:
		code := closeCodes[int(c)%len(closeCodes)]
		if c >= 224 {
			code = int(p.next())<<8 | int(p.next())
		}
		body = binary.BigEndian.AppendUint16(nil, uint16(code))
		reason := p.take(int(p.next() % 16))
		if d&0x80 == 0 {
			reason = []byte(strings.ToValidUTF8(string(reason), ""))
		}
		body = append(body, reason...)
	}
	return appendFrame(out, 0x80|OpClose, body, p.next(), 0)
}

// appendCorruption appends a frame broken in one header field; done means
// the stream ends here.
func appendCorruption(out []byte, p *program, d byte) ([]byte, bool) {
	b0 := 0x80 | byte(OpText)
	if d&0x80 != 0 {
		b0 = 0x80 | OpBinary
	}
	payload := p.take(int(p.next() % 32))
	switch (d >> 2) % 7 {
	case 0:
		return appendFrame(out, b0, payload, p.next(), unmasked), false
	case 1:
		return appendFrame(out, b0, payload, p.next(), long16), false
	case 2:
		return appendFrame(out, b0, payload, p.next(), long64), false
	case 3: // top bit of a 64-bit length
		out = append(out, b0, 0x80|127, 0x80|p.next(), 0, 0, 0, 0, 0, 0, p.next())
		return append(out, p.take(int(p.next()%8))...), false
	case 4: // a 64-bit length past every limit
		out = append(out, b0, 0x80|127, 0, 0, 0, 1, 0, 0, 0, 0)
		return append(out, p.take(int(p.next()%8))...), false
	case 5:
		fr := appendFrame(nil, b0, payload, p.next(), 0)
		return append(out, fr[:int(p.next())%len(fr)]...), true
	}
	return append(out, p.take(int(p.next()%8))...), false
}

// Header forms for appendFrame.
const (
	unmasked = 1 + iota
	long16   // the 16-bit length form, even for a short payload
	long64   // the 64-bit length form
)

// appendFrame appends a client frame: first byte b0, masked with a key
// derived from m unless form is unmasked.
func appendFrame(out []byte, b0 byte, payload []byte, m byte, form int) []byte {
	mask := [4]byte{m, m*7 + 1, m*13 + 5, m ^ 0xa5}
	maskBit := byte(0x80)
	if form == unmasked {
		maskBit = 0
	}
	out = append(out, b0)
	switch n := len(payload); {
	case form == long64 || n > 0xffff:
		out = append(out, maskBit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	case form == long16 || n > 125:
		out = append(out, maskBit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, maskBit|byte(n))
	}
	if form == unmasked {
		return append(out, payload...)
	}
	out = append(out, mask[:]...)
	for i, c := range payload {
		out = append(out, c^mask[i%4])
	}
	return out
}

// gorillaSeeds are programs for clientStream covering each of its choices.
func gorillaSeeds() [][]byte {
	const structured = 1 // third byte: not raw
	seeds := [][]byte{
		// A text message in three fragments with pings between, then a
		// close with code 1000 and a reason.
		{4, 0, structured, 0x80 | 0x20, 20, 'h', 'e', 'l', 'l', 'o', ' ', 0xc3, 0xa9, 't', 'e', ' ', 'w', 'o', 'r', 'l', 'd', '!', '!', '!', '!', 60, 1, 2, 3, 4, 5, 6,
			1 | 2<<2, 33, 2, 'o', 'k', 7},
		// Binary, a ping, a pong, a close without code.
		{2, 3, structured, 0x04, 3, 1, 2, 3, 9, 1, 2, 'p', 'q', 5, 1 | 1<<2, 0, 1, 1 | 2<<2, 0, 0},
		// Text that is not UTF-8.
		{2, 1, structured, 0x10, 2, 0xff, 0xfe, 0},
		// A close reason that is not UTF-8, a one-byte close, code 1014.
		{2, 1, structured, 0x81, 51, 3, 0xff, 0xfe, 0xfd, 0},
		{2, 1, structured, 1 | 2<<2, 20, 7, 0},
		{2, 1, structured, 1 | 2<<2, 40, 0, 0},
		// A message over the limit.
		{0, 5, structured, 0, 250, 'x'},
		// Each corruption.
		{2, 7, structured, 3 | 0<<2, 4, 'a', 'b', 'c', 'd', 9},
		{2, 7, structured, 3 | 1<<2, 4, 'a', 'b', 'c', 'd', 9},
		{2, 7, structured, 3 | 2<<2, 4, 'a', 'b', 'c', 'd', 9},
		{2, 7, structured, 3 | 3<<2, 0, 0x7f, 0xff, 3, 1, 2, 3},
		{2, 7, structured, 3 | 3<<2, 0, 0x7f, 0xff, 7, 1, 2, 3, 4, 5, 6, 7},
		{2, 7, structured, 3 | 4<<2, 0, 4, 1, 2, 3, 4},
		{2, 7, structured, 3 | 5<<2, 4, 'a', 'b', 'c', 'd', 9, 5},
		{2, 7, structured, 3 | 6<<2, 0, 3, 0x81, 0x80, 0},
		// A frame with an arbitrary first byte: RSV2, reserved opcodes,
		// continuation first, fragmented control.
		{2, 7, structured, 2, 0xa1, 2, 'h', 'i', 0},
		{2, 7, structured, 2, 0x83, 0, 0, 2, 0x8b, 0, 0},
		{2, 7, structured, 2, 0x80, 1, 'x', 0},
		{2, 7, structured, 2, 0x09, 0, 0},
		// Raw bytes.
		{2, 7, 0, 0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2},
	}
	return seeds
}
