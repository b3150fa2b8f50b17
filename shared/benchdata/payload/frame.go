package payload

import (
	"bytes"
	"encoding/json"
)

// Frame is the outline of one WebSocket text frame from a Mastodon streaming
// server: an event frame {"stream":[…],"event":"…","payload":…} or an error
// frame {"error":"…","status":N}.
type Frame struct {
	// Event is the event name of an event frame; it aliases the input.
	Event []byte
	// IsError reports an error frame; ErrMsg and Status describe it
	// (Status is 0 when the frame had none, e.g. unsubscribe errors).
	IsError bool
	ErrMsg  string
	Status  int
}

const (
	eventKey = `"event":`
	errorKey = `"error":`
)

// ParseFrame outlines a frame without decoding the (large) payload. ok is
// false for frames that are neither event nor error frames.
func ParseFrame(b []byte) (f Frame, ok bool) {
	// The payload of an event frame is an escaped string, where a key reads
	// \"event\": — so an unescaped "event": can only be the envelope's key.
	if i := bytes.Index(b, []byte(eventKey)); i >= 0 {
		j := skipSpace(b, i+len(eventKey))
		if j < len(b) && b[j] == '"' {
			rest := b[j+1:]
			if k := bytes.IndexByte(rest, '"'); k >= 0 && bytes.IndexByte(rest[:k], '\\') < 0 {
				return Frame{Event: rest[:k]}, true
			}
		}
	}
	if bytes.Contains(b, []byte(errorKey)) {
		var e struct {
			Error  *string  `json:"error"`
			Status *float64 `json:"status"`
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error == nil {
			return Frame{}, false
		}
		f := Frame{IsError: true, ErrMsg: *e.Error}
		if e.Status != nil && *e.Status >= 0 && *e.Status < 1000 {
			f.Status = int(*e.Status)
		}
		return f, true
	}
	return Frame{}, false
}
