package edge

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRequestToken(t *testing.T) {
	tests := []struct {
		name  string
		hdr   http.Header
		query string
		token string
		err   *apiError
	}{
		{"bearer header", http.Header{"Authorization": {"Bearer abc"}}, "", "abc", nil},
		{"bare header", http.Header{"Authorization": {"abc"}}, "", "abc", nil},
		{"bearer once only", http.Header{"Authorization": {"Bearer Bearer abc"}}, "", "Bearer abc", nil},
		{"lower-case bearer kept", http.Header{"Authorization": {"bearer abc"}}, "", "bearer abc", nil},
		{"header beats query", http.Header{"Authorization": {"Bearer h"}}, "access_token=q", "h", nil},
		{"first Authorization header wins, as in Node", http.Header{"Authorization": {"Bearer one", "Bearer two"}}, "", "one", nil},
		{"empty header falls through", http.Header{"Authorization": {""}}, "access_token=q", "q", nil},
		{"empty first header falls through", http.Header{"Authorization": {"", "Bearer two"}}, "access_token=q", "q", nil},
		{"bearer alone", http.Header{"Authorization": {"Bearer "}}, "access_token=q", "", errInvalidToken},
		{"query", nil, "access_token=q", "q", nil},
		{"repeated query", nil, "access_token=q&access_token=q", "", errInvalidToken},
		{"empty query falls through", http.Header{"Sec-Websocket-Protocol": {"p"}}, "access_token=", "p", nil},
		{"query beats protocol", http.Header{"Sec-Websocket-Protocol": {"p"}}, "access_token=q", "q", nil},
		{"protocols joined", http.Header{"Sec-Websocket-Protocol": {"a", "b"}}, "", "a, b", nil},
		{"none", nil, "", "", errMissingToken},
		{"too long", http.Header{"Authorization": {strings.Repeat("x", maxTokenLen+1)}}, "", "", errInvalidToken},
		{"longest", http.Header{"Authorization": {strings.Repeat("x", maxTokenLen)}}, "", strings.Repeat("x", maxTokenLen), nil},
		{"NUL", nil, "access_token=a%00b", "", errInvalidToken},
		{"invalid UTF-8", nil, "access_token=a\xffb", "", errInvalidToken},
	}
	for _, tc := range tests {
		r := &http.Request{Header: tc.hdr}
		token, err := requestToken(r, parseQuery(tc.query))
		if token != tc.token || err != tc.err {
			t.Errorf("%s: %.40q, %v; want %.40q, %v", tc.name, token, err, tc.token, tc.err)
		}
	}
}

// Fuzzed from the wire: a request with any Authorization and
// Sec-WebSocket-Protocol headers and any query is read by net/http as the
// server reads it. Then the first non-empty source wins (Authorization,
// access_token, Sec-WebSocket-Protocol), the token comes from that source
// only, and a token handed to Postgres is non-empty, bounded, valid UTF-8
// and free of NUL.
func FuzzRequestToken(f *testing.F) {
	f.Add("Bearer ZA-Yj3aBD8U8Cm7lKUp-lm9O9BmDgdhHzDeqsY8tlL0", "", "stream=user", "", "")
	f.Add("", "", "access_token=alice-read-token&stream=public", "", "")
	f.Add("", "", "access_token=a&access_token=b", "tok", "")
	f.Add("", "", "", "alice-read-token", "second")
	f.Add("Bearer one", "Bearer two", "access_token=q", "p", "")
	f.Add("Bearer ", "", "access_token=%00", "", "")
	f.Add("bearer  x", "", "access_token=%FF%FE", "a,b", "c")
	f.Fuzz(func(t *testing.T, auth1, auth2, rawQuery, proto1, proto2 string) {
		var b strings.Builder
		b.WriteString("GET /api/v1/streaming?" + rawQuery + " HTTP/1.1\r\nHost: x\r\n")
		var auths, protos []string
		for _, h := range []struct {
			name, v string
			to      *[]string
		}{{"Authorization", auth1, &auths}, {"Authorization", auth2, &auths}, {"Sec-WebSocket-Protocol", proto1, &protos}, {"Sec-WebSocket-Protocol", proto2, &protos}} {
			if h.v != "" {
				b.WriteString(h.name + ": " + h.v + "\r\n")
				*h.to = append(*h.to, h.v)
			}
		}
		b.WriteString("\r\n")
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(b.String())))
		if err != nil {
			return // net/http refuses it before any handler runs
		}
		// What net/http hands over: values trimmed of surrounding blanks.
		auths, protos = r.Header.Values("Authorization"), r.Header.Values("Sec-WebSocket-Protocol")
		q := parseQuery(r.URL.RawQuery)
		token, repeated, ok := tokenFrom(r, q)
		switch tokens := q["access_token"]; {
		case len(auths) > 0 && auths[0] != "":
			if token != strings.TrimPrefix(auths[0], "Bearer ") || repeated || !ok {
				t.Fatalf("Authorization %q: token %q %v %v", auths, token, repeated, ok)
			}
		case len(tokens) > 1:
			if !repeated || !ok || token != "" {
				t.Fatalf("access_token %q: token %q %v %v", tokens, token, repeated, ok)
			}
		case len(tokens) == 1 && tokens[0] != "":
			if token != tokens[0] || repeated || !ok {
				t.Fatalf("access_token %q: token %q %v %v", tokens, token, repeated, ok)
			}
		case strings.Join(protos, ", ") != "": // two empty headers give ", " in Node too
			if token != strings.Join(protos, ", ") || repeated || !ok {
				t.Fatalf("Sec-WebSocket-Protocol %q: token %q %v %v", protos, token, repeated, ok)
			}
		default:
			if ok || token != "" {
				t.Fatalf("no source, yet token %q %v", token, ok)
			}
		}
		got, aerr := requestToken(r, q)
		switch {
		case !ok:
			if aerr != errMissingToken {
				t.Fatalf("no token: %v", aerr)
			}
		case aerr == nil:
			if got != token || got == "" || len(got) > maxTokenLen || !utf8.ValidString(got) || strings.ContainsRune(got, 0) {
				t.Fatalf("token %q handed to Postgres", got)
			}
		case aerr != errInvalidToken:
			t.Fatalf("token %q: %v", token, aerr)
		case !repeated && plausibleToken(token):
			t.Fatalf("token %q refused", token)
		}
	})
}
