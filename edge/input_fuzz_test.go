package edge

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/spillway/spillway/edge/jsjson"
	"github.com/spillway/spillway/shared/channel"
)

// Fuzz tests of what clients and Redis send, from the raw bytes to the
// channel and NATS subject they lead to.

// checkNATSName fails unless name is refused by channel.CheckName or gives,
// under the default and the longest prefix, a subject NATS accepts as a
// literal: non-empty tokens without whitespace, control bytes, wildcards or
// non-ASCII, within channel.MaxSubjectLen.
func checkNATSName(t *testing.T, name channel.Name) {
	t.Helper()
	if channel.CheckName(name) != nil {
		t.Fatalf("%.60q (%d bytes) accepted", name, len(name))
	}
	for _, s := range []channel.Subjects{{}, {Prefix: strings.Repeat("p", channel.MaxPrefixLen)}} {
		subj := s.Of(name)
		if len(subj) > channel.MaxSubjectLen || !server.IsValidLiteralSubject(subj) {
			t.Fatalf("%q gives subject %q (%d bytes)", name, subj, len(subj))
		}
		for i := 0; i < len(subj); i++ {
			if c := subj[i]; c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				t.Fatalf("%q gives subject %q with byte %#x", name, subj, c)
			}
		}
	}
}

// checkTag checks hashtagChannel on a tag parameter: an error Mastodon
// could give (or the too-long refusal), or a channel NATS can carry.
func checkTag(t *testing.T, tag *jsjson.Value) {
	t.Helper()
	for _, local := range []bool{false, true} {
		name, aerr := hashtagChannel(tag, local)
		switch aerr {
		case nil:
			checkNATSName(t, name)
			s, _ := tag.Str()
			if name != channel.Hashtag(s, local) {
				t.Fatalf("tag %q: channel %q", s, name)
			}
		case errMissingTag, errUnexpected:
			if tag.Kind() == jsjson.String && tag.Truthy() {
				t.Fatalf("string tag %s refused with %v", tag.AppendJSON(nil), aerr)
			}
		case errTagTooLong:
			s, ok := tag.Str()
			if !ok || len(s) <= channel.MaxNameLen && channel.CheckName(channel.Hashtag(s, local)) == nil {
				t.Fatalf("tag %q refused as too long", s)
			}
		default:
			t.Fatalf("tag %s: %v", tag.AppendJSON(nil), aerr)
		}
	}
}

// checkList checks listChannel likewise.
func checkList(t *testing.T, list *jsjson.Value) {
	t.Helper()
	id, name, aerr := listChannel(list)
	switch aerr {
	case nil:
		checkNATSName(t, name)
		if name != channel.List(id) {
			t.Fatalf("list %q: channel %q", id, name)
		}
		if want, _ := listParam(list); id != want {
			t.Fatalf("list %s: id %q", list.AppendJSON(nil), id)
		}
	case errMissingList, errListForbidden:
		if s, ok := list.Str(); ok && s != "" && channel.CheckName(channel.List(s)) == nil {
			t.Fatalf("list %q refused", s)
		}
	default:
		t.Fatalf("list %s: %v", list.AppendJSON(nil), aerr)
	}
}

// A query string, however odd, gives a tag and a list that are refused or
// lead to a subject NATS can carry; an over-long raw tag is refused before
// it is normalised.
func FuzzQueryChannels(f *testing.F) {
	for _, s := range querySeeds {
		f.Add(s)
	}
	f.Add("tag=" + strings.Repeat("%EF%B7%BA", 40)) // U+FDFA: NFKC makes 3 bytes 30
	f.Add("tag=" + strings.Repeat("%E6%97%A5", 163))
	f.Add("list=" + strings.Repeat("0", 500) + "5001")
	f.Add("tag=a&tag=b&list=1&list=2")
	f.Fuzz(func(t *testing.T, raw string) {
		q := parseQuery(raw)
		tag, list := queryParam(q, "tag"), queryParam(q, "list")
		checkTag(t, tag)
		checkList(t, list)
		if vs := q["tag"]; len(vs) == 1 && len(vs[0]) > channel.MaxNameLen {
			if _, aerr := hashtagChannel(tag, false); aerr != errTagTooLong {
				t.Fatalf("%d-byte tag: %v", len(vs[0]), aerr)
			}
		}
		if vs := q["list"]; len(vs) > 1 {
			if _, _, aerr := listChannel(list); aerr != errListForbidden {
				t.Fatalf("repeated list: %v", aerr)
			}
		}
	})
}

// jsonDepth returns the nesting depth of valid JSON.
func jsonDepth(b []byte) int {
	d := json.NewDecoder(bytes.NewReader(b))
	depth, deepest := 0, 0
	for {
		tok, err := d.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
			deepest = max(deepest, depth)
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// reference decodes b with encoding/json when it can stand in for
// JSON.parse: valid UTF-8, valid JSON, numbers within float64, not deeper
// than jsjson allows.
func reference(b []byte) (any, bool) {
	var v any
	if !utf8.Valid(b) || json.Unmarshal(b, &v) != nil || jsonDepth(b) > jsjson.MaxDepth {
		return nil, false
	}
	return v, true
}

// truthy is JavaScript truthiness of an encoding/json value.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case float64:
		return x != 0
	case string:
		return x != ""
	}
	return true
}

// sameJSON reports whether a value jsjson holds serialises to what
// encoding/json decoded.
func sameJSON(t *testing.T, v *jsjson.Value, ref any) bool {
	t.Helper()
	var got any
	if err := json.Unmarshal(v.AppendJSON(nil), &got); err != nil {
		t.Fatalf("jsjson wrote invalid JSON %q: %v", v.AppendJSON(nil), err)
	}
	return reflect.DeepEqual(got, ref)
}

// WebSocket client messages are classified as Mastodon's server does
// (checked against encoding/json where it parses like JSON.parse), and
// their tag and list lead to a refusal or a subject NATS can carry.
func FuzzClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","stream":"public"}`, `{"type":"unsubscribe","stream":["hashtag"],"tag":"x"}`,
		`{"type":"subscribe","stream":"list","list":{"a":1}}`, `null`, `[]`, `{"type":5}`, `"x"`, `0`, `{}`,
		`{"type":"subscribe","stream":"hashtag:local","tag":"Café"}`, `{"type":"subscribe","stream":"list","list":5001}`,
		`{"type":"subscribe","stream":"list","list":"  +0005001 "}`, `{"type":"subscribe","stream":[],"tag":"a"}`,
		`{"type":"subscribe","type":"unsubscribe","stream":"user"}`, `{"type":"subscribe","stream":["user:notification","x"]}`,
		`{"type":"subscribe","stream":"hashtag","tag":"\ud800"}`, `{"type":"subscribe","stream":"hashtag","tag":["a"]}`,
		`{"type":"subscribe","stream":"hashtag","tag":"` + strings.Repeat("a", 600) + `"}`,
		`{"type":"subscribe","stream":"list","list":1e400}`, `{"type":"subscribe","stream":"list","list":-0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := classifyMessage(b)
		if ok {
			checkTag(t, m.tag)
			checkList(t, m.list)
			for _, p := range []*jsjson.Value{m.tag, m.list} {
				if p != nil && !json.Valid(p.AppendJSON(nil)) {
					t.Fatalf("parameter of %q gives invalid JSON", b)
				}
			}
		}
		ref, refOK := reference(b)
		if !refOK {
			return
		}
		obj, isObj := ref.(map[string]any)
		typ, _ := obj["type"].(string)
		if want := truthy(ref) && isObj && (typ == "subscribe" || typ == "unsubscribe"); ok != want {
			t.Fatalf("classifyMessage(%q) ok = %v, want %v", b, ok, want)
		}
		if !ok {
			return
		}
		if m.subscribe != (typ == "subscribe") {
			t.Fatalf("classifyMessage(%q) subscribe = %v", b, m.subscribe)
		}
		stream := obj["stream"]
		if a, isArr := stream.([]any); isArr {
			stream = nil
			if len(a) > 0 {
				stream = a[0]
			}
		}
		if s, _ := stream.(string); s != m.stream && !strings.ContainsRune(s, utf8.RuneError) {
			t.Fatalf("classifyMessage(%q) stream = %q, want %q", b, m.stream, s)
		}
		for key, p := range map[string]*jsjson.Value{"tag": m.tag, "list": m.list} {
			want, has := obj[key]
			if (p != nil) != has || has && !sameJSON(t, p, want) {
				t.Fatalf("classifyMessage(%q) %s = %v, want %v", b, key, p, want)
			}
		}
	})
}

// envelopeSeeds are Redis messages shaped as Rails publishes them.
func envelopeSeeds(f *testing.F) [][]byte {
	status, err := os.ReadFile("jsjson/testdata/status.json")
	if err != nil {
		f.Fatal(err)
	}
	status = bytes.TrimSpace(status)
	seeds := [][]byte{
		[]byte(`{"event":"update","payload":` + string(status) + `,"queued_at":1714564800000}`),
		[]byte(`{"event":"status.update","payload":` + string(status) + `}`),
		[]byte(`{"event":"delete","payload":"112233445566778899","queued_at":1714564800123}`),
		[]byte(`{"event":"notification","payload":{"id":"1","type":"mention","account":{"id":"2"},"status":` + string(status) + `}}`),
		[]byte(`{"event":"filters_changed"}`), []byte(`{"event":"kill"}`),
		[]byte(`{"event":"announcement.reaction","payload":{"name":"👍","count":2,"announcement_id":"7"}}`),
		[]byte(`{"event":"conversation","payload":{"id":"3","unread":true,"accounts":[],"last_status":null}}`),
		[]byte(`{"payload":"1","event":"delete"}`), []byte(`{"event":"x","payload":1e400}`),
		[]byte(`{"event":"x","payload":0}`), []byte(`{"event":-1e999,"payload":"1"}`), []byte(`{"event":"","payload":"1"}`), []byte(`{"event":["update"],"payload":[]}`),
		[]byte(`{"event":"update","payload":{"a":1,"a":2,"1":0},"queued_at":-1}`),
		[]byte(`{"event":"update","payload":"\ud800","queued_at":"1714564800000"}`),
		[]byte("not json \x00\xff"),
	}
	return seeds
}

// A Redis message decodes the same through the one-pass envelope and the
// full parse, in every field a frame or filter reads; it is dropped exactly
// when Mastodon drops it (not an object, event or payload not truthy,
// checked against encoding/json), and the payload it keeps is the one sent.
func FuzzRedisEnvelope(f *testing.F) {
	for _, s := range envelopeSeeds(f) {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, tree := decodeEvent(data, now), decodeEventTree(data, now)
		if (ev == nil) != (tree == nil) {
			t.Fatalf("fast decode nil=%v, tree decode nil=%v for %q", ev == nil, tree == nil, data)
		}
		if ev != nil {
			if ev.nameStr != tree.nameStr || !bytes.Equal(ev.name.AppendJSON(nil), tree.name.AppendJSON(nil)) ||
				ev.kind != tree.kind || !ev.queuedAt.Equal(tree.queuedAt) || ev.filterable() != tree.filterable() ||
				!bytes.Equal(ev.payloadJSON, tree.payloadJSON) || !bytes.Equal(ev.payloadText, tree.payloadText) ||
				!bytes.Equal(ev.sseFrame(nil).bytes(), tree.sseFrame(nil).bytes()) ||
				!bytes.Equal(ev.wsFrame(`["hashtag","Café"]`, nil).bytes(), tree.wsFrame(`["hashtag","Café"]`, nil).bytes()) {
				t.Fatalf("fast and tree decodes differ for %q", data)
			}
			if !ev.queuedAt.IsZero() && (ev.queuedAt.UnixMilli() <= 0 || ev.queuedAt.UnixMilli() >= 1e15) {
				t.Fatalf("queued_at %v from %q", ev.queuedAt, data)
			}
			if got := controlEvent(data); got != ev.nameStr {
				t.Fatalf("controlEvent(%q) = %q, event %q", data, got, ev.nameStr)
			}
		}
		ref, ok := reference(data)
		if !ok {
			return
		}
		obj, isObj := ref.(map[string]any)
		if want := isObj && truthy(obj["event"]) && truthy(obj["payload"]); (ev != nil) != want {
			t.Fatalf("decodeEvent(%q) kept=%v, want %v", data, ev != nil, want)
		}
		if ev == nil {
			return
		}
		if !sameJSON(t, ev.payload(), obj["payload"]) {
			t.Fatalf("decodeEvent(%q) payload %q", data, ev.payloadJSON)
		}
		if s, isStr := obj["event"].(string); isStr != (ev.name.Kind() == jsjson.String) || isStr && s != ev.nameStr && !strings.ContainsRune(s, utf8.RuneError) {
			t.Fatalf("decodeEvent(%q) event %q", data, ev.nameStr)
		}
	})
}
