package wsframe

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func TestFrame(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string // hex
	}{
		{"text", Frame(OpText, []byte("hi")), "81026869"},
		{"empty ping", Frame(OpPing, nil), "8900"},
		{"pong echoes", Frame(OpPong, []byte{7}), "8a0107"},
		{"close without code", Frame(OpClose, nil), "8800"},
		{"close going away", Close(CloseGoingAway, ""), "880203e9"},
		{"close with reason", Close(CloseUnsupportedData, "no"), "880403eb6e6f"},
		{"binary", Frame(OpBinary, []byte{0}), "820100"},
	} {
		if got := hex.EncodeToString(tc.got); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

// The header takes the shortest length form and sits right before the
// payload; PutHeader leaves the room in front of it alone.
func TestFrameHeader(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string // hex of the header
	}{
		{0, "8100"},
		{125, "817d"},
		{126, "817e007e"},
		{65535, "817effff"},
		{65536, "817f0000000000010000"},
		{1 << 32, "817f0000000100000000"},
	} {
		room := bytes.Repeat([]byte{0xee}, HeaderRoom)
		h := PutHeader(room, OpText, tc.n)
		if got := hex.EncodeToString(room[HeaderRoom-h:]); got != tc.want {
			t.Errorf("n=%d: header %s, want %s", tc.n, got, tc.want)
		}
		for i, c := range room[:HeaderRoom-h] {
			if c != 0xee {
				t.Errorf("n=%d: byte %d in front of the header written", tc.n, i)
			}
		}
		if tc.n > 1<<16 {
			continue
		}
		fr := Frame(OpText, make([]byte, tc.n))
		if len(fr) != h+tc.n || hex.EncodeToString(fr[:h]) != tc.want {
			t.Errorf("n=%d: Frame gives %d bytes, header %x", tc.n, len(fr), fr[:h])
		}
	}
}
