package jsjson

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// maxOpenKeys bounds the named keys Canonical keeps for duplicate
// detection: those of the object being read plus those of the objects
// enclosing it. A fixed array keeps the pass free of allocations, and the
// bound keeps the duplicate scan linear in the input. Mastodon's deepest
// path (status, reblog, account, field) has fewer than 100.
const maxOpenKeys = 192

// Canonical appends JSON.stringify(JSON.parse(src)) to dst in one pass,
// without building a tree: the bytes equal those of Parse(src) followed by
// AppendJSON whenever ok is true.
//
// ok is false, and dst is returned with its length unchanged (bytes past it
// within its capacity may have been overwritten), when src is not valid JSON
// or when it uses something the fast path leaves to Parse:
//
//   - an object with duplicate keys;
//   - an object with an array-index key ("0".."4294967294" in canonical
//     form, after unescaping) that follows a non-index key or a larger index
//     key, i.e. whenever JavaScript would reorder the members;
//   - more than 192 named (non-index) keys in an object and the objects
//     enclosing it, counted together;
//   - nesting deeper than MaxDepth (which Parse rejects too).
//
// Invalid UTF-8 inside strings is handled (each maximal invalid subpart
// becomes U+FFFD, as Parse does); outside strings it is a syntax error.
//
// Canonical first makes room for len(src)+16 bytes after len(dst) (the
// output is rarely longer), so a dst with that much spare capacity is
// never reallocated. The spare capacity of dst must not overlap src.
func Canonical(dst, src []byte) (out []byte, ok bool) {
	c := canon{src: src, out: reserve(dst, len(src))}
	i, ok := c.value(skipWS(src, 0))
	if !ok || skipWS(src, i) != len(src) {
		return dst, false
	}
	return c.out, true
}

// reserve returns dst with room for n more bytes plus slack. Canonical text
// is never longer than its source except for a few number forms and invalid
// UTF-8, so one allocation usually suffices and str can copy eight bytes at
// a time.
func reserve(dst []byte, n int) []byte {
	if n+16 > cap(dst)-len(dst) {
		dst = slices.Grow(dst, n+16)
	}
	return dst
}

// canon is the state of one Canonical pass; positions in src are passed
// along as arguments so that they stay in registers. keys[:nkeys] holds the
// named keys of the objects currently open (each object's from its own
// base index) as offsets of their canonical text in out, which is their
// identity: two JS strings are equal exactly when their JSON.stringify
// texts are.
type canon struct {
	src   []byte
	out   []byte
	depth int
	nkeys int
	keys  [maxOpenKeys]keyEnt
}

type keyEnt struct {
	fp         uint64
	start, end int32
}

// skipWS returns the index of the first non-whitespace byte at or after i.
func skipWS(s []byte, i int) int {
	for i < len(s) && s[i] <= ' ' && isSpace[s[i]] {
		i++
	}
	return i
}

var isSpace = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// value appends the canonical form of the value at src[i] and returns the
// index after it.
func (c *canon) value(i int) (int, bool) {
	s := c.src
	if i >= len(s) {
		return i, false
	}
	switch s[i] {
	case '"':
		return c.str(i)
	case '{':
		return c.object(i)
	case '[':
		return c.array(i)
	case 't':
		return c.literal(i, "true")
	case 'f':
		return c.literal(i, "false")
	case 'n':
		return c.literal(i, "null")
	}
	return c.number(i)
}

func (c *canon) literal(i int, word string) (int, bool) {
	if len(c.src)-i < len(word) || string(c.src[i:i+len(word)]) != word {
		return i, false
	}
	c.out = append(c.out, word...)
	return i + len(word), true
}

func (c *canon) array(i int) (int, bool) {
	if c.depth++; c.depth > MaxDepth {
		return i, false
	}
	s := c.src
	c.out = append(c.out, '[')
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == ']' {
		c.out = append(c.out, ']')
		c.depth--
		return i + 1, true
	}
	for {
		var ok bool
		if i, ok = c.value(i); !ok {
			return i, false
		}
		i = skipWS(s, i)
		if i >= len(s) {
			return i, false
		}
		switch s[i] {
		case ',':
			c.out = append(c.out, ',')
			i = skipWS(s, i+1)
		case ']':
			c.out = append(c.out, ']')
			c.depth--
			return i + 1, true
		default:
			return i, false
		}
	}
}

func (c *canon) object(i int) (int, bool) {
	if c.depth++; c.depth > MaxDepth {
		return i, false
	}
	s := c.src
	c.out = append(c.out, '{')
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == '}' {
		c.out = append(c.out, '}')
		c.depth--
		return i + 1, true
	}
	base := c.nkeys
	// mask has bit fp>>58 set for every named key so far, so most keys
	// skip the duplicate scan altogether.
	var mask uint64
	lastIndex := int64(-1)
	named := false
	for {
		if i >= len(s) || s[i] != '"' {
			return i, false
		}
		ks := len(c.out)
		var ok bool
		if i, ok = c.str(i); !ok {
			return i, false
		}
		key := c.out[ks:]
		if idx, isIdx := arrayIndexBytes(key); isIdx {
			// JavaScript lists index keys first in ascending order;
			// they may pass only if they already are. This also rejects
			// repeated index keys, so they need no fingerprint.
			if named || int64(idx) <= lastIndex {
				return i, false
			}
			lastIndex = int64(idx)
		} else {
			named = true
			fp := keyFingerprint(key)
			bit := uint64(1) << (fp >> 58)
			if mask&bit != 0 {
				for _, k := range c.keys[base:c.nkeys] {
					if k.fp == fp && bytes.Equal(c.out[k.start:k.end], key) {
						return i, false
					}
				}
			}
			mask |= bit
			if c.nkeys == len(c.keys) || len(c.out) > math.MaxInt32 {
				return i, false
			}
			c.keys[c.nkeys] = keyEnt{fp: fp, start: int32(ks), end: int32(len(c.out))}
			c.nkeys++
		}
		i = skipWS(s, i)
		if i >= len(s) || s[i] != ':' {
			return i, false
		}
		c.out = append(c.out, ':')
		// Most values are strings: skip value's dispatch for them.
		if i = skipWS(s, i+1); i < len(s) && s[i] == '"' {
			i, ok = c.str(i)
		} else {
			i, ok = c.value(i)
		}
		if !ok {
			return i, false
		}
		i = skipWS(s, i)
		if i >= len(s) {
			return i, false
		}
		switch s[i] {
		case ',':
			c.out = append(c.out, ',')
			i = skipWS(s, i+1)
		case '}':
			c.out = append(c.out, '}')
			c.nkeys = base
			c.depth--
			return i + 1, true
		default:
			return i, false
		}
	}
}

// keyFingerprint hashes a key's canonical text (quotes included, so at
// least 2 bytes) from its length and its first and last 8 bytes.
func keyFingerprint(k []byte) uint64 {
	n := len(k)
	var h uint64
	if n >= 8 {
		h = binary.LittleEndian.Uint64(k)*0x9E3779B97F4A7C15 ^ binary.LittleEndian.Uint64(k[n-8:])
	} else {
		for _, b := range k {
			h = h<<8 | uint64(b)
		}
	}
	return (h ^ uint64(n)) * 0xFF51AFD7ED558CCD
}

// arrayIndexBytes is arrayIndex for a key's canonical text, quotes
// included (an array index has no escapes, so the rest is the key itself).
// The first test is inlined: keys rarely start with a digit.
func arrayIndexBytes(k []byte) (uint32, bool) {
	if len(k) < 3 || k[1] > '9' || k[1] < '0' {
		return 0, false
	}
	return arrayIndex(unsafe.String(&k[1], len(k)-2))
}

// scanNumber checks the number literal starting at s[i] and returns its end.
// simple reports an integer without fraction or exponent, nd its digit count.
func scanNumber(s []byte, i int) (end int, simple bool, nd int, ok bool) {
	if i < len(s) && s[i] == '-' {
		i++
	}
	d := i
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i++; i < len(s) && isDigit(s[i]); i++ {
		}
	default:
		return i, false, 0, false
	}
	nd = i - d
	simple = true
	if i < len(s) && s[i] == '.' {
		simple = false
		i++
		if i >= len(s) || !isDigit(s[i]) {
			return i, false, 0, false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		simple = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || !isDigit(s[i]) {
			return i, false, 0, false
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i, simple, nd, true
}

// parseNumberBytes converts a literal checked by scanNumber to the float64
// JSON.parse yields (±Inf beyond the double range).
func parseNumberBytes(lit []byte) (float64, bool) {
	f, err := strconv.ParseFloat(unsafe.String(&lit[0], len(lit)), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return f, true
}

func (c *canon) number(i int) (int, bool) {
	s := c.src
	end, simple, nd, ok := scanNumber(s, i)
	if !ok {
		return end, false
	}
	// An integer of up to 15 digits is exact as a double and printed back
	// as the same digits; only "-0" changes (to "0").
	if (simple && nd <= 15 && !(s[i] == '-' && s[i+1] == '0')) || (!simple && canonicalDecimal(s[i:end])) {
		c.out = append(c.out, s[i:end]...)
		return end, true
	}
	f, ok := parseNumberBytes(s[i:end])
	if !ok {
		return end, false
	}
	if math.IsInf(f, 0) {
		c.out = append(c.out, "null"...)
	} else {
		c.out = AppendNumber(c.out, f)
	}
	// The text may have grown (1e20 has 21 digits): keep str's room.
	c.out = reserve(c.out, len(s)-end)
	return end, true
}

// canonicalDecimal reports whether a number literal with a fraction is
// already what Number::toString prints for it: no exponent, no trailing
// zero, at most 15 significant digits (which a double always reproduces as
// the shortest round-trip digits) and, below 1, at most five zeros after
// the point (from 1e-7 down the output is in exponent form).
func canonicalDecimal(lit []byte) bool {
	if lit[0] == '-' {
		lit = lit[1:]
	}
	dot := bytes.IndexByte(lit, '.')
	if dot < 0 || lit[len(lit)-1] == '0' || bytes.ContainsAny(lit, "eE") {
		return false
	}
	sig := len(lit) - 1
	if lit[0] == '0' { // "0.ddd": leading zeros of the fraction do not count
		z := 0
		for z < len(lit)-2 && lit[2+z] == '0' {
			z++
		}
		if z > 5 {
			return false
		}
		sig = len(lit) - 2 - z
	}
	return sig <= 15
}

const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// scanPlain returns the index of the first byte at or after i that is '"',
// '\\', a control character or non-ASCII (or len(s)), eight bytes at a time.
func scanPlain(s []byte, i int) int {
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		q := x ^ (swarLo * '"')
		b := x ^ (swarLo * '\\')
		// Each term flags a byte by its high bit; borrows only create false
		// flags above a true one, so the lowest flag is exact.
		m := ((q-swarLo)&^q | (b-swarLo)&^b | (x-swarLo*0x20)&^x | x) & swarHi
		if m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			return i
		}
	}
	return i
}

// str appends the canonical form of the string literal at src[i] and
// returns the index after it.
func (c *canon) str(i int) (int, bool) {
	s := c.src
	out := append(c.out, '"')
	i++
	for {
		// Copy eight bytes at a time before looking at them, then keep
		// those before the first special one. reserve leaves the room.
		for i+8 <= len(s) && cap(out)-len(out) >= 8 {
			x := binary.LittleEndian.Uint64(s[i:])
			n := len(out)
			binary.LittleEndian.PutUint64(out[n:n+8], x)
			q := x ^ (swarLo * '"')
			b := x ^ (swarLo * '\\')
			m := ((q-swarLo)&^q | (b-swarLo)&^b | (x-swarLo*0x20)&^x | x) & swarHi
			if m != 0 {
				k := bits.TrailingZeros64(m) >> 3
				out = out[:n+k]
				i += k
				break
			}
			out = out[:n+8]
			i += 8
		}
		for i < len(s) && plainASCII[s[i]] {
			out = append(out, s[i])
			i++
		}
		if i >= len(s) {
			return i, false
		}
		switch ch := s[i]; {
		case ch == '"':
			c.out = append(out, '"')
			return i + 1, true
		case ch >= utf8.RuneSelf:
			if r, size := utf8.DecodeRune(s[i:]); r != utf8.RuneError || size > 1 {
				out = append(out, s[i:i+size]...)
				i += size
				continue
			}
			n, _ := invalidPrefixLen(unsafe.String(&s[i], len(s)-i))
			out = append(out, replacementChar...)
			i += n
			// Up to two bytes longer than the source.
			out = reserve(out, len(s)-i)
			continue
		case ch < 0x20:
			return i, false
		}
		// Backslash.
		if i+1 >= len(s) {
			return i, false
		}
		switch e := s[i+1]; e {
		case '"', '\\', 'b', 'f', 'n', 'r', 't':
			out = append(out, '\\', e)
			i += 2
		case '/':
			out = append(out, '/')
			i += 2
		case 'u':
			r, ok := hex4Bytes(s, i+2)
			if !ok {
				return i, false
			}
			i += 6
			if r >= 0xD800 && r <= 0xDBFF && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
				if lo, ok := hex4Bytes(s, i+2); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					i += 6
				}
			}
			out = appendStringRune(out, r)
		default:
			return i, false
		}
	}
}

// plainASCII marks the bytes str copies verbatim without a closer look.
var plainASCII = func() (t [256]bool) {
	for i := 0x20; i < utf8.RuneSelf; i++ {
		t[i] = true
	}
	t['"'] = false
	t['\\'] = false
	return t
}()

// appendStringRune appends code point r (a lone surrogate included) as it
// appears inside AppendString's output.
func appendStringRune(dst []byte, r rune) []byte {
	switch {
	case r >= 0x20 && r < utf8.RuneSelf:
		if r == '"' || r == '\\' {
			return append(dst, '\\', byte(r))
		}
		return append(dst, byte(r))
	case r < 0x20:
		switch r {
		case '\b':
			return append(dst, '\\', 'b')
		case '\f':
			return append(dst, '\\', 'f')
		case '\n':
			return append(dst, '\\', 'n')
		case '\r':
			return append(dst, '\\', 'r')
		case '\t':
			return append(dst, '\\', 't')
		}
		return append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xF])
	case r >= 0xD800 && r <= 0xDFFF:
		return append(dst, '\\', 'u', 'd', hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
	}
	return utf8.AppendRune(dst, r)
}

// hexVal maps hex digits to their value and everything else to 0xFF.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for i := byte(0); i < 10; i++ {
		t['0'+i] = i
	}
	for i := byte(0); i < 6; i++ {
		t['a'+i] = 10 + i
		t['A'+i] = 10 + i
	}
	return t
}()

// hex4Bytes decodes the four hex digits s[i:i+4].
func hex4Bytes(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	a, b, c, d := hexVal[s[i]], hexVal[s[i+1]], hexVal[s[i+2]], hexVal[s[i+3]]
	if (a|b|c|d)&0xF0 != 0 { // some byte was not a hex digit
		return 0, false
	}
	return rune(a)<<12 | rune(b)<<8 | rune(c)<<4 | rune(d), true
}
