package edge

import (
	"bufio"
	"bytes"
	"io"
	"net/http/httputil"
	"os"
	"testing"
	"time"

	"github.com/spillway/spillway/edge/internal/wsframe"
	"github.com/spillway/spillway/edge/jsjson"
)

// dechunk decodes HTTP chunked bytes.
func dechunk(t *testing.T, b []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(httputil.NewChunkedReader(bufio.NewReader(bytes.NewReader(b))))
	if err != nil && err != io.ErrUnexpectedEOF {
		t.Fatalf("dechunk: %v", err)
	}
	return out
}

func mustEvent(t *testing.T, msg string) *event {
	t.Helper()
	ev := decodeEvent([]byte(msg), time.Now())
	if ev == nil {
		t.Fatalf("decodeEvent(%s) = nil", msg)
	}
	return ev
}

// The user-stream exchange captured from Mastodon's server.
func TestSSEGoldenUserStream(t *testing.T) {
	msgs := []string{
		`{"event":"update","payload":{"id":"111","created_at":"2024-05-01T12:00:00.000Z","content":"\u003cp\u003eHello from bob\u003c/p\u003e","language":"en","account":{"id":"109000000000000002","username":"bob","acct":"bob"},"mentions":[],"media_attachments":[]},"queued_at":1714564800000}`,
		`{"event":"delete","payload":"111"}`,
		`{"event":"notification","payload":{"id":"9","type":"mention"}}`,
	}
	var wire []byte
	wire = append(wire, sseOpen...)
	for _, m := range msgs {
		wire = append(wire, mustEvent(t, m).sseFrame(nil).bytes()...)
	}
	wire = append(wire, sseThump...)
	want, err := os.ReadFile("testdata/sse_user.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got := dechunk(t, append(wire, sseTerminator...)); !bytes.Equal(got, want) {
		t.Fatalf("SSE bytes differ\ngot:\n%s\nwant:\n%s", got, want)
	}
}

func TestSSEFrameIsTwoChunks(t *testing.T) {
	fr := mustEvent(t, `{"event":"delete","payload":"111"}`).sseFrame(nil).bytes()
	want := "e\r\nevent: delete\n\r\nb\r\ndata: 111\n\n\r\n"
	if string(fr) != want {
		t.Fatalf("got %q, want %q", fr, want)
	}
}

// Mastodon's verified normalisation example, on both transports.
func TestPayloadNormalisation(t *testing.T) {
	ev := mustEvent(t, `{"event":"update","payload":{"b":1,"a":{"z":1.50,"big":12345678901234567890,"u":"\u00e9\u2028"}}}`)
	want, err := os.ReadFile("testdata/normalised_payload.golden")
	if err != nil {
		t.Fatal(err)
	}
	got := dechunk(t, append(ev.sseFrame(nil).bytes(), sseTerminator...))
	if wantSSE := "event: update\ndata: " + string(want) + "\n\n"; string(got) != wantSSE {
		t.Fatalf("sse: got %q, want %q", got, wantSSE)
	}
}

func TestWSFrames(t *testing.T) {
	tests := []struct {
		name, msg, label, filtered, want string
	}{
		{"object payload is a JSON string", `{"event":"notification","payload":{"id":"9","type":"mention"}}`, `["user"]`, "",
			`{"stream":["user"],"event":"notification","payload":"{\"id\":\"9\",\"type\":\"mention\"}"}`},
		{"string payload stays a string", `{"event":"delete","payload":"111"}`, `["public:local"]`, "",
			`{"stream":["public:local"],"event":"delete","payload":"111"}`},
		{"number payload stays a number", `{"event":"x","payload":5}`, `["user"]`, "",
			`{"stream":["user"],"event":"x","payload":5}`},
		{"boolean payload", `{"event":"x","payload":true}`, `["user"]`, "",
			`{"stream":["user"],"event":"x","payload":true}`},
		{"list label with numeric id", `{"event":"delete","payload":"1"}`, `["list",5001]`, "",
			`{"stream":["list",5001],"event":"delete","payload":"1"}`},
		{"filtered appended last", `{"event":"update","payload":{"id":"301"}}`, `["hashtag","Café"]`, `[]`,
			`{"stream":["hashtag","Café"],"event":"update","payload":"{\"id\":\"301\",\"filtered\":[]}"}`},
		{"lone surrogate escaped in frame", `{"event":"delete","payload":"\ud800"}`, `["user"]`, "",
			`{"stream":["user"],"event":"delete","payload":"\ud800"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var filtered []byte
			if tc.filtered != "" {
				filtered = []byte(tc.filtered)
			}
			fr := mustEvent(t, tc.msg).wsFrame(tc.label, filtered).bytes()
			if want := wsframe.Frame(wsframe.OpText, []byte(tc.want)); !bytes.Equal(fr, want) {
				t.Fatalf("got %q\nwant %q", fr, want)
			}
		})
	}
}

func TestSSELoneSurrogateBecomesReplacement(t *testing.T) {
	got := dechunk(t, append(mustEvent(t, `{"event":"delete","payload":"a\ud800b"}`).sseFrame(nil).bytes(), sseTerminator...))
	if want := "event: delete\ndata: a\uFFFDb\n\n"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestDecodeEventDrops(t *testing.T) {
	for _, msg := range []string{
		``, `not json`, `[1,2]`, `"str"`, `5`, `null`,
		`{"event":"update"}`, `{"event":"update","payload":null}`, `{"event":"update","payload":""}`,
		`{"event":"update","payload":0}`, `{"event":"update","payload":false}`, `{"payload":{"a":1}}`,
		`{"event":"","payload":{"a":1}}`, `{"event":"filters_changed"}`,
	} {
		if ev := decodeEvent([]byte(msg), time.Now()); ev != nil {
			t.Errorf("decodeEvent(%q) delivered; Mastodon drops it", msg)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"event":"update","payload":{"id":"1","account":{"id":"2"}}}`))
	f.Add([]byte(`{"event":"delete","payload":"1"}`))
	f.Add([]byte(`{"event":5,"payload":[1,"\ud800"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, tree := decodeEvent(data, time.Now()), decodeEventTree(data, time.Now())
		if (ev == nil) != (tree == nil) {
			t.Fatalf("fast decode nil=%v, tree decode nil=%v for %q", ev == nil, tree == nil, data)
		}
		if ev == nil {
			return
		}
		if !bytes.Equal(tree.payloadJSON, ev.payloadJSON) || !bytes.Equal(tree.payloadText, ev.payloadText) ||
			!bytes.Equal(ev.sseFrame(nil).bytes(), tree.sseFrame(nil).bytes()) || !bytes.Equal(ev.wsFrame(`["user"]`, nil).bytes(), tree.wsFrame(`["user"]`, nil).bytes()) {
			t.Fatalf("fast and tree decodes differ for %q", data)
		}
		ev.wsFrame(`["public"]`, []byte("[]"))
		statusOf(ev.payload())
	})
}

// The spliced "filtered" variants must equal a full re-serialisation of
// {...payload, filtered} on both transports.
func FuzzFilteredSplice(f *testing.F) {
	f.Add([]byte(`{"id":"1","content":"<p>é \u2028</p>"}`), []byte(`[]`))
	f.Add([]byte(`{}`), []byte(`[{"filter":{"id":"1"},"keyword_matches":["a\"b"],"status_matches":null}]`))
	f.Add([]byte(`{"a":"\ud800"}`), []byte(`[]`))
	f.Fuzz(func(t *testing.T, payload, filtered []byte) {
		ev := decodeEvent(append(append([]byte(`{"event":"update","payload":`), payload...), '}'), time.Now())
		if ev == nil || ev.kind != jsjson.Object || ev.payload().Has("filtered") {
			return
		}
		fv, err := jsjson.Parse(filtered)
		if err != nil {
			return
		}
		canon := fv.AppendJSON(nil)
		want := ev.payload().AppendJSONWithMember(nil, "filtered", func(dst []byte) []byte { return append(dst, canon...) })
		if got := ev.withFiltered(canon); !bytes.Equal(got, want) {
			t.Fatalf("sse splice %q, want %q", got, want)
		}
		sse := append(ev.sseFrame(canon).bytes(), sseTerminator...)
		if got, wantSSE := dechunk(t, sse), "event: update\ndata: "+string(want)+"\n\n"; string(got) != wantSSE {
			t.Fatalf("sse frame %q, want %q", got, wantSSE)
		}
		msg := append([]byte(`{"stream":["public"],"event":"update","payload":`), jsjson.AppendString(nil, string(want))...)
		msg = append(msg, '}')
		if got := ev.wsFrame(`["public"]`, canon).bytes(); !bytes.Equal(got, wsframe.Frame(wsframe.OpText, msg)) {
			t.Fatalf("ws splice %q, want %q", got, msg)
		}
	})
}

// bytes returns the frame as one slice.
func (f frame) bytes() []byte {
	return append(append(append([]byte(nil), f.head...), f.body...), f.tail...)
}

// withFiltered is the SSE data text with filtered spliced in.
func (e *event) withFiltered(filtered []byte) []byte { return e.appendData(nil, filtered) }
