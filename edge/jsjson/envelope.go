package jsjson

import "unicode/utf8"

// Envelope is a Rails streaming message {"event":…,"payload":…,"queued_at":…}
// decoded without building a tree.
type Envelope struct {
	// Event is the canonical JSON text (JSON.stringify) of the "event"
	// member, e.g. `"update"`; nil when absent.
	Event []byte
	// Payload is the canonical JSON text of the "payload" member; nil when
	// absent.
	Payload []byte
	// QueuedAt is "queued_at" as JSON.parse yields it (possibly ±Inf or -0)
	// when that member is a number.
	QueuedAt float64
	// HasQueuedAt reports whether "queued_at" is present and a number.
	HasQueuedAt bool
}

// DecodeEnvelope decodes a top-level JSON object, canonicalising the "event"
// and "payload" members as Canonical does and reading "queued_at"; any other
// member is only validated, as the streaming server ignores it. Whenever ok
// is true, Event and Payload equal Parse(src).Get(key).AppendJSON(nil) (nil
// for a missing key) and QueuedAt is Parse(src).Get("queued_at").Num().
//
// ok is false, meaning "use Parse", when src is not a valid JSON object,
// when one of "event", "payload" or "queued_at" occurs more than once, or
// when the value of "event" or "payload" hits one of Canonical's bail-outs.
// Ignored members are checked for syntax and depth only, so duplicate or
// reordered keys and invalid UTF-8 there do not matter (invalid UTF-8 is
// replaced by Parse without changing the structure).
//
// Event and Payload point into one buffer that the call allocates (sized
// from len(src)); they never alias src, stay valid for as long as the caller
// keeps them, and have their capacity clipped so that appending to one
// never overwrites the other.
func DecodeEnvelope(src []byte) (Envelope, bool) {
	env, ok := decodeEnvelope(src)
	if !ok {
		return Envelope{}, false
	}
	return env, true
}

func decodeEnvelope(src []byte) (Envelope, bool) {
	var env Envelope
	i := skipWS(src, 0)
	if i >= len(src) || src[i] != '{' {
		return env, false
	}
	// The members kept are never much longer than the whole source.
	c := canon{src: src, out: reserve(nil, len(src)), depth: 1}
	i = skipWS(src, i+1)
	if i < len(src) && src[i] == '}' {
		return env, skipWS(src, i+1) == len(src)
	}
	var hasEvent, hasPayload, hasQueued bool
	for {
		if i >= len(src) || src[i] != '"' {
			return env, false
		}
		// The key is canonicalised to compare it unescaped, then dropped
		// from the output again.
		ks := len(c.out)
		var ok bool
		if i, ok = c.str(i); !ok {
			return env, false
		}
		const (
			other = iota
			event
			payload
			queuedAt
		)
		which := other
		switch string(c.out[ks:]) { // compared in place, not allocated
		case `"event"`:
			which = event
		case `"payload"`:
			which = payload
		case `"queued_at"`:
			which = queuedAt
		}
		c.out = c.out[:ks]
		i = skipWS(src, i)
		if i >= len(src) || src[i] != ':' {
			return env, false
		}
		i = skipWS(src, i+1)
		switch which {
		case event, payload:
			isEvent := which == event
			if (isEvent && hasEvent) || (!isEvent && hasPayload) {
				return env, false
			}
			vs := len(c.out)
			if i, ok = c.value(i); !ok {
				return env, false
			}
			v := c.out[vs:len(c.out):len(c.out)]
			if isEvent {
				env.Event, hasEvent = v, true
			} else {
				env.Payload, hasPayload = v, true
			}
		case queuedAt:
			if hasQueued {
				return env, false
			}
			hasQueued = true
			if i < len(src) && (src[i] == '-' || isDigit(src[i])) {
				end, _, _, ok := scanNumber(src, i)
				if !ok {
					return env, false
				}
				if env.QueuedAt, ok = parseNumberBytes(src[i:end]); !ok {
					return env, false
				}
				env.HasQueuedAt = true
				i = end
			} else if i, ok = c.skipValue(i); !ok {
				return env, false
			}
		default:
			if i, ok = c.skipValue(i); !ok {
				return env, false
			}
		}
		i = skipWS(src, i)
		if i >= len(src) {
			return env, false
		}
		switch src[i] {
		case ',':
			i = skipWS(src, i+1)
		case '}':
			return env, skipWS(src, i+1) == len(src)
		default:
			return env, false
		}
	}
}

// skipValue checks the JSON value at src[i] as Parse's grammar and depth
// bound would, without producing output, and returns the index after it.
func (c *canon) skipValue(i int) (int, bool) {
	s := c.src
	if i >= len(s) {
		return i, false
	}
	switch s[i] {
	case '"':
		return skipString(s, i)
	case 't':
		return skipLiteral(s, i, "true")
	case 'f':
		return skipLiteral(s, i, "false")
	case 'n':
		return skipLiteral(s, i, "null")
	case '[', '{':
	default:
		end, _, _, ok := scanNumber(s, i)
		return end, ok
	}
	obj := s[i] == '{'
	closer := byte(']')
	if obj {
		closer = '}'
	}
	if c.depth++; c.depth > MaxDepth {
		return i, false
	}
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == closer {
		c.depth--
		return i + 1, true
	}
	for {
		var ok bool
		if obj {
			if i >= len(s) || s[i] != '"' {
				return i, false
			}
			if i, ok = skipString(s, i); !ok {
				return i, false
			}
			i = skipWS(s, i)
			if i >= len(s) || s[i] != ':' {
				return i, false
			}
			i = skipWS(s, i+1)
		}
		if i, ok = c.skipValue(i); !ok {
			return i, false
		}
		i = skipWS(s, i)
		if i >= len(s) {
			return i, false
		}
		switch s[i] {
		case ',':
			i = skipWS(s, i+1)
		case closer:
			c.depth--
			return i + 1, true
		default:
			return i, false
		}
	}
}

func skipLiteral(s []byte, i int, word string) (int, bool) {
	if len(s)-i < len(word) || string(s[i:i+len(word)]) != word {
		return i, false
	}
	return i + len(word), true
}

// skipString checks the string literal at s[i] and returns the index after
// it. Bytes of invalid UTF-8 are accepted: Parse replaces them without
// affecting the structure, because a replaced subpart never includes an
// ASCII byte.
func skipString(s []byte, i int) (int, bool) {
	i++
	for {
		i = scanPlain(s, i)
		if i >= len(s) {
			return i, false
		}
		switch ch := s[i]; {
		case ch == '"':
			return i + 1, true
		case ch >= utf8.RuneSelf:
			i++
		case ch < 0x20:
			return i, false
		default: // backslash
			if i+1 >= len(s) {
				return i, false
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := hex4Bytes(s, i+2); !ok {
					return i, false
				}
				i += 6
			default:
				return i, false
			}
		}
	}
}
