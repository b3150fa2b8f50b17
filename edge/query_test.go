package edge

import (
	"reflect"
	"testing"
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

func FuzzParseQuery(f *testing.F) {
	f.Add("access_token=abc&stream=public&tag=caf%C3%A9")
	f.Add("a=%&b=%%41&&=&c")
	f.Fuzz(func(t *testing.T, raw string) {
		q := parseQuery(raw)
		n := 0
		for _, v := range q {
			n += len(v)
		}
		if n > maxQueryPairs {
			t.Fatalf("%d pairs parsed", n)
		}
	})
}
