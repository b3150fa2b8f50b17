package wsframe

import (
	"encoding/binary"
	"unicode/utf8"
)

// Handler receives what a Reader decodes. GotMessage gets a complete text
// or binary message (op is OpText or OpBinary; text is valid UTF-8) and
// reports whether reading goes on; data is only valid during the call.
// GotPing gets a ping's payload, valid during the call, and GotPong is told
// of a pong.
type Handler interface {
	GotMessage(op byte, data []byte) bool
	GotPing(data []byte)
	GotPong()
	// GotClose is called for a valid close frame, with the client's code
	// (CloseNoStatus when it has none), or for a violation, with the code
	// to close with: 1002 for a protocol error, 1007 for text or a close
	// reason that is not UTF-8, 1009 for a message over the limit.
	// Reading stops after it.
	GotClose(code int)
}

// Reader decodes the frames a client sends (RFC 6455 section 5) from bytes
// pushed into it as they arrive, so that no goroutine has to sit in a
// blocking read for an idle client: gorilla/websocket can only read that
// way. Between frames it holds no buffer; a message is assembled only
// while it arrives, bounded by Limit. The zero Reader with Limit set is
// ready to use; one Reader serves one connection.
type Reader struct {
	// Limit is the largest message, in bytes, summed over its fragments;
	// a longer one is refused with 1009 as soon as its header says so.
	Limit int64

	head  [14]byte // the frame header as it arrives
	nhead int
	// Set once the header is complete: the frame's opcode, FIN bit, mask
	// and payload bytes still to come.
	inPayload bool
	op        byte
	fin       bool
	mask      [4]byte
	maskAt    int
	left      uint64

	msgOp byte   // OpText/OpBinary while a message is open, else 0
	msg   []byte // its data so far
	ctl   []byte // the payload of the control frame being read

	done bool // a close was delivered; nothing more is read
}

// Feed decodes p, calling h for every complete message and control frame.
// It returns false once reading has stopped (a close frame, a violation,
// or h declining more); p may be modified (it is unmasked in place).
func (r *Reader) Feed(p []byte, h Handler) bool {
	for len(p) > 0 && !r.done {
		if !r.inPayload {
			p = r.readHead(p, h)
			continue
		}
		n := len(p)
		if uint64(n) > r.left {
			n = int(r.left)
		}
		chunk := p[:n]
		p = p[n:]
		for i := range chunk {
			chunk[i] ^= r.mask[(r.maskAt+i)&3]
		}
		r.maskAt = (r.maskAt + n) & 3
		r.left -= uint64(n)
		if r.op >= OpClose {
			r.ctl = append(r.ctl, chunk...)
		} else {
			r.msg = append(r.msg, chunk...)
		}
		if r.left == 0 {
			r.endFrame(h)
		}
	}
	return !r.done
}

// readHead collects header bytes from p and returns what follows them.
func (r *Reader) readHead(p []byte, h Handler) []byte {
	if r.nhead < 2 {
		n := copy(r.head[r.nhead:2], p)
		r.nhead += n
		p = p[n:]
		if r.nhead < 2 {
			return p
		}
		if code := r.checkStart(); code != 0 {
			r.stop(h, code)
			return nil
		}
	}
	need := headLen(r.head[1])
	n := copy(r.head[r.nhead:need], p)
	r.nhead += n
	p = p[n:]
	if r.nhead < need {
		return p
	}
	b0, b1 := r.head[0], r.head[1]
	r.op, r.fin = b0&0x0f, b0&0x80 != 0
	var size uint64
	switch b1 & 0x7f {
	case 126:
		size = uint64(binary.BigEndian.Uint16(r.head[2:4]))
	case 127:
		size = binary.BigEndian.Uint64(r.head[2:10])
	default:
		size = uint64(b1 & 0x7f)
	}
	copy(r.mask[:], r.head[need-4:need])
	r.nhead, r.maskAt, r.left, r.inPayload = 0, 0, size, true
	if r.op < OpClose {
		if size > uint64(r.Limit) || uint64(len(r.msg))+size > uint64(r.Limit) {
			r.stop(h, closeTooBig)
			return nil
		}
		if r.op != opContinuation {
			r.msgOp = r.op
		}
	}
	if size == 0 {
		r.endFrame(h)
	}
	return p
}

// checkStart validates the first two header bytes and returns the close
// code a violation calls for, or 0.
func (r *Reader) checkStart() int {
	b0, b1 := r.head[0], r.head[1]
	op := b0 & 0x0f
	switch {
	case b0&0x70 != 0: // RSV bits: no extension is ever negotiated
		return closeProtocolError
	case b1&0x80 == 0: // clients must mask
		return closeProtocolError
	case op >= OpClose:
		if op > OpPong || b0&0x80 == 0 || b1&0x7f > 125 {
			return closeProtocolError
		}
	case op == opContinuation:
		if r.msgOp == 0 {
			return closeProtocolError
		}
	case op == OpText || op == OpBinary:
		if r.msgOp != 0 {
			return closeProtocolError
		}
	default:
		return closeProtocolError
	}
	return 0
}

// headLen is the header's length given its second byte (always masked).
func headLen(b1 byte) int {
	switch b1 & 0x7f {
	case 126:
		return 2 + 2 + 4
	case 127:
		return 2 + 8 + 4
	}
	return 2 + 4
}

// endFrame acts on a frame whose payload is complete.
func (r *Reader) endFrame(h Handler) {
	r.inPayload = false
	switch r.op {
	case OpPing:
		h.GotPing(r.ctl)
	case OpPong:
		h.GotPong()
	case OpClose:
		code, ok := closeCode(r.ctl)
		if !ok {
			r.stop(h, closeProtocolError)
		} else if !utf8.Valid(r.ctl[min(2, len(r.ctl)):]) {
			r.stop(h, closeInvalidData)
		} else {
			r.stop(h, code)
		}
	default:
		if !r.fin {
			return
		}
		op, data := r.msgOp, r.msg
		r.msgOp, r.msg = 0, nil // an idle client holds no message buffer
		if op == OpText && !utf8.Valid(data) {
			r.stop(h, closeInvalidData)
			return
		}
		if !h.GotMessage(op, data) {
			r.done = true
		}
	}
	r.ctl = nil
}

// closeCode reads a close frame's status code as ws, the WebSocket library
// of Mastodon's Node.js server, accepts it: none, or one of the codes RFC
// 6455 and its registry allow on the wire.
func closeCode(p []byte) (int, bool) {
	switch len(p) {
	case 0:
		return CloseNoStatus, true
	case 1:
		return 0, false
	}
	c := int(binary.BigEndian.Uint16(p))
	ok := c >= 1000 && c <= 1014 && c != 1004 && c != 1005 && c != 1006 || c >= 3000 && c <= 4999
	return c, ok
}

// stop ends reading with code and lets go of the buffers.
func (r *Reader) stop(h Handler, code int) {
	r.done = true
	r.msg, r.ctl = nil, nil
	h.GotClose(code)
}
