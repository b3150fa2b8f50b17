package payload

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// ssePayload returns the status object as an SSE data line would carry it.
func ssePayload(t testing.TB, msg []byte) []byte {
	t.Helper()
	var env struct {
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(msg, &env); err != nil {
		t.Fatalf("message is not JSON: %v", err)
	}
	if env.Event != "update" {
		t.Fatalf("event %q", env.Event)
	}
	return env.Payload
}

// wsFrame wraps a status payload the way Mastodon's WebSocket transport does.
func wsFrame(t testing.TB, status []byte) []byte {
	t.Helper()
	frame, err := json.Marshal(map[string]any{
		"stream": []string{"public"}, "event": "update", "payload": string(status),
	})
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

func TestGeneratorShape(t *testing.T) {
	if m := MinSize(DefaultAuthor()); m < 2048 || m > 4096 {
		t.Errorf("minimum message size %d is outside 2-4 KB", m)
	}
	for _, size := range []int{0, 2048, 3000, 4096} {
		g := NewGenerator(DefaultAuthor(), size)
		msg := g.Append(nil, 42, 1_732_680_000_123_456_789, false)
		if size > MinSize(DefaultAuthor()) && (len(msg) < size-40 || len(msg) > size+40) {
			t.Errorf("size %d: got %d bytes", size, len(msg))
		}
		status := ssePayload(t, msg)
		var st struct {
			ID       string `json:"id"`
			Language string `json:"language"`
			Content  string `json:"content"`
			Account  struct {
				ID, Username, Acct, DisplayName, Note, Avatar, Header string
				FollowersCount                                        int `json:"followers_count"`
				Emojis                                                []any
				Fields                                                []any
			} `json:"account"`
			Mentions         []struct{ ID string }          `json:"mentions"`
			MediaAttachments []struct{ Description string } `json:"media_attachments"`
			Tags             []struct{ Name string }        `json:"tags"`
		}
		if err := json.Unmarshal(status, &st); err != nil {
			t.Fatal(err)
		}
		a := st.Account
		if st.ID != "42" || st.Language != "en" || a.Username != a.Acct || a.ID == "" ||
			a.Note == "" || a.Avatar == "" || a.Header == "" || a.FollowersCount == 0 ||
			len(a.Emojis) == 0 || len(a.Fields) == 0 || len(st.Mentions) == 0 ||
			len(st.MediaAttachments) == 0 || st.MediaAttachments[0].Description == "" ||
			len(st.Tags) == 0 || !strings.Contains(st.Content, "<p>") {
			t.Fatalf("incomplete status: %+v", st)
		}
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	g := NewGenerator(DefaultAuthor(), 3000)
	tests := []struct {
		name   string
		seq    uint64
		sentNS int64
		probe  bool
	}{
		{"first", 1, 1, false},
		{"probe", 7, 1_732_680_000_123_456_789, true},
		{"max", 1<<64 - 1, 1<<63 - 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := g.Append(nil, tt.seq, tt.sentNS, tt.probe)
			status := ssePayload(t, msg)
			// A re-serialising server may reorder keys and escape HTML.
			var m map[string]any
			if err := json.Unmarshal(status, &m); err != nil {
				t.Fatal(err)
			}
			m["filtered"] = []any{}
			reserialised, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			indented, err := json.MarshalIndent(m, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			want := Info{Seq: tt.seq, SentNS: tt.sentNS, Probe: tt.probe}
			for name, in := range map[string][]byte{
				"sse": status, "sse reserialised": reserialised, "indented": indented,
				"ws": wsFrame(t, status), "ws reserialised": wsFrame(t, reserialised),
			} {
				got, ok := Decode(in)
				if !ok || got != want {
					t.Errorf("%s: got %+v, %v want %+v", name, got, ok, want)
				}
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Info
		ok   bool
	}{
		{"empty", ``, Info{}, false},
		{"no markers", `{"id":"1"}`, Info{}, false},
		{"seq only", `{"spillway_seq":"1"}`, Info{}, false},
		{"numeric not string", `{"spillway_seq":1,"spillway_sent_ns":2}`, Info{}, false},
		{"empty value", `{"spillway_seq":"","spillway_sent_ns":"2"}`, Info{}, false},
		{"overflow seq", `{"spillway_seq":"18446744073709551616","spillway_sent_ns":"2"}`, Info{}, false},
		{"sent beyond int64", `{"spillway_seq":"1","spillway_sent_ns":"9223372036854775808"}`, Info{}, false},
		{"unterminated", `{"spillway_seq":"1`, Info{}, false},
		{"not a key", `{"xspillway_seq":"1","spillway_sent_ns":"2"}`, Info{}, false},
		{"text mention then key", `{"c":"spillway_seq is", "spillway_seq" : "5","spillway_sent_ns":"6"}`, Info{Seq: 5, SentNS: 6}, true},
		{"probe", `{"spillway_sent_ns":"4","spillway_seq":"P3"}`, Info{Seq: 3, SentNS: 4, Probe: true}, true},
		{"probe prefix only on seq", `{"spillway_seq":"3","spillway_sent_ns":"P4"}`, Info{}, false},
		{"bare probe prefix", `{"spillway_seq":"P","spillway_sent_ns":"4"}`, Info{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Decode([]byte(tt.in))
			if ok != tt.ok || got != tt.want {
				t.Fatalf("got %+v, %v want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseFrame(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Frame
		ok   bool
	}{
		{"event", `{"stream":["public"],"event":"update","payload":"{\"id\":\"1\",\"event\":\"x\"}"}`, Frame{Event: []byte("update")}, true},
		{"delete", `{"stream":["hashtag","Café"],"event":"delete","payload":"111"}`, Frame{Event: []byte("delete")}, true},
		{"subscribe error", `{"error":"Access token does not have the required scopes","status":401}`, Frame{IsError: true, ErrMsg: "Access token does not have the required scopes", Status: 401}, true},
		{"unsubscribe error", `{"error":"Error unsubscribing from channel"}`, Frame{IsError: true, ErrMsg: "Error unsubscribing from channel"}, true},
		{"garbage", `hello`, Frame{}, false},
		{"error not json", `{"error": nope`, Frame{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseFrame([]byte(tt.in))
			if ok != tt.ok || !bytes.Equal(got.Event, tt.want.Event) || got.IsError != tt.want.IsError ||
				got.ErrMsg != tt.want.ErrMsg || got.Status != tt.want.Status {
				t.Fatalf("got %+v, %v want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	g := NewGenerator(DefaultAuthor(), 0)
	msg := g.Append(nil, 12, 1_732_680_000_123_456_789, true)
	f.Add(msg, uint64(5), int64(99), false)
	f.Add([]byte(`{"spillway_seq":"1","spillway_sent_ns":"2"}`), uint64(1<<63), int64(1<<62), true)
	f.Add([]byte(`{"stream":["public"],"event":"update","payload":"{\"spillway_seq\":\"1\",\"spillway_sent_ns\":\"2\"}"}`), uint64(0), int64(0), false)
	f.Fuzz(func(t *testing.T, in []byte, seq uint64, sent int64, probe bool) {
		// Arbitrary input: no panic, and a frame outline never panics either.
		_, _ = Decode(in)
		_, _ = ParseFrame(in)
		if sent < 0 {
			sent = -sent
			if sent < 0 {
				sent = 0
			}
		}
		// Generated messages always round-trip, in both transport forms.
		m := g.Append(nil, seq, sent, probe)
		want := Info{Seq: seq, SentNS: sent, Probe: probe}
		status := ssePayload(t, m)
		if got, ok := Decode(status); !ok || got != want {
			t.Fatalf("sse: got %+v, %v want %+v", got, ok, want)
		}
		frame := wsFrame(t, status)
		if got, ok := Decode(frame); !ok || got != want {
			t.Fatalf("ws: got %+v, %v want %+v", got, ok, want)
		}
		if fr, ok := ParseFrame(frame); !ok || string(fr.Event) != "update" {
			t.Fatalf("frame: %+v %v", fr, ok)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	g := NewGenerator(DefaultAuthor(), 3000)
	status := ssePayload(b, g.Append(nil, 123456, 1_732_680_000_123_456_789, false))
	frame := wsFrame(b, status)
	b.Run("sse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := Decode(status); !ok {
				b.Fatal("decode")
			}
		}
	})
	b.Run("ws", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := ParseFrame(frame); !ok {
				b.Fatal("frame")
			}
			if _, ok := Decode(frame); !ok {
				b.Fatal("decode")
			}
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	g := NewGenerator(DefaultAuthor(), 3000)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for i := range b.N {
		buf = g.Append(buf[:0], uint64(i), 1_732_680_000_123_456_789, false)
	}
}
