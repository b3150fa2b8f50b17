package edge

import (
	"strconv"
	"sync"
	"time"

	"github.com/spillway/spillway/edge/jsjson"
)

// event is one Redis message as Rails published it, decoded once per edge
// process and shared, read-only, by every session that receives it. Frames
// are rendered lazily, once per distinct (transport, stream label, filtered
// result) and reused for every client that needs the same bytes.
type event struct {
	name     *jsjson.Value // the "event" member, normally a string
	nameStr  string        // name when it is a string
	kind     jsjson.Kind   // the payload's kind
	received time.Time     // when this edge decoded it
	queuedAt time.Time     // Rails' queued_at, or the broker's receive time; zero if unknown

	// payloadJSON is JSON.stringify(payload); payloadText is the SSE
	// `data:` text: the same for objects and arrays, the JavaScript
	// String() form otherwise.
	payloadJSON []byte
	payloadText []byte

	// tree is the parsed payload. Pass-through events never need it; the
	// filter worker that owns the event builds it on first use.
	tree   *jsjson.Value
	status *statusInfo // filtering facts, computed once (filter.go)

	mu sync.Mutex
	// frames caches rendered frames by stream label ("" for SSE, else the
	// WebSocket label JSON), then by "filtered" result ("" when the payload
	// goes out unchanged). Users with keyword filters can produce many
	// distinct results, hence maps rather than a scanned list.
	frames map[string]map[string][]byte
	// escapedHead is the WebSocket form of an object payload's text up to
	// its closing brace; built on first use. Guarded by mu.
	escapedHead []byte
}

// decodeEvent parses a Redis message. It returns nil when Mastodon would
// drop the message before any listener sees it: not JSON, not an object, or
// an "event" or "payload" member that is not truthy (§9).
//
// The common case takes jsjson's one-pass envelope decoder, which produces
// the re-serialised payload bytes without building a tree; rare inputs it
// leaves alone (duplicate keys, keys JavaScript reorders) take the full
// parse. Both give identical bytes.
func decodeEvent(data []byte, received time.Time) *event {
	env, ok := jsjson.DecodeEnvelope(data)
	if !ok {
		return decodeEventTree(data, received)
	}
	if env.Event == nil || env.Payload == nil || !truthyJSON(env.Event) || !truthyJSON(env.Payload) {
		return nil
	}
	name, err := jsjson.Parse(env.Event)
	if err != nil {
		return nil
	}
	e := &event{name: name, received: received, payloadJSON: env.Payload}
	e.nameStr, _ = name.Str()
	if env.HasQueuedAt && env.QueuedAt > 0 && env.QueuedAt < 1e15 {
		e.queuedAt = time.UnixMilli(int64(env.QueuedAt))
	}
	switch env.Payload[0] {
	case '{':
		e.kind, e.payloadText = jsjson.Object, env.Payload
	case '[':
		e.kind, e.payloadText = jsjson.Array, env.Payload
	default:
		// A scalar: small, so parsing it for its String() form is cheap.
		v, err := jsjson.Parse(env.Payload)
		if err != nil {
			return nil
		}
		e.kind, e.tree, e.payloadText = v.Kind(), v, v.AppendText(nil)
	}
	return e
}

// truthyJSON applies JavaScript truthiness to canonical JSON text.
func truthyJSON(b []byte) bool {
	switch string(b) {
	case `""`, "0", "false", "null":
		return false
	}
	return true
}

// decodeEventTree is decodeEvent through a full parse.
func decodeEventTree(data []byte, received time.Time) *event {
	v, err := jsjson.Parse(data)
	if err != nil || v.Kind() != jsjson.Object {
		return nil
	}
	name, payload := v.Get("event"), v.Get("payload")
	if !name.Truthy() || !payload.Truthy() {
		return nil
	}
	e := &event{name: name, tree: payload, kind: payload.Kind(), received: received}
	e.nameStr, _ = name.Str()
	if q, ok := v.Get("queued_at").Num(); ok && q > 0 && q < 1e15 {
		e.queuedAt = time.UnixMilli(int64(q))
	}
	e.payloadJSON = payload.AppendJSON(nil)
	e.payloadText = payload.AppendText(nil)
	return e
}

// payload returns the parsed payload. Only the goroutine that owns the
// event for filtering may call it (no lock: it is never shared).
func (e *event) payload() *jsjson.Value {
	if e.tree == nil {
		e.tree, _ = jsjson.Parse(e.payloadJSON)
	}
	return e.tree
}

// controlMessage is what the system channels carry: only the event name
// matters (§5.5), and a payload is not required.
func controlEvent(data []byte) string {
	v, err := jsjson.Parse(data)
	if err != nil {
		return ""
	}
	s, _ := v.Get("event").Str()
	return s
}

// filteredKind reports whether Mastodon filters this event on public and
// hashtag streams (§10, §11).
func (e *event) filterable() bool {
	return e.nameStr == "update" || e.nameStr == "status.update"
}

// sseFrame returns the chunked HTTP bytes of this event for SSE: two chunks,
// "event: <name>\n" and "data: <payload>\n\n", as Mastodon writes them.
// filtered, when non-empty, is the JSON array to append as "filtered".
func (e *event) sseFrame(filtered []byte) []byte {
	return e.frame("", filtered)
}

// wsFrame returns the WebSocket text frame (header included) of this event
// for one stream label.
func (e *event) wsFrame(label string, filtered []byte) []byte {
	return e.frame(label, filtered)
}

func (e *event) frame(label string, filtered []byte) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	byFiltered := e.frames[label]
	if fr, ok := byFiltered[string(filtered)]; ok {
		return fr
	}
	var fr []byte
	if label == "" {
		data := e.payloadText
		if len(filtered) > 0 {
			data = e.withFiltered(filtered)
		}
		fr = renderSSE(e.name, data)
	} else {
		fr = e.renderWS(label, filtered)
	}
	if byFiltered == nil {
		if e.frames == nil {
			e.frames = make(map[string]map[string][]byte, 2)
		}
		byFiltered = make(map[string][]byte, 1)
		e.frames[label] = byFiltered
	}
	byFiltered[string(filtered)] = fr
	return fr
}

// withFiltered returns {...payload, "filtered": filtered}. Filtering only
// appends to object payloads that have no "filtered" key, and "filtered" is
// not an array-index key, so JavaScript puts it last: splicing it before the
// closing brace of the already rendered payload gives the same bytes as
// re-serialising, at a fraction of the cost.
func (e *event) withFiltered(filtered []byte) []byte {
	p := e.payloadText
	out := make([]byte, 0, len(p)+len(filtered)+13)
	out = append(out, p[:len(p)-1]...)
	return appendFilteredTail(out, len(p) > 2, filtered)
}

// appendFilteredTail appends `,"filtered":<filtered>}` (no comma for an
// empty object).
func appendFilteredTail(dst []byte, comma bool, filtered []byte) []byte {
	if comma {
		dst = append(dst, ',')
	}
	dst = append(dst, `"filtered":`...)
	dst = append(dst, filtered...)
	return append(dst, '}')
}

// renderSSE lays out the two HTTP chunks of one SSE event.
func renderSSE(name *jsjson.Value, data []byte) []byte {
	head := append([]byte("event: "), name.AppendText(nil)...)
	head = append(head, '\n')
	body := make([]byte, 0, len(data)+8)
	body = append(body, "data: "...)
	body = append(body, data...)
	body = append(body, "\n\n"...)
	out := make([]byte, 0, len(head)+len(body)+24)
	out = appendChunk(out, head)
	out = appendChunk(out, body)
	return out
}

// appendChunk appends one HTTP/1.1 chunk.
func appendChunk(dst, p []byte) []byte {
	dst = strconv.AppendUint(dst, uint64(len(p)), 16)
	dst = append(dst, '\r', '\n')
	dst = append(dst, p...)
	return append(dst, '\r', '\n')
}

// renderWS builds {"stream":<label>,"event":<name>,"payload":<payload>} as a
// complete WebSocket text frame. Object payloads travel as a JSON string
// holding their JSON text; string payloads as themselves; numbers and
// booleans raw (§8.2 item 7). For objects, the escaped payload text up to its
// closing brace is computed once per event and shared by every label and
// filtered variant (escaping is per character, so it splices). Lock must be
// held.
func (e *event) renderWS(label string, filtered []byte) []byte {
	msg := make([]byte, 0, len(e.payloadText)+len(e.payloadText)/8+len(filtered)+64)
	msg = append(msg, `{"stream":`...)
	msg = append(msg, label...)
	msg = append(msg, `,"event":`...)
	msg = e.name.AppendJSON(msg)
	msg = append(msg, `,"payload":`...)
	switch e.kind {
	case jsjson.Object:
		if e.escapedHead == nil {
			q := jsjson.AppendString(nil, string(e.payloadText[:len(e.payloadText)-1]))
			e.escapedHead = q[:len(q)-1] // keeps the opening quote only
		}
		msg = append(msg, e.escapedHead...)
		if len(filtered) > 0 {
			tail := appendFilteredTail(nil, len(e.payloadText) > 2, filtered)
			msg = append(msg, jsjson.AppendString(nil, string(tail))[1:]...)
		} else {
			msg = append(msg, '}', '"')
		}
	case jsjson.Array:
		msg = jsjson.AppendString(msg, string(e.payloadText))
	default:
		msg = append(msg, e.payloadJSON...)
	}
	msg = append(msg, '}')
	return wsFrameBytes(opText, msg)
}

// WebSocket opcodes used by the edge.
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// wsFrameBytes wraps payload in an unmasked, final server frame.
func wsFrameBytes(op byte, payload []byte) []byte {
	n := len(payload)
	var hdr [10]byte
	hdr[0] = 0x80 | op
	h := 2
	switch {
	case n < 126:
		hdr[1] = byte(n)
	case n <= 0xFFFF:
		hdr[1] = 126
		hdr[2], hdr[3] = byte(n>>8), byte(n)
		h = 4
	default:
		hdr[1] = 127
		for i := 0; i < 8; i++ {
			hdr[9-i] = byte(uint64(n) >> (8 * i))
		}
		h = 10
	}
	out := make([]byte, 0, h+n)
	out = append(out, hdr[:h]...)
	return append(out, payload...)
}
