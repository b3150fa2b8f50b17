package jsjson

import (
	"math"
	"unicode/utf8"
	"unsafe"
)

const hexDigits = "0123456789abcdef"

// strSafe marks ASCII bytes JSON.stringify copies verbatim.
var strSafe = func() (t [utf8.RuneSelf]bool) {
	for i := 0x20; i < utf8.RuneSelf; i++ {
		t[i] = true
	}
	t['"'] = false
	t['\\'] = false
	return t
}()

// AppendString appends JSON.stringify(s) for a WTF-8 string s: quoted,
// escaping only '"', '\\', control characters (\b \f \n \r \t, others as
// \u00xx) and lone surrogates (\udxxx, lower-case hex). Everything else,
// including '<', '/', DEL, U+2028 and non-ASCII text, is copied raw. Bytes
// that are neither UTF-8 nor WTF-8 surrogates (never produced by Parse) are
// replaced by U+FFFD the way Node decodes them.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	b := unsafe.Slice(unsafe.StringData(s), len(s)) // read only
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if strSafe[c] {
				i = scanPlain(b, i+1)
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"':
				dst = append(dst, '\\', '"')
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		if r, size := utf8.DecodeRuneInString(s[i:]); r != utf8.RuneError || size > 1 {
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		if r, ok := surrogateAt(s[i:]); ok {
			dst = append(dst, '\\', 'u', hexDigits[r>>12], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
			i += 3
		} else {
			n, _ := invalidPrefixLen(s[i:])
			dst = append(dst, replacementChar...)
			i += n
		}
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendJSON appends JSON.stringify(v) (no replacer, no indentation).
// Non-finite numbers become null, as in JavaScript. A nil v (undefined, for
// which JSON.stringify returns undefined rather than a string) appends
// "null", the form undefined takes inside arrays.
func (v *Value) AppendJSON(dst []byte) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	switch v.kind {
	case Bool:
		if v.b {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case Number:
		if math.IsInf(v.num, 0) || v.num != v.num {
			return append(dst, "null"...)
		}
		return AppendNumber(dst, v.num)
	case String:
		return AppendString(dst, v.str)
	case Array:
		dst = append(dst, '[')
		for i := range v.kids {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = v.kids[i].Value.AppendJSON(dst)
		}
		return append(dst, ']')
	case Object:
		dst = append(dst, '{')
		for i := range v.kids {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, v.kids[i].Key)
			dst = append(dst, ':')
			dst = v.kids[i].Value.AppendJSON(dst)
		}
		return append(dst, '}')
	}
	return append(dst, "null"...)
}

// AppendText appends String(v) as Node writes it for the SSE `data:` line of
// a payload: a string verbatim but converted to well-formed UTF-8 (lone
// surrogates become U+FFFD), a number per Number::toString (so 1e400 is
// "Infinity"), "true"/"false", "null", and "undefined" for nil. Arrays and
// objects are written with JSON.stringify, as the streaming server does.
func (v *Value) AppendText(dst []byte) []byte {
	if v == nil {
		return append(dst, "undefined"...)
	}
	switch v.kind {
	case String:
		return AppendWellFormed(dst, v.str)
	case Number:
		return AppendNumber(dst, v.num)
	}
	return v.AppendJSON(dst)
}

// AppendJSONWithMember appends JSON.stringify({...v, [key]: x}) where
// appendValue appends the JSON text of x. This is how the streaming server
// adds "filtered" to a status: an existing key keeps its position and gets
// the new value; a new key goes last, or among the leading array-index keys
// in numeric order if it is one. If v is not an object it is spread as an
// empty object (JavaScript would spread array elements and string code
// units by index; the streaming server never spreads those).
func (v *Value) AppendJSONWithMember(dst []byte, key string, appendValue func(dst []byte) []byte) []byte {
	var kids []Member
	if v.Kind() == Object {
		kids = v.kids
	}
	// pos is the member index at which key is written; replace tells whether
	// it overwrites that member.
	pos, replace := len(kids), false
	for i := range kids {
		if kids[i].Key == key {
			pos, replace = i, true
			break
		}
	}
	if !replace {
		if idx, ok := arrayIndex(key); ok {
			for i := range kids {
				if j, jok := arrayIndex(kids[i].Key); !jok || j > idx {
					pos = i
					break
				}
			}
		}
	}
	dst = append(dst, '{')
	first := true
	writeNew := func() {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = AppendString(dst, key)
		dst = append(dst, ':')
		dst = appendValue(dst)
	}
	for i := range kids {
		if i == pos {
			writeNew()
			if replace {
				continue
			}
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = AppendString(dst, kids[i].Key)
		dst = append(dst, ':')
		dst = kids[i].Value.AppendJSON(dst)
	}
	if pos == len(kids) {
		writeNew()
	}
	return append(dst, '}')
}
