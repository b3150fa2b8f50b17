package bus

import (
	"bytes"
	"strings"
)

// Interest messages tell the broker which channels an edge is serving. The
// body is channel names separated by '\n'. Names come from the edge's stream
// resolution (digits, normalised hashtags), so they never contain '\n'; the
// decoder still rejects anything that is not a plausible timeline name, as
// the broker turns names into Redis keys.

// EncodeInterest packs names into as few message bodies as possible, each at
// most max bytes (a name longer than max gets a body of its own).
func EncodeInterest(names []string, max int) [][]byte {
	var out [][]byte
	var cur []byte
	for _, n := range names {
		if n == "" || strings.ContainsRune(n, '\n') {
			continue
		}
		if len(cur) > 0 && len(cur)+1+len(n) > max {
			out = append(out, cur)
			cur = nil
		}
		if len(cur) > 0 {
			cur = append(cur, '\n')
		}
		cur = append(cur, n...)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// MaxNameLen bounds a channel name accepted in an interest message; Redis
// keys built from hostile input must stay small.
const MaxNameLen = 512

// DecodeInterest returns the channel names in an interest message body,
// skipping empty lines and names that are not "timeline:" channels.
func DecodeInterest(body []byte) []string {
	var out []string
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if len(line) == 0 || len(line) > MaxNameLen || !bytes.HasPrefix(line, []byte("timeline:")) {
			continue
		}
		out = append(out, string(line))
	}
	return out
}
