// Package sse parses a server-sent-events body (the text/event-stream format
// used by Mastodon's streaming API) into events and comments, reusing its
// buffers so that a long-lived stream costs no allocation per event.
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Kind says what a parsed item is.
type Kind uint8

const (
	// KindEvent is a dispatched event (terminated by a blank line).
	KindEvent Kind = iota + 1
	// KindComment is a line starting with ':' (Mastodon's ":)" greeting and
	// ":thump" heartbeat).
	KindComment
)

// Item is one event or comment. Its byte slices are only valid until the
// next call to Next.
type Item struct {
	Kind Kind
	// Name is the event name ("message" when the event had no event field).
	Name []byte
	// Data is the event data; several data lines are joined with '\n'.
	Data []byte
	// Comment is the comment text without the leading ':'.
	Comment []byte
}

// DefaultMaxLine bounds one line (and so one event's data line) when the
// caller passes no limit.
const DefaultMaxLine = 1 << 20

// ErrLineTooLong is returned when a line exceeds the parser's limit.
var ErrLineTooLong = errors.New("sse: line too long")

// Parser reads items from a stream body.
type Parser struct {
	sc      *bufio.Scanner
	name    []byte
	data    []byte
	hasData bool
}

// NewParser returns a parser reading from r. initialBuf is the starting size
// of the line buffer (it grows up to maxLine as needed); small values keep
// idle connections cheap.
func NewParser(r io.Reader, initialBuf, maxLine int) *Parser {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	if initialBuf <= 0 || initialBuf > maxLine {
		initialBuf = min(4096, maxLine)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, initialBuf), maxLine)
	sc.Split(splitLine)
	return &Parser{sc: sc}
}

// splitLine splits on "\r\n", "\n" or a lone "\r", the three line endings the
// event-stream format allows.
func splitLine(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if len(data) == 0 {
		return 0, nil, nil
	}
	i := bytes.IndexAny(data, "\r\n")
	if i < 0 {
		if atEOF {
			// An unterminated last line is discarded by the SSE algorithm,
			// but it must still be consumed.
			return len(data), nil, nil
		}
		return 0, nil, nil
	}
	if data[i] == '\n' {
		return i + 1, data[:i], nil
	}
	if i+1 < len(data) {
		if data[i+1] == '\n' {
			return i + 2, data[:i], nil
		}
		return i + 1, data[:i], nil
	}
	if atEOF {
		return i + 1, data[:i], nil
	}
	return 0, nil, nil // need one more byte to tell "\r" from "\r\n"
}

// Next returns the next event or comment. It returns io.EOF at the end of a
// cleanly ended stream; an event not terminated by a blank line is dropped,
// as the event-stream format requires.
func (p *Parser) Next() (Item, error) {
	for p.sc.Scan() {
		line := p.sc.Bytes()
		if len(line) == 0 {
			if !p.hasData {
				p.name = p.name[:0]
				continue
			}
			if len(p.name) == 0 {
				p.name = append(p.name, "message"...)
			}
			it := Item{Kind: KindEvent, Name: p.name, Data: p.data}
			// Reset lengths only: the returned slices stay valid until the
			// next call overwrites the arrays.
			p.name = p.name[:0]
			p.data = p.data[:0]
			p.hasData = false
			return it, nil
		}
		if line[0] == ':' {
			return Item{Kind: KindComment, Comment: line[1:]}, nil
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			p.name = append(p.name[:0], value...)
		case "data":
			if p.hasData {
				p.data = append(p.data, '\n')
			}
			p.data = append(p.data, value...)
			p.hasData = true
		}
		// "id", "retry" and unknown fields carry nothing this tool needs.
	}
	if err := p.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Item{}, ErrLineTooLong
		}
		return Item{}, fmt.Errorf("sse: read: %w", err)
	}
	return Item{}, io.EOF
}
