package edge

import (
	"bytes"
	"sync"
	"time"
	"unsafe"

	"github.com/spillway/spillway/edge/internal/wsframe"
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
	frames map[string]map[string]frame
	// escapedHead is the WebSocket form of an object payload's text up to
	// its closing brace; built on first use. Guarded by mu.
	escapedHead []byte
}

// decodeEvent parses a Redis message. It returns nil when Mastodon would
// drop the message before any listener sees it: not JSON, not an object, or
// an "event" or "payload" member that is not truthy.
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
	if string(env.Event) == "null" || string(env.Payload) == "null" {
		// Canonical null may stand for a number beyond float64 (1e400
		// parses as Infinity, which is truthy): let the parse decide.
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

// controlEvent reads the event name of a system-channel message: only the
// name matters there, and a payload is not required.
func controlEvent(data []byte) string {
	v, err := jsjson.Parse(data)
	if err != nil {
		return ""
	}
	s, _ := v.Get("event").Str()
	return s
}

// filterable reports whether Mastodon filters this event on public and
// hashtag streams: update and status.update only.
func (e *event) filterable() bool {
	return e.nameStr == "update" || e.nameStr == "status.update"
}

// frame is the bytes of one event for one client. Most frames are a single
// slice (body) shared by every client that gets them. A frame carrying one
// viewer's own keyword-filter result is a small head and tail of its own
// around a body every such variant shares (the payload text), written with
// one writev: a busy public stream renders hundreds of distinct results per
// event, and none of them copies the 3 KB payload.
type frame struct{ head, body, tail []byte }

func (f frame) len() int { return len(f.head) + len(f.body) + len(f.tail) }

// sseFrame returns the chunked HTTP bytes of this event for SSE: two chunks,
// "event: <name>\n" and "data: <payload>\n\n", as Mastodon writes them.
// filtered, when non-empty, is the JSON array to append as "filtered".
func (e *event) sseFrame(filtered []byte) frame {
	return e.frame("", filtered)
}

// wsFrame returns the WebSocket text frame (header included) of this event
// for one stream label.
func (e *event) wsFrame(label string, filtered []byte) frame {
	return e.frame(label, filtered)
}

func (e *event) frame(label string, filtered []byte) frame {
	e.mu.Lock()
	defer e.mu.Unlock()
	byFiltered := e.frames[label]
	if fr, ok := byFiltered[string(filtered)]; ok {
		return fr
	}
	var fr frame
	switch {
	case label == "" && e.inParts(filtered):
		fr = e.renderSSEParts(filtered)
	case label == "":
		fr.body = e.renderSSE(filtered)
	case e.inParts(filtered):
		fr = e.renderWSParts(label, filtered)
	default:
		fr.body = e.renderWS(label, filtered)
	}
	if byFiltered == nil {
		if e.frames == nil {
			e.frames = make(map[string]map[string]frame, 2)
		}
		byFiltered = make(map[string]frame, 1)
		e.frames[label] = byFiltered
	}
	byFiltered[string(filtered)] = fr
	return fr
}

// partsMin is the payload size from which frames are written in parts:
// below it one copy costs less than the extra iovecs.
const partsMin = 256

// inParts reports whether this event's frames are written in parts, the
// payload text (SSE) or its escaped form (WebSocket) shared by every frame
// of the event without a copy: object payloads of some size, as statuses
// and notifications are.
func (e *event) inParts(filtered []byte) bool {
	return e.kind == jsjson.Object && len(e.payloadText) >= partsMin
}

// renderSSEParts lays an SSE event out as a small head of its own (the
// "event" chunk and the size line and "data: " of the data chunk), the
// payload text, shared, and a small tail of its own (the "filtered" result
// spliced in, when there is one, and the chunk's end). Lock must be held.
func (e *event) renderSSEParts(filtered []byte) frame {
	p := e.payloadText
	body := p
	if len(filtered) > 0 {
		body = p[:len(p)-1]
	}
	buf := make([]byte, 0, sseHeadRoom+len(`,"filtered":}`)+len(filtered)+4)
	buf = e.appendSSEHead(buf, e.dataLen(filtered))
	head := buf[:len(buf):len(buf)]
	tail := buf[len(buf):]
	if len(filtered) > 0 {
		tail = appendFilteredTail(tail, len(p) > 2, filtered)
	}
	tail = append(tail, '\n', '\n', '\r', '\n')
	return frame{head: head, body: body, tail: tail}
}

// renderWSParts lays a WebSocket event out as a small head of its own (the
// frame header and the message up to the payload), the escaped payload
// text up to its closing brace, shared by every label and result, and a
// small tail of its own (the "filtered" result, when there is one, and the
// message's end). Lock must be held.
func (e *event) renderWSParts(label string, filtered []byte) frame {
	esc := e.escapedPayload()
	buf := make([]byte, wsframe.HeaderRoom, wsframe.HeaderRoom+len(label)+2*len(filtered)+96)
	buf = e.appendWSPrefix(buf, label)
	head := buf[:len(buf):len(buf)]
	tail := buf[len(buf):]
	if len(filtered) > 0 {
		tail = e.appendEscapedTail(tail, filtered)
	} else {
		tail = append(tail, '}', '"')
	}
	tail = append(tail, '}')
	n := len(head) - wsframe.HeaderRoom + len(esc) + len(tail)
	h := wsframe.PutHeader(head[:wsframe.HeaderRoom], wsframe.OpText, n)
	return frame{head: head[wsframe.HeaderRoom-h:], body: esc, tail: tail}
}

// appendData appends the SSE data text: the payload, with filtered spliced
// in when non-empty, giving {...payload, "filtered": filtered}. Filtering
// only appends to object payloads that have no "filtered" key, and
// "filtered" is not an array-index key, so JavaScript puts it last: splicing
// it before the closing brace of the already rendered payload gives the same
// bytes as re-serialising, at a fraction of the cost.
func (e *event) appendData(dst, filtered []byte) []byte {
	p := e.payloadText
	if len(filtered) == 0 {
		return append(dst, p...)
	}
	dst = append(dst, p[:len(p)-1]...)
	return appendFilteredTail(dst, len(p) > 2, filtered)
}

// dataLen is len(e.appendData(nil, filtered)).
func (e *event) dataLen(filtered []byte) int {
	n := len(e.payloadText)
	if len(filtered) > 0 {
		n += len(`"filtered":`) + len(filtered)
		if len(e.payloadText) > 2 {
			n++
		}
	}
	return n
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

// renderSSE lays out the two HTTP chunks of one SSE event,
// "event: <name>\n" and "data: <payload>\n\n", in a single allocation:
// with thousands of distinct "filtered" results per event on a busy edge,
// each extra copy of a 3.5 KB payload is garbage the collector pays for.
func (e *event) renderSSE(filtered []byte) []byte {
	dataLen := e.dataLen(filtered)
	out := make([]byte, 0, sseHeadRoom+dataLen+4)
	out = e.appendSSEHead(out, dataLen)
	out = e.appendData(out, filtered)
	return append(out, '\n', '\n', '\r', '\n')
}

// sseHeadRoom bounds what appendSSEHead writes besides the event name.
const sseHeadRoom = 64 + 2*(16+4) + len("event: \n") + len("data: ")

// appendSSEHead appends an SSE event up to its data text: the whole
// "event: <name>\n" chunk, then the size line of the data chunk, whose data
// text is dataLen bytes, and "data: ". The rest is the data text and
// "\n\n\r\n".
func (e *event) appendSSEHead(dst []byte, dataLen int) []byte {
	var nameBuf [64]byte
	name := e.name.AppendText(nameBuf[:0])
	dst = appendChunkSize(dst, len("event: ")+len(name)+1)
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	dst = append(dst, '\n', '\r', '\n')
	dst = appendChunkSize(dst, len("data: ")+dataLen+2)
	return append(dst, "data: "...)
}

// appendWSPrefix appends a WebSocket message up to its payload:
// {"stream":<label>,"event":<name>,"payload":
func (e *event) appendWSPrefix(dst []byte, label string) []byte {
	dst = append(dst, `{"stream":`...)
	dst = append(dst, label...)
	dst = append(dst, `,"event":`...)
	dst = e.name.AppendJSON(dst)
	return append(dst, `,"payload":`...)
}

// appendEscapedTail appends the end of an object payload's JSON string with
// filtered spliced in: the escaped `,"filtered":<filtered>}` and the closing
// quote.
func (e *event) appendEscapedTail(dst, filtered []byte) []byte {
	var tailBuf [256]byte
	tail := appendFilteredTail(tailBuf[:0], len(e.payloadText) > 2, filtered)
	at := len(dst)
	dst = jsjson.AppendString(dst, string(tail))
	return append(dst[:at], dst[at+1:]...) // drop the opening quote
}

// escapedPayload returns the WebSocket form of an object payload's text up
// to its closing brace (a JSON string lacking its end), built once per
// event. Lock must be held.
func (e *event) escapedPayload() []byte {
	if e.escapedHead == nil {
		// Sized for what escaping adds to quotes and backslashes, the
		// characters JSON text is full of, so the buffer is not regrown
		// as it fills (control characters are rare in JSON text).
		p := e.payloadText[:len(e.payloadText)-1]
		size := len(p) + bytes.Count(p, quote) + bytes.Count(p, backslash) + 16
		q := jsjson.AppendString(make([]byte, 0, size), readOnlyString(p))
		e.escapedHead = q[:len(q)-1] // keeps the opening quote only
	}
	return e.escapedHead
}

// renderWS builds {"stream":<label>,"event":<name>,"payload":<payload>} as a
// complete WebSocket text frame in one allocation: the message is written
// after wsframe.HeaderRoom bytes and the header filled in afterwards. Object
// payloads travel as a JSON string holding their JSON text; string payloads
// as themselves; numbers and booleans raw. For objects, the
// escaped payload text up to its closing brace is computed once per event
// and shared by every label and filtered variant (escaping is per
// character, so it splices). Lock must be held.
func (e *event) renderWS(label string, filtered []byte) []byte {
	var esc []byte
	if e.kind == jsjson.Object {
		esc = e.escapedPayload()
	}
	size := wsframe.HeaderRoom + len(label) + 2*len(filtered) + 64
	switch e.kind {
	case jsjson.Object:
		size += len(esc)
	case jsjson.Array:
		size += len(e.payloadText) + len(e.payloadText)/8
	default:
		size += len(e.payloadJSON)
	}
	msg := e.appendWSPrefix(make([]byte, wsframe.HeaderRoom, size), label)
	switch e.kind {
	case jsjson.Object:
		msg = append(msg, esc...)
		if len(filtered) > 0 {
			msg = e.appendEscapedTail(msg, filtered)
		} else {
			msg = append(msg, '}', '"')
		}
	case jsjson.Array:
		msg = jsjson.AppendString(msg, readOnlyString(e.payloadText))
	default:
		msg = append(msg, e.payloadJSON...)
	}
	msg = append(msg, '}')
	h := wsframe.PutHeader(msg[:wsframe.HeaderRoom], wsframe.OpText, len(msg)-wsframe.HeaderRoom)
	return msg[wsframe.HeaderRoom-h:]
}

var (
	quote     = []byte{'"'}
	backslash = []byte{'\\'}
)

// readOnlyString views b as a string without copying it. b must never be
// written again: payload texts are immutable once decoded.
func readOnlyString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
