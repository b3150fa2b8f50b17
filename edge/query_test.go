package edge

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spillway/spillway/edge/jsjson"
)

func TestParseQuery(t *testing.T) {
	tests := []struct {
		raw  string
		want query
	}{
		{"", query{}},
		{"tag=foo", query{"tag": {"foo"}}},
		{"tag=a&tag=b", query{"tag": {"a", "b"}}},
		{"tag=caf%C3%A9+x", query{"tag": {"café x"}}},
		{"a=%zz&b=%4", query{"a": {"%zz"}, "b": {"%4"}}},
		{"a;b=c", query{"a;b": {"c"}}},
		{"flag&x=", query{"flag": {""}, "x": {""}}},
		{"&&a=1&&", query{"a": {"1"}}},
		{"k=%FF", query{"k": {"\uFFFD"}}},
		{"k=%FF%FE", query{"k": {"\uFFFD\uFFFD"}}},          // one U+FFFD per maximal invalid subpart, as Node
		{"k=%E6%97x", query{"k": {"\uFFFDx"}}},              // a truncated sequence is one subpart
		{"k=%ED%A0%80", query{"k": {"\uFFFD\uFFFD\uFFFD"}}}, // no surrogates in UTF-8
		{"k=\xff", query{"k": {"\xff"}}},                    // raw bytes are left to the consumer
	}
	for _, tc := range tests {
		if got := parseQuery(tc.raw); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseQuery(%q) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}

func TestOnlyMedia(t *testing.T) {
	tests := []struct {
		vals []string
		want bool
	}{
		{[]string{""}, false}, {[]string{"0"}, false}, {[]string{"f"}, false}, {[]string{"F"}, false},
		{[]string{"false"}, false}, {[]string{"FALSE"}, false}, {[]string{"off"}, false}, {[]string{"OFF"}, false},
		{[]string{"true"}, true}, {[]string{"1"}, true}, {[]string{"yes"}, true}, {[]string{"no"}, true},
		{[]string{"False"}, true}, {[]string{"0", "0"}, true},
	}
	for _, tc := range tests {
		if got := onlyMedia(tc.vals); got != tc.want {
			t.Errorf("onlyMedia(%q) = %v, want %v", tc.vals, got, tc.want)
		}
	}
}

var querySeeds = []string{
	"access_token=abc&stream=public&tag=caf%C3%A9",
	"a=%&b=%%41&&=&c",
	"stream=hashtag&tag=%23Caf%C3%A9+au+lait&access_token=ZA-Yj3aBD8U8Cm7lKUp-lm9O9BmDgdhHzDeqsY8tlL0",
	"stream=list&list=5001", "list=+0005001+", "tag=%E6%97%A5%E6%9C%AC", "tag=%FF%FE", "tag=%E6%97",
	"tag=%ED%A0%80", "tag=a;b&c=d;e", "only_media=true&only_media=false", "=", "&", "%", "+", "a+b=c+d",
	"tag=" + strings.Repeat("a", 5000), strings.Repeat("x=1&", 1100),
}

// Properties of Node's querystring as parseQuery reproduces it: at most
// maxQueryPairs pairs, one value per non-empty '&'-separated part; a part
// without '+' or '%' is taken verbatim; decoded parts are valid UTF-8 and,
// when every escape in them is valid, equal what net/url decodes.
func FuzzParseQuery(f *testing.F) {
	for _, s := range querySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q := parseQuery(raw)
		var parts []string
		if raw != "" {
			parts = strings.Split(raw, "&")
		}
		parts = parts[:min(len(parts), maxQueryPairs)]
		want := query{}
		for _, p := range parts {
			if p == "" {
				continue
			}
			k, v, _ := strings.Cut(p, "=")
			k, v = checkUnescape(t, k), checkUnescape(t, v)
			want[k] = append(want[k], v)
		}
		if !reflect.DeepEqual(q, want) {
			t.Fatalf("parseQuery(%q) = %q, want %q", raw, q, want)
		}
		for k, vs := range q {
			if first, ok := q.first(k); !ok || first != vs[0] {
				t.Fatalf("first(%q) = %q, %v", k, first, ok)
			}
		}
	})
}

// checkUnescape returns unescapeQuery(s) after checking it against net/url
// and the rules above.
func checkUnescape(t *testing.T, s string) string {
	t.Helper()
	got := unescapeQuery(s)
	if !strings.ContainsAny(s, "+%") {
		if got != s {
			t.Fatalf("unescapeQuery(%q) = %q, want it verbatim", s, got)
		}
		return got
	}
	if !utf8.ValidString(got) {
		t.Fatalf("unescapeQuery(%q) = %q, invalid UTF-8", s, got)
	}
	if ref, err := url.QueryUnescape(s); err == nil && utf8.ValidString(ref) && ref != got {
		t.Fatalf("unescapeQuery(%q) = %q, net/url gives %q", s, got, ref)
	}
	if len(got) > 3*len(s) {
		t.Fatalf("unescapeQuery(%q) grew to %d bytes", s, len(got))
	}
	return got
}

// Any key and value, encoded by a client, come back as sent (invalid UTF-8
// as Node decodes it), whatever they contain ('&', '=', '+', '%', ';').
func FuzzQueryRoundTrip(f *testing.F) {
	f.Add("tag", "Café au lait", "list", "5001")
	f.Add("access_token", "a&b=c+d%", "", "")
	f.Add("k", "\xff\xfe", "k", "%zz")
	f.Add("stream", "hashtag:local", "tag", "#日本")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		for _, enc := range []func(string) string{url.QueryEscape, escapeAll} {
			raw := enc(k1) + "=" + enc(v1) + "&" + enc(k2) + "=" + enc(v2)
			q := parseQuery(raw)
			want := query{}
			for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
				k, v := jsjson.DecodeUTF8(kv[0]), jsjson.DecodeUTF8(kv[1])
				want[k] = append(want[k], v)
			}
			if !reflect.DeepEqual(q, want) {
				t.Fatalf("parseQuery(%q) = %q, want %q", raw, q, want)
			}
		}
	})
}

// escapeAll percent-encodes every byte, as some clients do.
func escapeAll(s string) string {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, 3*len(s))
	for i := 0; i < len(s); i++ {
		b = append(b, '%', hex[s[i]>>4], hex[s[i]&15])
	}
	return string(b)
}
