package wsframe

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// clientFrame builds a masked client frame.
func clientFrame(b0 byte, payload []byte) []byte {
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	out = append(out, mask[:]...)
	for i, c := range payload {
		out = append(out, c^mask[i%4])
	}
	return out
}

// recorder is a Handler that writes down what it gets.
type recorder struct {
	got      []string
	stopAt   int // GotMessage declines the message with this index (1-based)
	messages int
}

func (r *recorder) GotMessage(op byte, data []byte) bool {
	r.messages++
	r.got = append(r.got, fmt.Sprintf("msg %d %q", op, data))
	return r.messages != r.stopAt
}
func (r *recorder) GotPing(data []byte) { r.got = append(r.got, fmt.Sprintf("ping %q", data)) }
func (r *recorder) GotPong()            { r.got = append(r.got, "pong") }
func (r *recorder) GotClose(code int)   { r.got = append(r.got, fmt.Sprintf("close %d", code)) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestReader(t *testing.T) {
	const (
		fin  = 0x80
		text = fin | OpText
	)
	closeWith := func(code int, reason string) []byte {
		return clientFrame(fin|OpClose, append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...))
	}
	unmasked := []byte{text, 2, 'h', 'i'}
	for _, tc := range []struct {
		name  string
		in    []byte
		limit int64
		want  string
		open  bool // reading goes on afterwards
	}{
		{name: "text", in: clientFrame(text, []byte(`{"type":"subscribe"}`)), want: `msg 1 "{\"type\":\"subscribe\"}"`, open: true},
		{name: "empty text", in: clientFrame(text, nil), want: `msg 1 ""`, open: true},
		{name: "two messages", in: cat(clientFrame(text, []byte("a")), clientFrame(text, []byte("b"))), want: `msg 1 "a"|msg 1 "b"`, open: true},
		{name: "16-bit length", in: clientFrame(text, bytes.Repeat([]byte("x"), 300)), want: `msg 1 "` + strings.Repeat("x", 300) + `"`, open: true},
		{name: "64-bit length", in: clientFrame(text, bytes.Repeat([]byte("y"), 70000)), limit: 1 << 20, want: `msg 1 "` + strings.Repeat("y", 70000) + `"`, open: true},
		{name: "binary", in: clientFrame(fin|OpBinary, []byte{1, 2}), want: `msg 2 "\x01\x02"`, open: true},
		{
			name: "fragments with a ping between",
			in:   cat(clientFrame(OpText, []byte("he")), clientFrame(fin|OpPing, []byte("p")), clientFrame(opContinuation, []byte("ll")), clientFrame(fin|opContinuation, []byte("o"))),
			want: `ping "p"|msg 1 "hello"`, open: true,
		},
		{name: "pong", in: clientFrame(fin|OpPong, []byte("whatever")), want: "pong", open: true},
		{name: "close without code", in: clientFrame(fin|OpClose, nil), want: "close 1005"},
		{name: "close echoed", in: closeWith(4000, "bye"), want: "close 4000"},
		{name: "nothing after close", in: cat(closeWith(1000, ""), clientFrame(text, []byte("late"))), want: "close 1000"},
		{name: "close with one byte", in: clientFrame(fin|OpClose, []byte{3}), want: "close 1002"},
		{name: "close with reserved code", in: closeWith(1005, ""), want: "close 1002"},
		{name: "close with out-of-range code", in: closeWith(5000, ""), want: "close 1002"},
		{name: "close reason not UTF-8", in: closeWith(1000, "\xff"), want: "close 1007"},
		{name: "text not UTF-8", in: clientFrame(text, []byte("a\xffb")), want: "close 1007"},
		{name: "UTF-8 split across fragments", in: cat(clientFrame(OpText, []byte("caf\xc3")), clientFrame(fin|opContinuation, []byte("\xa9"))), want: `msg 1 "café"`, open: true},
		{name: "unmasked", in: unmasked, want: "close 1002"},
		{name: "RSV1", in: clientFrame(0x40|text, []byte("x")), want: "close 1002"},
		{name: "reserved opcode", in: clientFrame(fin|0x3, []byte("x")), want: "close 1002"},
		{name: "reserved control opcode", in: clientFrame(fin|0xB, nil), want: "close 1002"},
		{name: "fragmented control", in: clientFrame(OpPing, nil), want: "close 1002"},
		{name: "long control", in: clientFrame(fin|OpPing, bytes.Repeat([]byte("p"), 126)), want: "close 1002"},
		{name: "continuation first", in: clientFrame(fin|opContinuation, []byte("x")), want: "close 1002"},
		{name: "new message inside another", in: cat(clientFrame(OpText, []byte("a")), clientFrame(text, []byte("b"))), want: "close 1002"},
		{name: "too big", in: clientFrame(text, bytes.Repeat([]byte("z"), 65)), limit: 64, want: "close 1009"},
		{name: "too big across fragments", in: cat(clientFrame(OpText, bytes.Repeat([]byte("z"), 40)), clientFrame(fin|opContinuation, bytes.Repeat([]byte("z"), 40))), limit: 64, want: "close 1009"},
		{name: "huge declared length", in: []byte{text, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, want: "close 1009"},
		{name: "partial frame waits", in: clientFrame(text, []byte("hello"))[:5], want: "", open: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := tc.limit
			if limit == 0 {
				limit = 64 << 10
			}
			// Whole, then one byte at a time: the outcome must not depend
			// on how the bytes arrive.
			for _, step := range []int{len(tc.in), 1, 7} {
				r := &Reader{Limit: limit}
				h := &recorder{}
				in := bytes.Clone(tc.in)
				open := true
				for len(in) > 0 && open {
					n := min(step, len(in))
					open = r.Feed(in[:n], h)
					in = in[n:]
				}
				if got := strings.Join(h.got, "|"); got != tc.want || open != tc.open {
					t.Fatalf("step %d: got %s (open %v), want %s (open %v)", step, got, open, tc.want, tc.open)
				}
			}
		})
	}
}

// The handler can stop reading: nothing after the declined message is
// decoded.
func TestWSReaderHandlerStops(t *testing.T) {
	r := &Reader{Limit: 1024}
	h := &recorder{stopAt: 1}
	if r.Feed(cat(clientFrame(0x81, []byte("a")), clientFrame(0x81, []byte("b"))), h) {
		t.Fatal("still reading")
	}
	if got := strings.Join(h.got, "|"); got != `msg 1 "a"` {
		t.Fatalf("got %s", got)
	}
}

// An idle reader holds no message buffer once a message is delivered.
func TestWSReaderReleasesBuffers(t *testing.T) {
	r := &Reader{Limit: 1024}
	r.Feed(cat(clientFrame(0x01, []byte("ab")), clientFrame(0x89, []byte("p")), clientFrame(0x80, []byte("c"))), &recorder{})
	if r.msg != nil || r.ctl != nil {
		t.Fatalf("buffers kept: msg %d, ctl %d bytes of capacity", cap(r.msg), cap(r.ctl))
	}
}

func FuzzReader(f *testing.F) {
	f.Add(clientFrame(0x81, []byte(`{"type":"subscribe","stream":"public"}`)), uint8(3))
	f.Add(cat(clientFrame(0x01, []byte("he")), clientFrame(0x89, nil), clientFrame(0x80, []byte("llo"))), uint8(1))
	f.Add(clientFrame(0x88, []byte{0x03, 0xe8, 'o', 'k'}), uint8(0))
	f.Add([]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		const limit = 256
		whole := &recorder{}
		rw := &Reader{Limit: limit}
		openWhole := rw.Feed(bytes.Clone(in), whole)

		split := &recorder{}
		rs := &Reader{Limit: limit}
		open, rest := true, bytes.Clone(in)
		n := int(step%16) + 1
		for len(rest) > 0 && open {
			k := min(n, len(rest))
			open = rs.Feed(rest[:k], split)
			rest = rest[k:]
		}
		if a, b := strings.Join(whole.got, "|"), strings.Join(split.got, "|"); a != b || open != openWhole {
			t.Fatalf("whole: %s (open %v)\nsplit by %d: %s (open %v)", a, openWhole, n, b, open)
		}
		if len(rw.msg) > limit || len(rw.ctl) > 125 {
			t.Fatalf("buffered %d message and %d control bytes", len(rw.msg), len(rw.ctl))
		}
	})
}

// BenchmarkReader is the cost of decoding what a client typically sends:
// masked subscribe messages and pongs, fed as they would arrive.
func BenchmarkReader(b *testing.B) {
	in := cat(
		clientFrame(0x81, []byte(`{"type":"subscribe","stream":"hashtag","tag":"caf\u00e9"}`)),
		clientFrame(0x8A, nil),
		clientFrame(0x81, []byte(`{"type":"unsubscribe","stream":"public:local"}`)),
	)
	buf := make([]byte, len(in))
	var h countingHandler
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		r := Reader{Limit: 1 << 20}
		copy(buf, in)
		r.Feed(buf, &h)
	}
	if h.n == 0 {
		b.Fatal("nothing decoded")
	}
}

// countingHandler is a Handler that only counts what it gets.
type countingHandler struct{ n int }

func (h *countingHandler) GotMessage(_ byte, data []byte) bool { h.n += len(data); return true }
func (h *countingHandler) GotPing([]byte)                      {}
func (h *countingHandler) GotPong()                            { h.n++ }
func (h *countingHandler) GotClose(int)                        {}
