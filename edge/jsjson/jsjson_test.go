package jsjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// roundTrip returns JSON.stringify(JSON.parse(in)).
func roundTrip(t *testing.T, in string) string {
	t.Helper()
	v, err := Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse(%q): %v", in, err)
	}
	return string(v.AppendJSON(nil))
}

func TestRoundTrip(t *testing.T) {
	// Expected outputs were produced by Node 20's JSON.stringify(JSON.parse(in)).
	tests := []struct {
		name, in, want string
	}{
		{"spec example", `{"b":1,"a":{"z":1.50,"big":12345678901234567890,"u":"\u00e9\u2028"}}`,
			"{\"b\":1,\"a\":{\"z\":1.5,\"big\":12345678901234567000,\"u\":\"é\u2028\"}}"},
		{"duplicate key", `{"a":1,"a":2}`, `{"a":2}`},
		{"duplicate keeps first position", `{"a":1,"b":2,"a":3}`, `{"a":3,"b":2}`},
		{"html escapes undone", `"\u003cp\u003e\u0026\/"`, `"<p>&/"`},
		{"whitespace", " \t\r\n{ \"a\" : [ 1 , 2 ] }\n", `{"a":[1,2]}`},
		{"empty containers", `{"a":{},"b":[],"c":[{}]}`, `{"a":{},"b":[],"c":[{}]}`},
		{"scalars", `[true,false,null,"",0]`, `[true,false,null,"",0]`},
		{"integer keys first", `{"2":"a","1":"b","a":"c","01":"d","4294967295":"e","4294967294":"f","0":"g","-1":"h"}`,
			`{"0":"g","1":"b","2":"a","4294967294":"f","a":"c","01":"d","4294967295":"e","-1":"h"}`},
		{"integer key duplicate", `{"b":1,"1":2,"b":3,"1":4}`, `{"1":4,"b":3}`},
		{"__proto__ is a plain key", `{"__proto__":1,"a":2}`, `{"__proto__":1,"a":2}`},
		{"control escapes", `"\b\f\n\r\t\u0000\u001f\u0007\u000B"`, `"\b\f\n\r\t\u0000\u001f\u0007\u000b"`},
		{"quote and backslash", `"\"\\"`, `"\"\\"`},
		{"del and non-ascii raw", "\"\u007f\u0080\u00ff\u2029\ufeff\U0001F600\"", "\"\u007f\u0080\u00ff\u2029\ufeff\U0001F600\""},
		{"escaped del", `"\u007F"`, "\"\u007f\""},
		{"surrogate pair combines", `"\uD83D\uDE00"`, "\"\U0001F600\""},
		{"lowercase surrogate pair", `"\ud83d\ude00"`, "\"\U0001F600\""},
		{"lone high", `"\uD800"`, `"\ud800"`},
		{"lone low", `"\uDC00x"`, `"\udc00x"`},
		{"reversed pair", `"\uDE00\uD83D"`, `"\ude00\ud83d"`},
		{"high then non-low escape", `"\uD800\u0041"`, `"\ud800A"`},
		{"two highs then low", `"\uD800\uD83D\uDE00"`, "\"\\ud800\U0001F600\""},
		{"high at end", `"a\uDBFF"`, `"a\udbff"`},
		{"lone surrogate key", `{"\uDFFF":1}`, `{"\udfff":1}`},
		{"invalid utf8 replaced", "\"a\xffb\"", "\"a\ufffdb\""},
		{"truncated sequence one replacement", "\"\xe2\x82A\"", "\"\ufffdA\""},
		{"encoded surrogate bytes", "\"\xed\xa0\x80\"", "\"\ufffd\ufffd\ufffd\""},
		{"overlong", "\"\xc0\xaf\"", "\"\ufffd\ufffd\""},
		{"truncated 4-byte", "\"\xf0\x9f\x98\"", "\"\ufffd\""},
		{"above U+10FFFF", "\"\xf4\x90\x80\x80\"", "\"\ufffd\ufffd\ufffd\ufffd\""},
		{"invalid in key", "{\"\xff\":1}", "{\"\ufffd\":1}"},
		{"infinity is null", `[1e400,-1e400]`, `[null,null]`},
		{"underflow", `[1e-400,-1e-400]`, `[0,0]`},
		{"negative zero", `[-0,-0.0,0e5]`, `[0,0,0]`},
		{"nested", `{"a":[{"b":[null,{"c":"d"}]}]}`, `{"a":[{"b":[null,{"c":"d"}]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := roundTrip(t, tt.in); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestNumbers(t *testing.T) {
	// Expected strings are Node 20's JSON.stringify(JSON.parse(in)).
	tests := []struct{ in, want string }{
		{"0", "0"}, {"-0", "0"}, {"1", "1"}, {"-1", "-1"}, {"100", "100"}, {"1e2", "100"},
		{"1E2", "100"}, {"1e+2", "100"}, {"1.50", "1.5"}, {"0.1", "0.1"}, {"-0.1", "-0.1"},
		{"0.000001", "0.000001"}, {"1e-6", "0.000001"}, {"1e-7", "1e-7"}, {"1.5e-7", "1.5e-7"},
		{"0.0000001234", "1.234e-7"}, {"123e-20", "1.23e-18"}, {"1e21", "1e+21"}, {"1e20", "100000000000000000000"},
		{"999999999999999999999", "1e+21"}, {"123456789012345678901", "123456789012345680000"},
		{"12345678901234567890", "12345678901234567000"}, {"9007199254740993", "9007199254740992"},
		{"9007199254740991", "9007199254740991"}, {"-9007199254740991", "-9007199254740991"},
		{"5e-324", "5e-324"}, {"2e-324", "0"}, {"3e-324", "5e-324"}, {"1.7976931348623157e308", "1.7976931348623157e+308"},
		{"1.7976931348623158e308", "1.7976931348623157e+308"}, {"1.8e308", "null"}, {"-1.8e308", "null"},
		{"0.1e1", "1"}, {"1.0", "1"}, {"123.456", "123.456"}, {"-123.456e3", "-123456"},
		{"0.30000000000000004", "0.30000000000000004"}, {"1.2345e-5", "0.000012345"},
		{"1e-5", "0.00001"}, {"2.5e25", "2.5e+25"}, {"1.5e300", "1.5e+300"}, {"4.35", "4.35"},
		{"100000000000000000000000", "1e+23"}, {"1111111111111111111111", "1.1111111111111111e+21"},
		{"0.00000000000000000000000000000000000000000000001", "1e-47"},
		{"1000000000000000128", "1000000000000000100"}, {"18446744073709551615", "18446744073709552000"},
		{"0e0", "0"}, {"-0e-0", "0"}, {"1.7976931348623157E+308", "1.7976931348623157e+308"},
		{"2.2250738585072014e-308", "2.2250738585072014e-308"},
		{"5.0000000000000000000000000000000000000000000000000000000000000000001e-324", "5e-324"},
	}
	for _, tt := range tests {
		if got := roundTrip(t, tt.in); got != tt.want {
			t.Errorf("%s: got %s want %s", tt.in, got, tt.want)
		}
	}
}

func TestAppendNumber(t *testing.T) {
	tests := []struct {
		f    float64
		want string
	}{
		{math.NaN(), "NaN"}, {math.Inf(1), "Infinity"}, {math.Inf(-1), "-Infinity"},
		{math.Copysign(0, -1), "0"}, {0.5, "0.5"}, {1e21, "1e+21"}, {1e-7, "1e-7"},
		{-1e-7, "-1e-7"}, {-1.5e21, "-1.5e+21"}, {1 << 53, "9007199254740992"},
		{math.MaxFloat64, "1.7976931348623157e+308"}, {math.SmallestNonzeroFloat64, "5e-324"},
		{123456.789, "123456.789"},
	}
	for _, tt := range tests {
		if got := string(AppendNumber(nil, tt.f)); got != tt.want {
			t.Errorf("AppendNumber(%v) = %s, want %s", tt.f, got, tt.want)
		}
	}
}

func TestAppendText(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"111"`, "111"},
		{`"a\"b\n"`, "a\"b\n"},
		{`"\uD800x"`, "\ufffdx"},
		{`"\uD83D\uDE00"`, "\U0001F600"},
		{`"\uDE00\uD83D"`, "\ufffd\ufffd"},
		{"\"\xff\"", "\ufffd"},
		{`5`, "5"},
		{`1.50`, "1.5"},
		{`1e400`, "Infinity"},
		{`-1e400`, "-Infinity"},
		{`-0`, "0"},
		{`1e21`, "1e+21"},
		{`true`, "true"},
		{`false`, "false"},
		{`null`, "null"},
		{`[1,"a"]`, `[1,"a"]`},
		{`{"a":"\uD800"}`, `{"a":"\ud800"}`},
	}
	for _, tt := range tests {
		v, err := Parse([]byte(tt.in))
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		if got := string(v.AppendText(nil)); got != tt.want {
			t.Errorf("AppendText(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
	var nilV *Value
	if got := string(nilV.AppendText(nil)); got != "undefined" {
		t.Errorf("nil AppendText = %q", got)
	}
	if got := string(nilV.AppendJSON(nil)); got != "null" {
		t.Errorf("nil AppendJSON = %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	bad := []string{
		"", " ", "{", "}", "[", "]", "[1,]", "[,1]", "{,}", `{"a":1,}`, `{"a"}`, `{"a" 1}`, `{a:1}`,
		`{'a':1}`, `'a'`, "01", "-01", "00", "1.", ".1", "-", "+1", "1e", "1e+", "1.e5", "0x10", "1_000",
		"NaN", "Infinity", "-Infinity", "tru", "nul", "True", "undefined", "1 2", "[1] x", `"a" "b"`,
		"\"a", `"\"`, `"\x"`, `"\u12"`, `"\u12G4"`, `"\U0041"`, "\"a\nb\"", "\"\x00\"", "\"\t\"",
		"\ufeff1", "\v1", "\f1", "1\u00a0", "[1\u2028]", "\xff", "[\"a\"\xff]", "{\"a\":1}}",
		"//c\n1", "/*c*/1", "[1,2", `{"a":1`, `{"a":`, `{"a"`, `[true false]`,
	}
	for _, in := range bad {
		v, err := Parse([]byte(in))
		if err == nil {
			t.Errorf("Parse(%q) = %s, want error", in, v.AppendJSON(nil))
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q): error %v is not a *SyntaxError", in, err)
		}
		if json.Valid([]byte(in)) {
			t.Errorf("encoding/json accepts %q", in)
		}
	}
}

func TestDepth(t *testing.T) {
	ok := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	if _, err := Parse([]byte(ok)); err != nil {
		t.Fatalf("depth %d: %v", MaxDepth, err)
	}
	for _, deep := range []string{
		strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
		strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1),
		strings.Repeat("[", 1_000_000),
	} {
		if _, err := Parse([]byte(deep)); !errors.Is(err, ErrTooDeep) {
			t.Errorf("deep input: err = %v, want ErrTooDeep", err)
		}
	}
}

func TestAccessors(t *testing.T) {
	v, err := ParseString(`{"event":"update","payload":{"account":{"id":"7","username":"bob","acct":"bob"},"mentions":[{"id":"8"},{"id":"9"}],"n":0,"f":false,"e":"","x":null,"t":true,"num":-2.5,"arr":[]},"2":"two"}`)
	if err != nil {
		t.Fatal(err)
	}
	p := v.Get("payload")
	if s, ok := p.Get("account").Get("id").Str(); !ok || s != "7" {
		t.Errorf("account.id = %q, %v", s, ok)
	}
	if got := p.Get("nope").Get("deeper").Get("id"); got != nil || got.Kind() != Undefined {
		t.Errorf("missing chain = %v", got)
	}
	if _, ok := p.Get("nope").Str(); ok {
		t.Error("Str on undefined ok")
	}
	if m := p.Get("mentions"); m.Len() != 2 || m.Index(1).Get("id").Kind() != String || m.Index(2) != nil || m.Index(-1) != nil {
		t.Error("mentions accessors")
	}
	truthy := map[string]bool{"account": true, "mentions": true, "n": false, "f": false, "e": false, "x": false, "t": true, "num": true, "arr": true, "missing": false}
	for k, want := range truthy {
		if got := p.Get(k).Truthy(); got != want {
			t.Errorf("Truthy(%s) = %v", k, got)
		}
	}
	if !p.Has("x") || p.Has("missing") || p.Get("mentions").Has("0") {
		t.Error("Has")
	}
	if f, ok := p.Get("num").Num(); !ok || f != -2.5 {
		t.Error("Num")
	}
	if b, ok := p.Get("t").Bool(); !ok || !b {
		t.Error("Bool")
	}
	if b, ok := p.Get("f").Bool(); !ok || b {
		t.Error("Bool false")
	}
	if _, ok := p.Get("n").Bool(); ok {
		t.Error("Bool of number")
	}
	ms := v.Members()
	if len(ms) != 3 || ms[0].Key != "2" || ms[1].Key != "event" || v.MemberAt(2).Key != "payload" || v.MemberAt(3).Value != nil {
		t.Errorf("members order: %v", ms)
	}
	ms[0] = Member{}
	if v.MemberAt(0).Key != "2" {
		t.Error("Members exposed internal slice")
	}
	if v.Len() != 3 || p.Get("e").Len() != 0 || v.Index(0) != nil {
		t.Error("Len/Index on object")
	}
	for k, want := range map[Kind]string{Undefined: "undefined", Null: "null", Bool: "boolean", Number: "number", String: "string", Array: "array", Object: "object", 99: "invalid"} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %s", k, k)
		}
	}
}

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain <>&/'", `"plain <>&/'"`},
		{"\u2028\u2029", "\"\u2028\u2029\""},
		{"\x00\x1f\x7f", `"\u0000\u001f` + "\x7f\""},
		{"\xed\xa0\x80", `"\ud800"`},
		{"\xed\xbf\xbf", `"\udfff"`},
		{"\xed\x9f\xbf", "\"\ud7ff\""},
		{"a\xffb", "\"a\ufffdb\""},
		{"\xe2\x82", "\"\ufffd\""},
	}
	for _, tt := range tests {
		if got := string(AppendString(nil, tt.in)); got != tt.want {
			t.Errorf("AppendString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAppendJSONWithMember(t *testing.T) {
	filtered := func(dst []byte) []byte { return append(dst, "[]"...) }
	tests := []struct{ in, key, want string }{
		{`{"id":"1","content":"x"}`, "filtered", `{"id":"1","content":"x","filtered":[]}`},
		{`{}`, "filtered", `{"filtered":[]}`},
		{`{"filtered":null,"id":"1"}`, "filtered", `{"filtered":[],"id":"1"}`},
		{`{"1":1,"5":5,"a":0}`, "3", `{"1":1,"3":[],"5":5,"a":0}`},
		{`{"1":1,"a":0}`, "9", `{"1":1,"9":[],"a":0}`},
		{`{"a":0}`, "0", `{"0":[],"a":0}`},
		{`{"1":1}`, "9", `{"1":1,"9":[]}`},
		{`"str"`, "filtered", `{"filtered":[]}`},
		{`null`, "k\"", `{"k\"":[]}`},
	}
	for _, tt := range tests {
		v, err := Parse([]byte(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		if got := string(v.AppendJSONWithMember(nil, tt.key, filtered)); got != tt.want {
			t.Errorf("%s + %s = %s, want %s", tt.in, tt.key, got, tt.want)
		}
	}
	var nilV *Value
	if got := string(nilV.AppendJSONWithMember(nil, "a", filtered)); got != `{"a":[]}` {
		t.Errorf("nil: %s", got)
	}
}

func TestStatusGolden(t *testing.T) {
	in, err := os.ReadFile("testdata/status.json")
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/status.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.AppendJSON(nil); !bytes.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if s, _ := v.Get("account").Get("acct").Str(); s != "alice" {
		t.Errorf("acct = %q", s)
	}
	if !utf8.ValidString(string(want)) {
		t.Error("golden not UTF-8")
	}
}

func TestParseStringSharesValidInput(t *testing.T) {
	v, err := ParseString(`{"a":"x\u0041","b":"\u00e9\n"}`)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := v.Get("a").Str(); a != "xA" {
		t.Errorf("a = %q", a)
	}
	if b, _ := v.Get("b").Str(); b != "é\n" {
		t.Errorf("b = %q", b)
	}
}

func TestLargeObjectDuplicates(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("{")
	for i := range 100 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`"k`)
		sb.WriteString(string(rune('a' + i%26)))
		sb.WriteString(strings.Repeat("x", i/26))
		sb.WriteString(`":`)
		sb.WriteString(strings.Repeat("1", 1+i%3))
	}
	sb.WriteString(`,"ka":"last","10":1,"kz":null}`)
	v, err := Parse([]byte(sb.String()))
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 101 || v.MemberAt(0).Key != "10" || v.MemberAt(1).Key != "ka" {
		t.Fatalf("len %d first %q %q", v.Len(), v.MemberAt(0).Key, v.MemberAt(1).Key)
	}
	if s, _ := v.Get("ka").Str(); s != "last" {
		t.Errorf("ka = %q", s)
	}
	if v.Get("kz").Kind() != Null || v.MemberAt(26).Key != "kz" {
		t.Errorf("kz: %v at %q", v.Get("kz").Kind(), v.MemberAt(26).Key)
	}
}

// TestLargeObjectsShareIndex checks that the dedup index shared by open
// objects keeps siblings and nested objects with equal keys apart.
func TestLargeObjectsShareIndex(t *testing.T) {
	obj := func(inner string) string {
		var sb strings.Builder
		sb.WriteString("{")
		for i := range 40 {
			sb.WriteString(`"k`)
			sb.WriteString(strings.Repeat("x", i))
			sb.WriteString(`":`)
			if i == 35 && inner != "" {
				sb.WriteString(inner)
			} else {
				sb.WriteString("0")
			}
			sb.WriteString(",")
		}
		sb.WriteString(`"k":1}`) // duplicate of the first key
		return sb.String()
	}
	in := "[" + obj(obj("")) + "," + obj("") + "]"
	v, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []*Value{v.Index(0), v.Index(0).Get("k" + strings.Repeat("x", 35)), v.Index(1)} {
		if o.Len() != 40 || o.MemberAt(0).Key != "k" {
			t.Fatalf("len %d first %q", o.Len(), o.MemberAt(0).Key)
		}
		if n, _ := o.Get("k").Num(); n != 1 {
			t.Errorf("k = %v", n)
		}
	}
}
