package jsjson

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// parseStringify returns JSON.stringify(JSON.parse(in)) through the tree.
func parseStringify(in []byte) ([]byte, bool) {
	v, err := Parse(in)
	if err != nil {
		return nil, false
	}
	return v.AppendJSON(nil), true
}

// checkCanonical runs Canonical on in and compares it with Parse+AppendJSON,
// returning whether the fast path was taken.
func checkCanonical(t *testing.T, in []byte) bool {
	t.Helper()
	prefix := []byte("prefix:")
	out, ok := Canonical(prefix[:len(prefix):len(prefix)], in)
	want, parsed := parseStringify(in)
	if !ok {
		if !bytes.Equal(out, prefix) {
			t.Fatalf("Canonical(%q) bailed but changed dst to %q", in, out)
		}
		return false
	}
	if !parsed {
		t.Fatalf("Canonical(%q) = %q, ok, but Parse fails", in, out)
	}
	if !bytes.HasPrefix(out, prefix) || !bytes.Equal(out[len(prefix):], want) {
		t.Fatalf("Canonical(%q)\n got %q\nwant %q", in, out, append(prefix, want...))
	}
	return true
}

func TestCanonical(t *testing.T) {
	// want is Node's JSON.stringify(JSON.parse(in)); these are the fast
	// path's cases, each must be taken.
	tests := []struct{ name, in, want string }{
		{"spec example", `{"b":1,"a":{"z":1.50,"big":12345678901234567890,"u":"\u00e9\u2028"}}`,
			"{\"b\":1,\"a\":{\"z\":1.5,\"big\":12345678901234567000,\"u\":\"é\u2028\"}}"},
		{"spec scalar payload", `5`, `5`},
		{"spec array payload", `[1,"a"]`, `[1,"a"]`},
		{"html escapes undone", `"\u003cp\u003e\u0026\/\u003C"`, `"<p>&/<"`},
		{"whitespace", " \t\r\n{ \"a\" : [ 1 , 2 ] }\n", `{"a":[1,2]}`},
		{"empty containers", `{"a":{},"b":[],"c":[{}],"d":[ ],"e":{ }}`, `{"a":{},"b":[],"c":[{}],"d":[],"e":{}}`},
		{"scalars", `[true,false,null,"",0,-1]`, `[true,false,null,"",0,-1]`},
		{"index keys in order", `{"0":"a","1":"b","10":"c","x":1,"01":2,"4294967295":3,"-1":4}`,
			`{"0":"a","1":"b","10":"c","x":1,"01":2,"4294967295":3,"-1":4}`},
		{"escaped index key in order", `{"\u0030":1,"\u00311":2}`, `{"0":1,"11":2}`},
		{"same key in sibling objects", `[{"a":1,"b":2},{"a":1,"b":2},{"b":{"b":{"b":1}}}]`, `[{"a":1,"b":2},{"a":1,"b":2},{"b":{"b":{"b":1}}}]`},
		{"keys differing by escape only", `{"a\"":1,"a\\":2,"a/":3,"a":4}`, `{"a\"":1,"a\\":2,"a/":3,"a":4}`},
		{"__proto__ is a plain key", `{"__proto__":1,"a":2}`, `{"__proto__":1,"a":2}`},
		{"control escapes", `"\b\f\n\r\t\u0000\u001f\u0007\u000B\u0008\u000c\u000A\u000d\u0009"`, `"\b\f\n\r\t\u0000\u001f\u0007\u000b\b\f\n\r\t"`},
		{"quote and backslash", `"\"\\\u0022\u005c"`, `"\"\\\"\\"`},
		{"del and non-ascii raw", "\"\u007f\u0080\u00ff\u2029\ufeff\U0001F600\"", "\"\u007f\u0080\u00ff\u2029\ufeff\U0001F600\""},
		{"escaped del", `"\u007F"`, "\"\u007f\""},
		{"escaped non-ascii", `"\u00e9\u00E9\u2028\u2029\uFFFD\uffff"`, "\"éé\u2028\u2029\ufffd\uffff\""},
		{"surrogate pair combines", `"\uD83D\uDE00"`, "\"\U0001F600\""},
		{"lowercase surrogate pair", `"\ud83d\ude00x"`, "\"\U0001F600x\""},
		{"lone high", `"\uD800"`, `"\ud800"`},
		{"lone low", `"\uDC00x"`, `"\udc00x"`},
		{"reversed pair", `"\uDE00\uD83D"`, `"\ude00\ud83d"`},
		{"high then non-low escape", `"\uD800\u0041"`, `"\ud800A"`},
		{"high then raw", `"\uD800A\uDC00"`, `"\ud800A\udc00"`},
		{"two highs then low", `"\uD800\uD83D\uDE00"`, "\"\\ud800\U0001F600\""},
		{"high at end", `"a\uDBFF"`, `"a\udbff"`},
		{"lone surrogate key", `{"\uDFFF":1,"\uDFFE":2}`, `{"\udfff":1,"\udffe":2}`},
		{"invalid utf8 replaced", "\"a\xffb\"", "\"a\ufffdb\""},
		{"truncated sequence one replacement", "\"\xe2\x82A\"", "\"\ufffdA\""},
		{"encoded surrogate bytes", "\"\xed\xa0\x80\"", "\"\ufffd\ufffd\ufffd\""},
		{"overlong", "\"\xc0\xaf\"", "\"\ufffd\ufffd\""},
		{"truncated 4-byte before quote", "\"\xf0\x9f\x98\"", "\"\ufffd\""},
		{"above U+10FFFF", "\"\xf4\x90\x80\x80\"", "\"\ufffd\ufffd\ufffd\ufffd\""},
		{"invalid in key", "{\"\xff\":1,\"\xfeb\":2}", "{\"\ufffd\":1,\"\ufffdb\":2}"},
		{"long plain run", `"` + strings.Repeat("abcdefgh", 9) + `é"`, `"` + strings.Repeat("abcdefgh", 9) + `é"`},
		{"infinity is null", `[1e400,-1e400]`, `[null,null]`},
		{"underflow", `[1e-400,-1e-400]`, `[0,0]`},
		{"negative zero", `[-0,-0.0,0e5,0.0]`, `[0,0,0,0]`},
		{"fifteen digits verbatim", `[123456789012345,-999999999999999]`, `[123456789012345,-999999999999999]`},
		{"sixteen digits", `[9007199254740993,9007199254740991,1234567890123456]`, `[9007199254740992,9007199254740991,1234567890123456]`},
		{"numbers", `[1e2,1E2,1e+2,1.50,0.1,1e-7,1.5e-7,123e-20,1e21,1e20,999999999999999999999,1.0,-123.456e3,0.30000000000000004,5e-324,2e-324,1.7976931348623158e308]`,
			`[100,100,100,1.5,0.1,1e-7,1.5e-7,1.23e-18,1e+21,100000000000000000000,1e+21,1,-123456,0.30000000000000004,5e-324,0,1.7976931348623157e+308]`},
		{"nested", `{"a":[{"b":[null,{"c":"d"}]}]}`, `{"a":[{"b":[null,{"c":"d"}]}]}`},
		{"depth limit", strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ok := Canonical(nil, []byte(tt.in))
			if !ok {
				t.Fatalf("Canonical(%q) bailed out", tt.in)
			}
			if string(out) != tt.want {
				t.Errorf("got  %q\nwant %q", out, tt.want)
			}
			checkCanonical(t, []byte(tt.in))
		})
	}
}

func manyKeys(n int) string {
	var sb strings.Builder
	sb.WriteString("{")
	for i := range n {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`"k`)
		sb.WriteString(strings.Repeat("x", i))
		sb.WriteString(`":1`)
	}
	sb.WriteString("}")
	return sb.String()
}

func TestCanonicalBailsOut(t *testing.T) {
	tests := []struct{ name, in string }{
		{"duplicate key", `{"a":1,"a":2}`},
		{"duplicate keeps first position", `{"a":1,"b":2,"a":3}`},
		{"duplicate via escape", `{"a":1,"\u0061":2}`},
		{"duplicate lone surrogate", `{"\uD800":1,"\ud800":2}`},
		{"duplicate after replacement", "{\"\xff\":1,\"\xfe\":2,\"\ufffd\":3}"},
		{"nested duplicate", `{"a":{"b":1,"c":{},"b":2}}`},
		{"index key after named", `{"a":1,"0":2}`},
		{"index keys descending", `{"2":"a","1":"b"}`},
		{"index key duplicate", `{"1":1,"1":2}`},
		{"escaped index key after named", `{"a":1,"\u0031":2}`},
		{"largest index after named", `{"a":1,"4294967294":2}`},
		{"too deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)},
		{"too deep objects", strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1)},
		{"too many keys", manyKeys(maxOpenKeys + 1)},
		{"too many open keys", `{"a":1,"b":` + manyKeys(maxOpenKeys-1) + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if checkCanonical(t, []byte(tt.in)) {
				t.Errorf("Canonical(%.80q) took the fast path", tt.in)
			}
		})
	}
	// At the bounds the fast path is still taken.
	for _, in := range []string{manyKeys(maxOpenKeys), `{"a":1,"b":` + manyKeys(maxOpenKeys-2) + `}`, "[" + manyKeys(maxOpenKeys) + "," + manyKeys(maxOpenKeys) + "]"} {
		if !checkCanonical(t, []byte(in)) {
			t.Errorf("Canonical bailed out on %d bytes of many keys", len(in))
		}
	}
}

func TestCanonicalRejectsInvalid(t *testing.T) {
	bad := []string{
		"", " ", "{", "}", "[", "]", "[1,]", "[,1]", "{,}", `{"a":1,}`, `{"a"}`, `{"a" 1}`, `{a:1}`,
		`{'a':1}`, `'a'`, "01", "-01", "00", "1.", ".1", "-", "+1", "1e", "1e+", "1.e5", "0x10", "1_000",
		"NaN", "Infinity", "-Infinity", "tru", "nul", "True", "undefined", "1 2", "[1] x", `"a" "b"`,
		"\"a", `"\"`, `"\x"`, `"\u12"`, `"\u12G4"`, `"\U0041"`, "\"a\nb\"", "\"\x00\"", "\"\t\"",
		"\ufeff1", "\v1", "\f1", "1\u00a0", "[1\u2028]", "\xff", "[\"a\"\xff]", "{\"a\":1}}",
		"//c\n1", "/*c*/1", "[1,2", `{"a":1`, `{"a":`, `{"a"`, `[true false]`, `"\u"`, `"\uD800\u"`,
		`"\uD800\uDC0"`, `"\`, `{"a":1 "b":2}`, `[1 2]`, `[-]`, `[-a]`, `{"a":1,"b"}`,
	}
	for _, in := range bad {
		if out, ok := Canonical([]byte("x"), []byte(in)); ok || string(out) != "x" {
			t.Errorf("Canonical(%q) = %q, %v", in, out, ok)
		}
	}
}

// railsMessages are envelopes shaped like Mastodon's Redis messages, which
// must all take the fast path.
func railsMessages(t testing.TB) [][]byte {
	t.Helper()
	status, err := os.ReadFile("testdata/status.json")
	if err != nil {
		t.Fatal(err)
	}
	msgs := [][]byte{
		wrapUpdate(status),
		[]byte(`{"event":"delete","payload":"112233445566778899","queued_at":1714564800000}`),
		[]byte(`{"event":"delete","payload":"112233445566778899"}`),
		[]byte(`{"event":"notification","payload":{"id":"9","type":"mention","created_at":"2024-05-01T12:00:00.000Z","group_key":"ungrouped-9","account":{"id":"2","display_name":"B\u00f6b \ud83d\ude00","note":"\u003cp\u003ehi\u2028there\u003c/p\u003e","fields":[{"name":"web","value":"\u003ca href=\"https://b.example\"\u003eb\u003c/a\u003e","verified_at":null}]}},"queued_at":1714564800123}`),
		[]byte(`{"event":"filters_changed","payload":null}`),
		[]byte(`{"event":"announcement.reaction","payload":"{\"name\":\"\ud83d\udc4d\",\"count\":2,\"announcement_id\":\"5\"}"}`),
		[]byte(`{"event":"status.update","payload":{"id":"1","content":"\u003cp\u003e\u0026amp; caf\u00e9 😀 \u2029\u003c/p\u003e","poll":{"votes_count":12345678901234567890,"options":[{"title":"a","votes_count":3}]},"media_attachments":[{"meta":{"original":{"width":640,"height":480,"size":"640x480","aspect":1.3333333333333333,"duration":1.50,"fps":29.97}}}]},"queued_at":1.714564800123e12}`),
		[]byte(`{"event":"encrypted_message","payload":{"id":"7","message_type":0,"body":"AAAA/+==","digest":"\/\/x"}}`),
		[]byte(`{"event":"conversation","payload":{"id":"3","unread":true,"accounts":[],"last_status":null}}`),
		[]byte(`{"event":"kill"}`),
	}
	return msgs
}

func wrapUpdate(status []byte) []byte {
	msg := []byte(`{"event":"update","payload":`)
	msg = append(msg, status...)
	return append(msg, `,"queued_at":1714564800000}`...)
}

func TestCanonicalFastPathTaken(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("testdata: %v %v", files, err)
	}
	var inputs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, b)
	}
	inputs = append(inputs, railsMessages(t)...)
	for _, in := range inputs {
		if !checkCanonical(t, in) {
			t.Errorf("Canonical bailed out on %.100q", in)
		}
	}
	golden, err := os.ReadFile("testdata/status.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := Canonical(nil, inputs[slicesIndex(files, "testdata/status.json")])
	if !bytes.Equal(out, golden) {
		t.Errorf("status.json: got\n%s\nwant\n%s", out, golden)
	}
}

func slicesIndex(s []string, v string) int {
	for i := range s {
		if s[i] == v {
			return i
		}
	}
	return -1
}

func TestScanPlain(t *testing.T) {
	naive := func(s []byte, i int) int {
		for ; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
				return i
			}
		}
		return i
	}
	alphabet := []byte{'a', ' ', '~', 0x7f, '"', '\\', 0, 0x1f, 0x20, 0x21, 0x80, 0xff, 0x01, 0x5b, 0x5d, 0x5c - 1, 0x22 + 1, 0xa0}
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 40)
	for range 200000 {
		for j := range buf {
			if r.IntN(6) == 0 {
				buf[j] = alphabet[r.IntN(len(alphabet))]
			} else {
				buf[j] = byte(0x20 + r.IntN(0x5f))
				if buf[j] == '"' || buf[j] == '\\' {
					buf[j] = 'x'
				}
			}
		}
		n := r.IntN(len(buf) + 1)
		i := r.IntN(n + 1)
		if got, want := scanPlain(buf[:n], i), naive(buf[:n], i); got != want {
			t.Fatalf("scanPlain(%q, %d) = %d, want %d", buf[:n], i, got, want)
		}
	}
}

// maxOpenNamedKeys returns the largest number of non-index keys along any
// path of nested objects in v, i.e. what Canonical keeps at once.
func maxOpenNamedKeys(v *Value) int {
	best := 0
	own := 0
	if v.Kind() == Object {
		for i := range v.Len() {
			if !isArrayIndex(v.MemberAt(i).Key) {
				own++
			}
		}
	}
	for i := range v.Len() {
		var kid *Value
		if v.Kind() == Object {
			kid = v.MemberAt(i).Value
		} else {
			kid = v.Index(i)
		}
		best = max(best, maxOpenNamedKeys(kid))
	}
	return own + best
}

func FuzzCanonical(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkCanonical(t, data)
		v, err := Parse(data)
		if err != nil {
			return
		}
		// Stringify output has no duplicates and sorted index keys, so the
		// fast path must take it (up to the key bound) and reproduce it.
		want := v.AppendJSON(nil)
		out, ok := Canonical(nil, want)
		if !ok {
			if maxOpenNamedKeys(v) <= maxOpenKeys {
				t.Fatalf("Canonical bails out on stringify output %q", want)
			}
			return
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("Canonical not idempotent on %q: %q", want, out)
		}
	})
}

func fuzzSeeds(f *testing.F) [][]byte {
	seeds := railsMessages(f)
	for _, s := range []string{
		`{"type":"subscribe","stream":["hashtag"],"tag":"Café"}`,
		`{"b":1,"a":{"z":1.50,"big":12345678901234567890,"u":"\u00e9\u2028"}}`,
		`{"a":1,"a":2,"2":0,"1":0,"01":0,"4294967295":0}`,
		`{"0":1,"1":2,"x":3,"\u0061":4}`,
		`["\uD800","\uD83D\uDE00","\uDE00\uD83D","\u003c\/","\uD800\uD800\uDC00","\u0000\u001F\u007f"]`,
		"[1e400,-0,5e-324,1e21,1e-7,0.1,123e-20,123456789012345,1234567890123456,-0.0e-0]",
		"\"\xe2\x82A\xff\xed\xa0\x80\"",
		"{\"\xff\":1,\"\xfe\":2}",
		` [ true , false , null ] `,
		`[1,]`, `01`, `"\u12"`, `{"a" 1}`, `"\uD800\uDC0"`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// TestCanonicalDecimal checks the verbatim copy of decimals against
// ParseFloat and AppendNumber on edge cases and random literals.
func TestCanonicalDecimal(t *testing.T) {
	lits := []string{
		"0.000001", "0.0000001", "0.0000012", "0.00000123456789012345", "0.1234567890123456", "0.123456789012345",
		"123456789012345.5", "12345678901234.5", "99999999999999.9", "999999999999999.9", "0.9999999999999999",
		"0.5", "-0.25", "29.97", "1.50", "100.0", "-0.000001", "1.7976931348623157", "9007199254740.993",
		"0.30000000000000004", "0.3000000000000000", "4.35", "0.1", "0.01", "0.001", "0.0001", "0.00001",
	}
	r := rand.New(rand.NewPCG(3, 4))
	digits := func(n int, lead bool) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + r.IntN(10))
			if i == 0 && lead && b[i] == '0' {
				b[i] = '1'
			}
		}
		return string(b)
	}
	for range 100000 {
		lit := "0"
		if r.IntN(3) > 0 {
			lit = digits(1+r.IntN(17), true)
		}
		lit += "." + strings.Repeat("0", r.IntN(8)*r.IntN(2)) + digits(1+r.IntN(18), false)
		if r.IntN(2) == 0 {
			lit = "-" + lit
		}
		lits = append(lits, lit)
	}
	for _, lit := range lits {
		f, ok := parseNumberBytes([]byte(lit))
		if !ok {
			t.Fatalf("ParseFloat(%s) failed", lit)
		}
		want := string(AppendNumber(nil, f))
		if canonicalDecimal([]byte(lit)) && lit != want {
			t.Errorf("canonicalDecimal(%s) but JS prints %s", lit, want)
		}
		if got, _ := Canonical(nil, []byte(lit)); string(got) != want {
			t.Errorf("Canonical(%s) = %s, want %s", lit, got, want)
		}
	}
}
