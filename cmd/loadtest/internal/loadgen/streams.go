package loadgen

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// Stream is one Mastodon stream a client subscribes to.
type Stream struct {
	// Name is the Mastodon stream name (user, public:local, hashtag, …).
	Name string
	// Tag is the hashtag for hashtag and hashtag:local.
	Tag string
	// Weight is the stream's share of clients relative to the other streams.
	Weight int
}

// streamChannels maps the stream names -streams accepts to the Redis
// channel each one listens on, as Mastodon's streaming server does.
var streamChannels = map[string]string{
	"user":                "timeline:%s",
	"user:notification":   "timeline:%s:notifications",
	"direct":              "timeline:direct:%s",
	"public":              "timeline:public",
	"public:media":        "timeline:public:media",
	"public:local":        "timeline:public:local",
	"public:local:media":  "timeline:public:local:media",
	"public:remote":       "timeline:public:remote",
	"public:remote:media": "timeline:public:remote:media",
}

// Label is the stream as written in -streams.
func (s Stream) Label() string {
	if s.Tag != "" {
		return s.Name + ":" + s.Tag
	}
	return s.Name
}

// NeedsAccount reports whether the stream's channel is per account.
func (s Stream) NeedsAccount() bool {
	return s.Name == "user" || s.Name == "user:notification" || s.Name == "direct"
}

// Channel returns the logical (un-namespaced) Redis channel the stream's
// events are published on, for a client authenticated as accountID.
func (s Stream) Channel(accountID string) string {
	switch s.Name {
	case "hashtag":
		return "timeline:hashtag:" + NormalizeTag(s.Tag)
	case "hashtag:local":
		return "timeline:hashtag:" + NormalizeTag(s.Tag) + ":local"
	}
	f := streamChannels[s.Name]
	if strings.Contains(f, "%s") {
		return fmt.Sprintf(f, accountID)
	}
	return f
}

// SSEPath returns the request target (path and query) of the SSE endpoint.
func (s Stream) SSEPath() string {
	q := url.Values{}
	var path string
	switch s.Name {
	case "user":
		path = "/api/v1/streaming/user"
	case "user:notification":
		path = "/api/v1/streaming/user/notification"
	case "direct":
		path = "/api/v1/streaming/direct"
	case "hashtag":
		path = "/api/v1/streaming/hashtag"
		q.Set("tag", s.Tag)
	case "hashtag:local":
		path = "/api/v1/streaming/hashtag/local"
		q.Set("tag", s.Tag)
	default: // public family
		base, media := strings.CutSuffix(s.Name, ":media")
		path = "/api/v1/streaming/" + strings.ReplaceAll(base, ":", "/")
		if media {
			q.Set("only_media", "true")
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// WSQuery returns the query parameters that subscribe a WebSocket at
// connect time.
func (s Stream) WSQuery() url.Values {
	q := url.Values{"stream": {s.Name}}
	if s.Tag != "" {
		q.Set("tag", s.Tag)
	}
	return q
}

// SubscribeMessage returns the JSON text of a subscribe message.
func (s Stream) SubscribeMessage() []byte { return s.message("subscribe") }

// UnsubscribeMessage returns the JSON text of an unsubscribe message.
func (s Stream) UnsubscribeMessage() []byte { return s.message("unsubscribe") }

func (s Stream) message(typ string) []byte {
	b := []byte(`{"type":"` + typ + `","stream":`)
	b = strconv.AppendQuote(b, s.Name)
	if s.Tag != "" {
		b = append(b, `,"tag":`...)
		b = strconv.AppendQuote(b, s.Tag)
	}
	return append(b, '}')
}

// NormalizeTag approximates Mastodon's hashtag normalisation: lower-case,
// then keep only letters, numbers, '_', U+00B7 and U+200C. Mastodon also
// applies NFKC and an ASCII-folding table; use ASCII tags for exact results.
func NormalizeTag(tag string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_' || r == '\u00b7' || r == '\u200c' {
			return r
		}
		return -1
	}, strings.ToLower(tag))
}

// ParseStreams parses -streams: a comma-separated list of NAME[=WEIGHT].
// NAME is a stream name from Mastodon's catalogue, "hashtag:TAG" or
// "hashtag:local:TAG". WEIGHT defaults to 1.
func ParseStreams(spec string) ([]Stream, error) {
	var out []Stream
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, hasW := strings.Cut(part, "=")
		weight := 1
		if hasW {
			n, err := strconv.Atoi(strings.TrimSpace(w))
			if err != nil || n < 1 || n > 1000 {
				return nil, fmt.Errorf("stream %q: weight must be an integer 1..1000", part)
			}
			weight = n
		}
		name = strings.TrimSpace(name)
		var s Stream
		switch {
		case strings.HasPrefix(name, "hashtag:local:"):
			s = Stream{Name: "hashtag:local", Tag: strings.TrimPrefix(name, "hashtag:local:")}
		case strings.HasPrefix(name, "hashtag:"):
			s = Stream{Name: "hashtag", Tag: strings.TrimPrefix(name, "hashtag:")}
		default:
			if _, ok := streamChannels[name]; !ok {
				return nil, fmt.Errorf("stream %q: unknown stream name", name)
			}
			s = Stream{Name: name}
		}
		if (s.Name == "hashtag" || s.Name == "hashtag:local") && s.Tag == "" {
			return nil, fmt.Errorf("stream %q: missing tag", name)
		}
		s.Weight = weight
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("no streams given")
	}
	if len(out) > 100 {
		return nil, errors.New("at most 100 streams")
	}
	return out, nil
}

// weightedCycle returns stream indexes in smooth weighted round-robin order
// (one full cycle), so clients of each stream are spread evenly.
func weightedCycle(streams []Stream) []int {
	total := 0
	for _, s := range streams {
		total += s.Weight
	}
	cur := make([]int, len(streams))
	out := make([]int, 0, total)
	for range total {
		best := 0
		for i, s := range streams {
			cur[i] += s.Weight
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, best)
	}
	return out
}
