package jsjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParse(f *testing.F) {
	if status, err := os.ReadFile("testdata/status.json"); err == nil {
		f.Add(status)
	}
	for _, s := range []string{
		`{"event":"update","payload":{"id":"1","account":{"id":"2","username":"a","acct":"a"},"mentions":[]}}`,
		`{"event":"delete","payload":"111"}`,
		`{"event":"notification","payload":{"id":"9","type":"mention"},"queued_at":1714564800000}`,
		`{"type":"subscribe","stream":["hashtag"],"tag":"Café"}`,
		`{"type":"subscribe","stream":"list","list":5}`,
		`{"b":1,"a":{"z":1.50,"big":12345678901234567890,"u":"\u00e9\u2028"}}`,
		`{"a":1,"a":2,"2":0,"1":0,"01":0,"4294967295":0}`,
		`["\uD800","\uD83D\uDE00","\uDE00\uD83D","\u003c\/"]`,
		"[1e400,-0,5e-324,1e21,1e-7,0.1,123e-20]",
		"\"\xe2\x82A\xff\xed\xa0\x80\"",
		` [ true , false , null ] `,
		`[1,]`, `01`, `"\u12"`, `{"a" 1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data)
		// encoding/json has the same grammar and tolerates invalid UTF-8
		// inside strings, where Parse substitutes U+FFFD, so acceptance must
		// agree except for the stricter depth bound.
		valid := json.Valid(data)
		if err != nil {
			if errors.Is(err, ErrTooDeep) {
				return
			}
			if valid {
				t.Fatalf("Parse rejects %q (%v), encoding/json accepts", data, err)
			}
			return
		}
		if !valid {
			t.Fatalf("Parse accepts %q, encoding/json rejects", data)
		}
		out := v.AppendJSON(nil)
		if !utf8.Valid(out) || !json.Valid(out) {
			t.Fatalf("output %q not valid UTF-8 JSON", out)
		}
		v2, err := Parse(out)
		if err != nil {
			t.Fatalf("reparse %q: %v", out, err)
		}
		if out2 := v2.AppendJSON(nil); !bytes.Equal(out, out2) {
			t.Fatalf("not idempotent:\n%q\n%q", out, out2)
		}
		if v.Kind() == Object || v.Kind() == Array {
			if text := v.AppendText(nil); !bytes.Equal(text, out) {
				t.Fatalf("AppendText %q != AppendJSON %q", text, out)
			}
		} else if text := v.AppendText(nil); !utf8.Valid(text) {
			t.Fatalf("AppendText %q not valid UTF-8", text)
		}
		withMember := v.AppendJSONWithMember(nil, "filtered", func(dst []byte) []byte { return append(dst, "[]"...) })
		if !json.Valid(withMember) {
			t.Fatalf("AppendJSONWithMember %q invalid", withMember)
		}
	})
}

// On valid UTF-8 without U+2028/U+2029 (which encoding/json escapes and
// JSON.stringify does not), AppendString agrees with encoding/json.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain ascii text long enough for words", "a\"b\\c\x00\x1f\x7f", "héllo <p>wörld</p>\n\t", "\xed\xa0\x80", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := AppendString(nil, s)
		if !utf8.ValidString(s) {
			if !utf8.Valid(got) {
				t.Fatalf("AppendString(%q) = %q, not UTF-8", s, got)
			}
			return
		}
		if strings.ContainsAny(s, "\u2028\u2029") {
			return
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if w := bytes.TrimSuffix(want.Bytes(), []byte("\n")); !bytes.Equal(got, w) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, w)
		}
	})
}
