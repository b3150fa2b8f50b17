package jsjson

import "unicode/utf8"

const replacementChar = "\uFFFD"

// invalidPrefixLen returns the length of the UTF-8 sequence at the start of
// s if it is a valid one (ok true), or else the length of its maximal invalid
// subpart (ok false), which the WHATWG decoder used by Node replaces with a
// single U+FFFD. s must not be empty.
func invalidPrefixLen(s string) (n int, ok bool) {
	c := s[0]
	if c < utf8.RuneSelf {
		return 1, true
	}
	need := 0
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c >= 0xE0 && c <= 0xEF:
		need = 2
		if c == 0xE0 {
			lo = 0xA0
		} else if c == 0xED {
			hi = 0x9F // surrogates are not valid UTF-8
		}
	case c >= 0xF0 && c <= 0xF4:
		need = 3
		if c == 0xF0 {
			lo = 0x90
		} else if c == 0xF4 {
			hi = 0x8F
		}
	default:
		return 1, false
	}
	i := 1
	for ; i <= need; i++ {
		if i >= len(s) || s[i] < lo || s[i] > hi {
			// The offending byte is not part of the subpart: the decoder
			// processes it again as the start of the next sequence.
			return i, false
		}
		lo, hi = 0x80, 0xBF
	}
	return i, true
}

// DecodeUTF8 returns s as Node's Buffer#toString("utf8") decodes it: s
// itself when it is valid UTF-8, otherwise a copy with each maximal invalid
// subpart replaced by U+FFFD (the WHATWG decoder's rule, under which
// "\xff\xfe" gives two U+FFFD where strings.ToValidUTF8 gives one).
func DecodeUTF8(s string) string { return decodeUTF8(s) }

// decodeUTF8 is DecodeUTF8.
func decodeUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	dst := make([]byte, 0, len(s)+len(s)/2)
	start := 0
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		n, ok := invalidPrefixLen(s[i:])
		if !ok {
			dst = append(dst, s[start:i]...)
			dst = append(dst, replacementChar...)
			start = i + n
		}
		i += n
	}
	dst = append(dst, s[start:]...)
	return string(dst)
}

// surrogateAt reports whether s starts with a WTF-8 encoded surrogate code
// point and returns it.
func surrogateAt(s string) (rune, bool) {
	if len(s) < 3 || s[0] != 0xED || s[1] < 0xA0 || s[1] > 0xBF || s[2] < 0x80 || s[2] > 0xBF {
		return 0, false
	}
	return 0xD000 | rune(s[1]&0x3F)<<6 | rune(s[2]&0x3F), true
}

// appendWTF8 appends code point r, encoding surrogates as 3-byte WTF-8
// sequences instead of U+FFFD.
func appendWTF8(dst []byte, r rune) []byte {
	if r >= 0xD800 && r <= 0xDFFF {
		return append(dst, 0xED, byte(0x80|(r>>6)&0x3F), byte(0x80|r&0x3F))
	}
	return utf8.AppendRune(dst, r)
}

// AppendWellFormed appends s converted to well-formed UTF-8: every lone
// surrogate (WTF-8) becomes U+FFFD, as when Node writes a JavaScript string
// to a socket or HTTP response. Other invalid bytes, which Parse never
// produces, are replaced like the WHATWG decoder does.
func AppendWellFormed(dst []byte, s string) []byte {
	if utf8.ValidString(s) {
		return append(dst, s...)
	}
	start := 0
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		n := 3
		_, sur := surrogateAt(s[i:])
		if !sur {
			var ok bool
			if n, ok = invalidPrefixLen(s[i:]); ok {
				i += n
				continue
			}
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, replacementChar...)
		i += n
		start = i
	}
	return append(dst, s[start:]...)
}
