package channel

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultPrefix is the subject prefix used when Subjects.Prefix is empty.
const DefaultPrefix = "mastodon"

// Errors returned (wrapped) by [ValidPrefix] and [Subjects.Parse].
var (
	ErrInvalidPrefix = errors.New("invalid subject prefix")
	ErrNotChannel    = errors.New("not a channel subject")
)

// Subjects maps channel names to NATS subjects under Prefix.
//
// Layout (P is the prefix):
//
//	P.ch.<token>.<token>...   one subject per channel Name, see Of
//	P.ctl.interest            control subject edges publish interest on
//	P.ctl.resync              control subject the broker asks for all interest on
//
// Channel subjects always have "ch" right after the prefix and control
// subjects "ctl", so no Name, however odd (e.g. "ctl:interest"), can produce
// a control subject.
//
// The prefix is not validated here; check configuration with [ValidPrefix].
// An empty Prefix means [DefaultPrefix].
type Subjects struct {
	Prefix string
}

func (s Subjects) prefix() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// Of returns the subject of a channel: Prefix + ".ch." followed by the
// name's ':'-separated tokens joined with '.', each token encoded as:
//
//   - bytes in [A-Za-z0-9_-] are kept;
//   - every other byte (including '.', '*', '>', '%', whitespace, non-ASCII
//     and invalid UTF-8) becomes %XX with uppercase hex;
//   - an empty token becomes a single "%" (a bare '%' cannot otherwise occur,
//     as an encoded '%' is always followed by two hex digits).
//
// So "timeline:hashtag:café" → "mastodon.ch.timeline.hashtag.caf%C3%A9" and
// "timeline:hashtag:" → "mastodon.ch.timeline.hashtag.%". The result is a
// valid literal NATS subject for every Name (given a valid prefix), distinct
// Names give distinct subjects, and [Subjects.Parse] reverses it exactly.
// It is at most [MaxSubjectLen] bytes long when the Name passes [CheckName];
// callers must check before subscribing or publishing, since NATS closes
// the connection of a client sending a longer one.
// The rule is the same for every kind of channel so there is no table to
// keep in sync.
func (s Subjects) Of(n Name) string {
	p := s.prefix()
	size := len(p) + len(".ch.")
	empty := true // the current token has no bytes yet
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c == ':':
			if empty {
				size++
			}
			size++
			empty = true
			continue
		case isPlain(c):
			size++
		default:
			size += 3
		}
		empty = false
	}
	if empty {
		size++
	}

	var b strings.Builder
	b.Grow(size)
	b.WriteString(p)
	b.WriteString(".ch.")
	empty = true
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c == ':':
			if empty {
				b.WriteByte('%')
			}
			b.WriteByte('.')
			empty = true
			continue
		case isPlain(c):
			b.WriteByte(c)
		default:
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xF])
		}
		empty = false
	}
	if empty {
		b.WriteByte('%')
	}
	return b.String()
}

// Parse is the inverse of [Subjects.Of]. It accepts only subjects Of can
// produce for this prefix: anything else (other prefix, control subjects,
// lowercase or superfluous %XX escapes, stray characters) is an error
// wrapping [ErrNotChannel], which keeps the mapping a bijection.
func (s Subjects) Parse(subject string) (Name, error) {
	head := s.prefix() + ".ch."
	if !strings.HasPrefix(subject, head) {
		return "", fmt.Errorf("channel: subject %q lacks %q: %w", subject, head, ErrNotChannel)
	}
	rest := subject[len(head):]
	out := make([]byte, 0, len(rest))
	start := 0
	for i := 0; i <= len(rest); i++ {
		if i < len(rest) && rest[i] != '.' {
			continue
		}
		tok := rest[start:i]
		if start > 0 {
			out = append(out, ':')
		}
		var err error
		if out, err = decodeToken(out, tok); err != nil {
			return "", fmt.Errorf("channel: subject %q: %w", subject, err)
		}
		start = i + 1
	}
	return Name(out), nil
}

func decodeToken(out []byte, tok string) ([]byte, error) {
	switch tok {
	case "":
		return out, fmt.Errorf("empty token: %w", ErrNotChannel)
	case "%":
		return out, nil
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if isPlain(c) {
			out = append(out, c)
			continue
		}
		if c != '%' || i+2 >= len(tok) {
			return out, fmt.Errorf("bad byte %q in token %q: %w", c, tok, ErrNotChannel)
		}
		hi, ok1 := unhex(tok[i+1])
		lo, ok2 := unhex(tok[i+2])
		d := hi<<4 | lo
		if !ok1 || !ok2 || isPlain(d) {
			return out, fmt.Errorf("bad escape %q in token %q: %w", tok[i:i+3], tok, ErrNotChannel)
		}
		out = append(out, d)
		i += 2
	}
	return out, nil
}

// Timelines returns the wildcard Prefix + ".ch.timeline.>". It matches Of(n)
// exactly when n starts with "timeline:" (such a name always has at least one
// token after "timeline", possibly the empty-token "%"); it does not match
// the bare name "timeline" nor any control subject.
func (s Subjects) Timelines() string {
	return s.prefix() + ".ch.timeline.>"
}

// Interest returns Prefix + ".ctl.interest", the control subject on which
// edges announce channel interest. It never equals any Of result, since those
// have "ch" where this has "ctl".
func (s Subjects) Interest() string {
	return s.prefix() + ".ctl.interest"
}

// Resync returns Prefix + ".ctl.resync", the control subject on which a
// (re)started broker asks every edge to announce all of its interest again.
// Like Interest, it never equals any Of result.
func (s Subjects) Resync() string {
	return s.prefix() + ".ctl.resync"
}

// ValidPrefix checks a subject prefix: one or more '.'-separated, non-empty
// tokens of [A-Za-z0-9_-], at most [MaxPrefixLen] bytes in all.
func ValidPrefix(p string) error {
	if p == "" {
		return fmt.Errorf("channel: empty prefix: %w", ErrInvalidPrefix)
	}
	if len(p) > MaxPrefixLen {
		return fmt.Errorf("channel: prefix of %d bytes exceeds %d: %w", len(p), MaxPrefixLen, ErrInvalidPrefix)
	}
	tokenStart := true
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '.':
			if tokenStart {
				return fmt.Errorf("channel: prefix %q has an empty token: %w", p, ErrInvalidPrefix)
			}
			tokenStart = true
		case isPlain(c):
			tokenStart = false
		default:
			return fmt.Errorf("channel: prefix %q contains %q: %w", p, c, ErrInvalidPrefix)
		}
	}
	if tokenStart {
		return fmt.Errorf("channel: prefix %q has an empty token: %w", p, ErrInvalidPrefix)
	}
	return nil
}

// isPlain reports whether c is kept as-is in a subject token.
func isPlain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
