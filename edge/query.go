package edge

import (
	"strings"

	"github.com/spillway/spillway/edge/jsjson"
)

// query is a parsed query string as Node's querystring module produces it:
// '+' is a space, percent escapes are decoded where valid and kept
// verbatim where not, a repeated key collects every value, and there is no
// bracket syntax. Unlike net/url, ';' is an ordinary character.
type query map[string][]string

// maxQueryPairs bounds the work a hostile query string can cause; Node's
// querystring stops at 1000 pairs too.
const maxQueryPairs = 1000

func parseQuery(raw string) query {
	q := query{}
	for n := 0; raw != "" && n < maxQueryPairs; n++ {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, v = unescapeQuery(k), unescapeQuery(v)
		q[k] = append(q[k], v)
	}
	return q
}

// unescapeQuery decodes '+' and valid %XX escapes, leaving invalid escapes
// as they are. As in Node (decodeURIComponent failing over to a Buffer
// decoded as UTF-8), the decoded bytes are read as UTF-8 with each maximal
// invalid subpart replaced by U+FFFD. A part without '+' or '%' is kept
// as it is; bytes in it that do not form valid UTF-8 are left to the
// consumer.
func unescapeQuery(s string) string {
	if !strings.ContainsAny(s, "+%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return jsjson.DecodeUTF8(string(b))
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// first returns the first value of key and whether the key is present.
func (q query) first(key string) (string, bool) {
	v, ok := q[key]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}
