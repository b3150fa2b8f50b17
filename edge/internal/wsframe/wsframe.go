// Package wsframe is the edge's WebSocket codec (RFC 6455): opcodes and
// close codes, the frames a server writes, and Reader, which decodes the
// frames a client sends.
//
// It owns the wire format only. It must not know what a message means
// (subscriptions, Mastodon's JSON), touch a socket or a clock, start a
// goroutine, or log: callers feed it bytes they read and write the bytes it
// returns. The opening handshake is not here either; the edge leaves it to
// gorilla/websocket, which then hands over the bare connection.
package wsframe

import "encoding/binary"

// Opcodes of the frames the edge writes and reads (RFC 6455 section 5.2).
// OpText is a text message, OpBinary a binary one; OpClose, OpPing and
// OpPong are control frames.
const (
	opContinuation = 0x0

	OpText   = 0x1
	OpBinary = 0x2
	OpClose  = 0x8
	OpPing   = 0x9
	OpPong   = 0xA
)

// Close codes (RFC 6455 section 7.4.1). CloseGoingAway and
// CloseUnsupportedData are codes the edge sends on its own account;
// CloseNoStatus is what Reader reports for a close frame that carries no
// code, and is never written on the wire. The others are those Reader
// answers a client's mistakes with.
const (
	CloseGoingAway       = 1001
	closeProtocolError   = 1002
	CloseUnsupportedData = 1003
	CloseNoStatus        = 1005
	closeInvalidData     = 1007
	closeTooBig          = 1009
)

// Violation reports whether code is one Reader answers a client's
// violation with (a client may also close with one of them itself).
func Violation(code int) bool {
	return code == closeProtocolError || code == closeInvalidData || code == closeTooBig
}

// HeaderRoom is the length of the longest server frame header. A caller
// that builds a message into a buffer after HeaderRoom bytes can have
// PutHeader fill the header in afterwards, in front of the message, so the
// whole frame takes one allocation and no copy.
const HeaderRoom = 10

// PutHeader writes the header of an unmasked, final server frame with
// opcode op and n payload bytes at the end of room (HeaderRoom bytes) and
// returns the header's length h: the frame starts at room[HeaderRoom-h].
func PutHeader(room []byte, op byte, n int) int {
	var hdr [HeaderRoom]byte
	hdr[0] = 0x80 | op
	h := 2
	switch {
	case n < 126:
		hdr[1] = byte(n)
	case n <= 0xFFFF:
		hdr[1] = 126
		hdr[2], hdr[3] = byte(n>>8), byte(n)
		h = 4
	default:
		hdr[1] = 127
		for i := 0; i < 8; i++ {
			hdr[9-i] = byte(uint64(n) >> (8 * i))
		}
		h = 10
	}
	copy(room[HeaderRoom-h:], hdr[:h])
	return h
}

// Frame returns payload wrapped in an unmasked, final server frame with
// opcode op, in a new slice.
func Frame(op byte, payload []byte) []byte {
	out := make([]byte, HeaderRoom, HeaderRoom+len(payload))
	out = append(out, payload...)
	h := PutHeader(out[:HeaderRoom], op, len(payload))
	return out[HeaderRoom-h:]
}

// Close returns a close frame carrying code and reason. The caller keeps
// reason within the 123 bytes a control frame leaves for it.
func Close(code int, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return Frame(OpClose, append(p, reason...))
}
