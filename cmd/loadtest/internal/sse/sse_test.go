package sse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type rec struct {
	kind    Kind
	name    string
	data    string
	comment string
}

func parseAll(t testing.TB, r io.Reader, maxLine int) ([]rec, error) {
	t.Helper()
	p := NewParser(r, 16, maxLine)
	var out []rec
	for {
		it, err := p.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, rec{it.Kind, string(it.Name), string(it.Data), string(it.Comment)})
	}
}

const mastodonCapture = ":)\n" +
	"event: update\n" +
	`data: {"id":"111","content":"<p>Hello from bob</p>","language":"en"}` + "\n\n" +
	"event: delete\n" +
	"data: 111\n\n" +
	"event: notification\n" +
	`data: {"id":"9","type":"mention"}` + "\n\n" +
	":thump\n\n"

func TestParser(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		maxLine int
		want    []rec
		wantErr error
	}{
		{
			name: "mastodon capture",
			in:   mastodonCapture,
			want: []rec{
				{kind: KindComment, comment: ")"},
				{kind: KindEvent, name: "update", data: `{"id":"111","content":"<p>Hello from bob</p>","language":"en"}`},
				{kind: KindEvent, name: "delete", data: "111"},
				{kind: KindEvent, name: "notification", data: `{"id":"9","type":"mention"}`},
				{kind: KindComment, comment: "thump"},
			},
		},
		{
			name: "crlf and lone cr",
			in:   ":)\r\nevent: a\r\ndata: 1\r\n\r\nevent:b\rdata:2\r\r",
			want: []rec{
				{kind: KindComment, comment: ")"},
				{kind: KindEvent, name: "a", data: "1"},
				{kind: KindEvent, name: "b", data: "2"},
			},
		},
		{
			name: "multi-line data, default name, ignored fields",
			in:   "id: 5\nretry: 10\ndata: a\ndata\ndata:  b\nfoo: x\n\n",
			want: []rec{{kind: KindEvent, name: "message", data: "a\n\n b"}},
		},
		{
			name: "event without data is not dispatched",
			in:   "event: x\n\nevent: y\ndata: z\n\n",
			want: []rec{{kind: KindEvent, name: "y", data: "z"}},
		},
		{
			name: "unterminated event dropped",
			in:   "event: update\ndata: 1\n",
			want: nil,
		},
		{
			name:    "line too long",
			in:      "data: " + strings.Repeat("x", 100) + "\n\n",
			maxLine: 64,
			wantErr: ErrLineTooLong,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte per read exercises every split boundary.
			got, err := parseAll(t, iotest.OneByteReader(strings.NewReader(tt.in)), tt.maxLine)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v want %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d items %+v want %d %+v", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("item %d: got %+v want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader(":)\n"), iotest.ErrReader(boom))
	got, err := parseAll(t, r, 0)
	if !errors.Is(err, boom) || len(got) != 1 {
		t.Fatalf("got %v, %v", got, err)
	}
}

func FuzzParser(f *testing.F) {
	f.Add([]byte(mastodonCapture))
	f.Add([]byte(":)\r\nevent: a\r\ndata: 1\r\n\r\nevent:b\rdata:2\r\r"))
	f.Add([]byte("data\n\ndata:\n\n:\n\r\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		whole, err1 := parseAll(t, bytes.NewReader(in), 256)
		split, err2 := parseAll(t, iotest.OneByteReader(bytes.NewReader(in)), 256)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("errors differ: %v vs %v", err1, err2)
		}
		if err1 != nil {
			return
		}
		if len(whole) != len(split) {
			t.Fatalf("item counts differ: %d vs %d", len(whole), len(split))
		}
		for i := range whole {
			if whole[i] != split[i] {
				t.Fatalf("item %d differs: %+v vs %+v", i, whole[i], split[i])
			}
			if whole[i].kind == KindEvent && strings.ContainsAny(whole[i].name, "\r\n") {
				t.Fatalf("name contains a line break: %q", whole[i].name)
			}
		}
	})
}

func BenchmarkParser(b *testing.B) {
	ev := "event: update\ndata: " + strings.Repeat("x", 3000) + "\n\n"
	stream := []byte(":)\n" + strings.Repeat(ev, 100))
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		p := NewParser(bytes.NewReader(stream), 4096, 0)
		for {
			if _, err := p.Next(); err != nil {
				break
			}
		}
	}
}
