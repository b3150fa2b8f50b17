// Package payload builds the Mastodon `update` messages the load tool
// publishes into Redis and extracts the tool's markers (sequence number, send
// time, probe flag) from what a streaming server delivers.
//
// Markers are JSON strings, not numbers: Mastodon's Node server re-serialises
// payloads through IEEE-754 doubles, which would round a nanosecond timestamp.
// Extraction is a byte scan that works on the raw status JSON (SSE data) and
// on the same JSON embedded as an escaped string (WebSocket frame payload).
package payload

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Marker keys inside the status object. A probe's sequence value starts with
// probePrefix; keeping the flag inside one value means a receiver finds every
// marker without scanning the whole status for an absent key.
const (
	keySeq      = "spillway_seq"
	keySentNS   = "spillway_sent_ns"
	probePrefix = 'P'
)

// Author identifies the account that "wrote" the generated statuses. IDs must
// be numeric strings: servers use them in SQL bigint comparisons.
type Author struct {
	ID       string
	Username string
	// Domain is empty for a local account; for a remote one the status's
	// acct becomes username@domain, which servers use for feed-access and
	// domain-block checks.
	Domain string
}

// Acct is the account's acct as Mastodon renders it.
func (a Author) Acct() string {
	if a.Domain == "" {
		return a.Username
	}
	return a.Username + "@" + a.Domain
}

// DefaultAuthor returns a local account (acct == username), so local-only
// streams and feed-access checks treat the status as local.
func DefaultAuthor() Author {
	return Author{ID: "109000000000000001", Username: "loadtest"}
}

// MinSize is the size of a generated message without padding; smaller
// requested sizes produce messages of about this size.
func MinSize(a Author) int {
	return len(NewGenerator(a, 0).Append(nil, 1<<40, 1<<62, true))
}

// Generator appends complete Redis messages
// ({"event":"update","payload":{…status…}}). It is immutable after
// construction and safe for concurrent use.
type Generator struct {
	// Each tail is everything after the marker fields, including the
	// closing braces, for one author.
	probe []byte
	tails [][]byte
}

// NewGenerator returns a generator whose messages, all written by a, are
// about size bytes (at least MinSize).
func NewGenerator(a Author, size int) *Generator {
	return NewRotatingGenerator(a, nil, size)
}

// NewRotatingGenerator returns a generator whose probe messages are written
// by probe and whose other messages rotate over authors by sequence number
// (seq modulo len(authors)); with no authors every message is by probe.
// Keeping probes on one neutral author lets every subscriber confirm even
// when it blocks, mutes or domain-blocks some of the rotating authors. Each
// message is about size bytes (at least its author's MinSize).
func NewRotatingGenerator(probe Author, authors []Author, size int) *Generator {
	g := &Generator{probe: paddedTail(probe, size)}
	for _, a := range authors {
		g.tails = append(g.tails, paddedTail(a, size))
	}
	return g
}

func paddedTail(a Author, size int) []byte {
	tail := buildTail(a, "")
	base := len(appendMsg(nil, 1_000_000, 1_700_000_000_000_000_000, false, tail))
	if pad := size - base; pad > 0 {
		tail = buildTail(a, filler(pad))
	}
	return tail
}

// Append appends one message with the given sequence number and send time to
// dst. Probe messages carry an extra marker so receivers can exclude them.
func (g *Generator) Append(dst []byte, seq uint64, sentNS int64, probe bool) []byte {
	tail := g.probe
	if !probe && len(g.tails) > 0 {
		tail = g.tails[seq%uint64(len(g.tails))]
	}
	return appendMsg(dst, seq, sentNS, probe, tail)
}

func appendMsg(dst []byte, seq uint64, sentNS int64, probe bool, tail []byte) []byte {
	dst = append(dst, `{"event":"update","payload":{"id":"`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `","`+keySeq+`":"`...)
	if probe {
		dst = append(dst, probePrefix)
	}
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `","`+keySentNS+`":"`...)
	dst = strconv.AppendInt(dst, sentNS, 10)
	dst = append(dst, '"')
	return append(dst, tail...)
}

const words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua "

func filler(n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(words)
	}
	return b.String()[:n]
}

// emoji and the structs below mirror Mastodon's REST entities (field order
// as Mastodon renders them) so servers exercise realistic parsing and
// re-serialisation.
type emoji struct {
	Shortcode       string `json:"shortcode"`
	URL             string `json:"url"`
	StaticURL       string `json:"static_url"`
	VisibleInPicker bool   `json:"visible_in_picker"`
}

type field struct {
	Name       string  `json:"name"`
	Value      string  `json:"value"`
	VerifiedAt *string `json:"verified_at"`
}

type account struct {
	ID             string   `json:"id"`
	Username       string   `json:"username"`
	Acct           string   `json:"acct"`
	DisplayName    string   `json:"display_name"`
	Locked         bool     `json:"locked"`
	Bot            bool     `json:"bot"`
	Discoverable   bool     `json:"discoverable"`
	Indexable      bool     `json:"indexable"`
	Group          bool     `json:"group"`
	CreatedAt      string   `json:"created_at"`
	Note           string   `json:"note"`
	URL            string   `json:"url"`
	URI            string   `json:"uri"`
	Avatar         string   `json:"avatar"`
	AvatarStatic   string   `json:"avatar_static"`
	Header         string   `json:"header"`
	HeaderStatic   string   `json:"header_static"`
	FollowersCount int      `json:"followers_count"`
	FollowingCount int      `json:"following_count"`
	StatusesCount  int      `json:"statuses_count"`
	LastStatusAt   string   `json:"last_status_at"`
	HideColls      bool     `json:"hide_collections"`
	Noindex        bool     `json:"noindex"`
	Emojis         []emoji  `json:"emojis"`
	Roles          []string `json:"roles"`
	Fields         []field  `json:"fields"`
}

type mention struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	URL      string `json:"url"`
	Acct     string `json:"acct"`
}

type mediaMeta struct {
	Width  int     `json:"width"`
	Height int     `json:"height"`
	Size   string  `json:"size"`
	Aspect float64 `json:"aspect"`
}

type media struct {
	ID               string               `json:"id"`
	Type             string               `json:"type"`
	URL              string               `json:"url"`
	PreviewURL       string               `json:"preview_url"`
	RemoteURL        *string              `json:"remote_url"`
	PreviewRemoteURL *string              `json:"preview_remote_url"`
	TextURL          *string              `json:"text_url"`
	Meta             map[string]mediaMeta `json:"meta"`
	Description      string               `json:"description"`
	Blurhash         string               `json:"blurhash"`
}

type tag struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

type application struct {
	Name    string  `json:"name"`
	Website *string `json:"website"`
}

// statusTail is the status after id and the markers; it is marshalled as an
// object and spliced in without its opening brace.
type statusTail struct {
	CreatedAt          string      `json:"created_at"`
	InReplyToID        *string     `json:"in_reply_to_id"`
	InReplyToAccountID *string     `json:"in_reply_to_account_id"`
	Sensitive          bool        `json:"sensitive"`
	SpoilerText        string      `json:"spoiler_text"`
	Visibility         string      `json:"visibility"`
	Language           string      `json:"language"`
	URI                string      `json:"uri"`
	URL                string      `json:"url"`
	RepliesCount       int         `json:"replies_count"`
	ReblogsCount       int         `json:"reblogs_count"`
	FavouritesCount    int         `json:"favourites_count"`
	EditedAt           *string     `json:"edited_at"`
	Content            string      `json:"content"`
	Reblog             *struct{}   `json:"reblog"`
	Application        application `json:"application"`
	Account            account     `json:"account"`
	MediaAttachments   []media     `json:"media_attachments"`
	Mentions           []mention   `json:"mentions"`
	Tags               []tag       `json:"tags"`
	Emojis             []emoji     `json:"emojis"`
	Card               *struct{}   `json:"card"`
	Poll               *struct{}   `json:"poll"`
}

func buildTail(a Author, pad string) []byte {
	const host = "https://social.example"
	const files = "https://cdn.example"
	blobcat := emoji{Shortcode: "blobcat", URL: files + "/emoji/blobcat.png", StaticURL: files + "/emoji/blobcat_s.png", VisibleInPicker: true}
	profile := host + "/@" + a.Username
	actor := host + "/users/" + a.Username
	if a.Domain != "" {
		profile = "https://" + a.Domain + "/@" + a.Username
		actor = "https://" + a.Domain + "/users/" + a.Username
	}
	website := "https://app.example"
	verified := "2024-04-02T09:10:11.000+00:00"
	st := statusTail{
		CreatedAt:   "2024-05-01T12:00:00.000Z",
		Visibility:  "public",
		Language:    "en",
		URI:         actor + "/statuses/loadtest",
		URL:         profile + "/loadtest",
		Content:     `<p>Hi <a href="` + host + `/@alice" class="u-url mention">@alice</a> &amp; <a href="https://remote.example/@carol" class="u-url mention">@carol</a> <a href="` + host + `/tags/spillway" class="mention hashtag" rel="tag">#spillway</a> :blobcat:</p><p>` + pad + `</p>`,
		Application: application{Name: "Spillway loadtest", Website: &website},
		Account: account{
			ID: a.ID, Username: a.Username, Acct: a.Acct(),
			DisplayName:  "Load Test :blobcat:",
			Discoverable: true, Indexable: true,
			CreatedAt:      "2023-01-15T00:00:00.000Z",
			Note:           `<p>Synthetic statuses for measuring streaming servers.</p>`,
			URL:            profile,
			URI:            actor,
			Avatar:         files + "/avatars/8f3b2a.png",
			AvatarStatic:   files + "/avatars/8f3b2a.png",
			Header:         files + "/headers/4c1d9e.jpg",
			HeaderStatic:   files + "/headers/4c1d9e.jpg",
			FollowersCount: 1234, FollowingCount: 321, StatusesCount: 98765,
			LastStatusAt: "2024-05-01",
			Emojis:       []emoji{blobcat},
			Roles:        []string{},
			Fields: []field{
				{Name: "Website", Value: `<a href="https://spillway.example" rel="me">spillway.example</a>`, VerifiedAt: &verified},
				{Name: "Pronouns", Value: "it/its"},
			},
		},
		MediaAttachments: []media{{
			ID: "109000000000000101", Type: "image",
			URL:        files + "/media/a1b2c3.png",
			PreviewURL: files + "/media/a1b2c3_small.png",
			Meta: map[string]mediaMeta{
				"original": {Width: 1200, Height: 800, Size: "1200x800", Aspect: 1.5},
				"small":    {Width: 480, Height: 320, Size: "480x320", Aspect: 1.5},
			},
			Description: "A chart of delivery latency rising with the number of clients.",
			Blurhash:    "UBL_:rOpGG-oBUNG,qRj2so|=eE1w^n4S5NH",
		}},
		Mentions: []mention{
			{ID: "109000000000000002", Username: "alice", URL: host + "/@alice", Acct: "alice"},
			{ID: "109000000000000003", Username: "carol", URL: "https://remote.example/@carol", Acct: "carol@remote.example"},
		},
		Tags:   []tag{{Name: "spillway", URL: host + "/tags/spillway"}},
		Emojis: []emoji{blobcat},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // Mastodon emits raw <, >, & in JSON strings
	if err := enc.Encode(st); err != nil {
		// Only fixed types are encoded; failure is impossible.
		return []byte("}}")
	}
	obj := bytes.TrimSpace(buf.Bytes())
	// obj is {…}; splice as ",…}" and close the envelope.
	out := make([]byte, 0, len(obj)+2)
	out = append(out, ',')
	out = append(out, obj[1:]...)
	return append(out, '}')
}

// Info is what Decode extracts from a delivered status.
type Info struct {
	Seq    uint64
	SentNS int64
	Probe  bool
}

// Decode extracts the markers from a status payload as delivered over SSE
// (raw JSON) or inside a WebSocket frame (JSON-escaped string). ok is false
// when either the sequence number or the send time is missing or malformed.
func Decode(b []byte) (info Info, ok bool) {
	seq, probe, ok := findUint(b, keySeq, true)
	if !ok {
		return Info{}, false
	}
	sent, _, ok := findUint(b, keySentNS, false)
	if !ok || sent > 1<<63-1 {
		return Info{}, false
	}
	return Info{Seq: seq, SentNS: int64(sent), Probe: probe}, true
}

// findUint finds `"key"` (or `\"key\"`) followed by a colon and a quoted
// (possibly escape-quoted) decimal, and returns the decimal. With allowProbe
// the decimal may be preceded by probePrefix, reported as probe.
func findUint(b []byte, key string, allowProbe bool) (v uint64, probe, ok bool) {
	for off := 0; off < len(b); {
		i := bytes.Index(b[off:], []byte(key))
		if i < 0 {
			return 0, false, false
		}
		start := off + i
		off = start + len(key)
		if start == 0 || b[start-1] != '"' {
			continue
		}
		if v, probe, ok := valueAfterKey(b[off:], allowProbe); ok {
			return v, probe, true
		}
	}
	return 0, false, false
}

func valueAfterKey(b []byte, allowProbe bool) (v uint64, probe, ok bool) {
	i := skipQuote(b, 0)
	if i < 0 {
		return 0, false, false
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return 0, false, false
	}
	i = skipSpace(b, i+1)
	if i = skipQuote(b, i); i < 0 {
		return 0, false, false
	}
	if allowProbe && i < len(b) && b[i] == probePrefix {
		probe = true
		i++
	}
	digits := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false, false
		}
		v = v*10 + d
		digits++
	}
	if digits == 0 || skipQuote(b, i) < 0 {
		return 0, false, false
	}
	return v, probe, true
}

// skipQuote consumes `"` or `\"` at b[i:], returning the next index or -1.
func skipQuote(b []byte, i int) int {
	if i < len(b) && b[i] == '"' {
		return i + 1
	}
	if i+1 < len(b) && b[i] == '\\' && b[i+1] == '"' {
		return i + 2
	}
	return -1
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
