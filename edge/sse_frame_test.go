package edge

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http/httputil"
	"testing"
	"time"
)

// feedDechunker feeds b to a dechunker in writes of at most step bytes.
func feedDechunker(b []byte, step int) (body []byte, ended bool, err error) {
	var d dechunker
	var out bytes.Buffer
	for len(b) > 0 {
		n := min(step, len(b))
		if err := d.write(b[:n], &out); err != nil {
			return out.Bytes(), false, err
		}
		b = b[n:]
	}
	return out.Bytes(), d.ended(), nil
}

func TestDechunker(t *testing.T) {
	ev := decodeEvent(statusFixture(t), time.Now())
	whole := ev.sseFrame(nil)
	parts := ev.sseFrame([]byte(`[{"filter":{"id":"1"}}]`))
	tests := []struct {
		name, in, want string
		ended          bool
		err            bool
	}{
		{"opening", string(sseOpen), ":)\n", false, false},
		{"heartbeat then the end", string(sseThump) + string(sseTerminator), ":thump\n\n", true, false},
		{"event", string(whole.head) + string(whole.body) + string(whole.tail), "event: update\ndata: " + string(ev.payloadText) + "\n\n", false, false},
		{"event in parts", string(parts.head) + string(parts.body) + string(parts.tail),
			"event: update\ndata: " + string(ev.payloadText[:len(ev.payloadText)-1]) + `,"filtered":[{"filter":{"id":"1"}}]}` + "\n\n", false, false},
		{"upper-case size", "A\r\n0123456789\r\n", "0123456789", false, false},
		{"partial chunk", "5\r\nabc", "abc", false, false},
		{"no size", "\r\nabc\r\n", "", false, true},
		{"extension", "3;x=y\r\nabc\r\n", "", false, true},
		{"bare LF", "3\nabc\r\n", "", false, true},
		{"data too long", "3\r\nabcd\r\n", "abc", false, true},
		{"trailer", "0\r\nX-A: b\r\n\r\n", "", false, true},
		{"bytes after the end", "0\r\n\r\n1\r\nx\r\n", "", true, true},
		{"size too large", "10000000\r\n", "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, step := range []int{1, 2, 7, len(tc.in)} {
				body, ended, err := feedDechunker([]byte(tc.in), step)
				if tc.err {
					if !errors.Is(err, errBadChunk) {
						t.Fatalf("step %d: %v, want errBadChunk", step, err)
					}
					continue
				}
				if err != nil || string(body) != tc.want || ended != tc.ended {
					t.Fatalf("step %d: got %q, ended %t, %v; want %q, ended %t", step, body, ended, err, tc.want, tc.ended)
				}
			}
		})
	}
}

// FuzzDechunker checks the decoder against net/http's chunked reader: what
// it accepts, split anywhere, decodes to the same bytes, and it accepts
// every encoding of any chunks.
func FuzzDechunker(f *testing.F) {
	f.Add([]byte(sseOpen), 3)
	f.Add(append(append([]byte{}, sseThump...), sseTerminator...), 1)
	f.Add([]byte("3;ext\r\nabc\r\n"), 2)
	f.Add([]byte("0\r\nTrailer: x\r\n\r\n"), 4)
	f.Fuzz(func(t *testing.T, in []byte, step int) {
		step = max(1, step%64+1)
		body, ended, err := feedDechunker(in, step)
		if whole, wholeEnded, wholeErr := feedDechunker(in, len(in)+1); !bytes.Equal(whole, body) || wholeEnded != ended || (wholeErr == nil) != (err == nil) {
			t.Fatalf("split every %d bytes: %q %t %v; whole: %q %t %v", step, body, ended, err, whole, wholeEnded, wholeErr)
		}
		if err == nil {
			want, rerr := io.ReadAll(httputil.NewChunkedReader(bufio.NewReader(bytes.NewReader(in))))
			if ended && (rerr != nil || !bytes.Equal(want, body)) {
				t.Fatalf("decoded %q, net/http's reader %q %v", body, want, rerr)
			}
			if !ended && !bytes.HasPrefix(want, body) && !bytes.HasPrefix(body, want) {
				t.Fatalf("decoded %q, net/http's reader %q %v", body, want, rerr)
			}
		}
		// Re-encoding the bytes as chunks of the fuzzed size decodes to
		// them exactly.
		var enc []byte
		for p := in; len(p) > 0; {
			n := min(step, len(p))
			enc = appendChunk(enc, p[:n])
			p = p[n:]
		}
		enc = append(enc, sseTerminator...)
		got, gotEnded, err := feedDechunker(enc, step)
		if err != nil || !gotEnded || !bytes.Equal(got, in) {
			t.Fatalf("encoded %q: decoded %q, ended %t, %v", in, got, gotEnded, err)
		}
	})
}
