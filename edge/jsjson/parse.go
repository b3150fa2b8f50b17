package jsjson

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unsafe"
)

// MaxDepth is the deepest nesting of arrays and objects Parse accepts. Node's
// JSON.parse has no such limit, but its JSON.stringify overflows the stack
// on deep values anyway; the bound keeps hostile input from costing more
// than it should.
const MaxDepth = 1000

// ErrTooDeep is wrapped by the error Parse returns for input nested deeper
// than MaxDepth.
var ErrTooDeep = errors.New("jsjson: nesting deeper than MaxDepth")

// SyntaxError describes input that JSON.parse rejects.
type SyntaxError struct {
	Msg string
	// Offset is the byte offset of the error in the input after invalid
	// UTF-8 was replaced by U+FFFD (equal to the raw offset for valid input).
	Offset int
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("jsjson: %s at offset %d", e.Msg, e.Offset)
}

// dedupMapThreshold is the member count from which duplicate keys are found
// through a map instead of a linear scan, keeping hostile objects with many
// keys linear overall.
const dedupMapThreshold = 32

// Parse parses data as JSON.parse(Buffer.toString("utf8")) would: invalid
// UTF-8 is first replaced by U+FFFD, then the text must be exactly one JSON
// value surrounded by optional whitespace.
func Parse(data []byte) (*Value, error) {
	return parse(decodeUTF8(string(data)))
}

// ParseString is Parse for input already held in a string (as go-redis
// delivers Pub/Sub payloads). For valid UTF-8 input the returned strings share
// memory with s.
func ParseString(s string) (*Value, error) {
	return parse(decodeUTF8(s))
}

func parse(src string) (*Value, error) {
	p := parser{src: src}
	// About one value per 32 bytes in Mastodon entities; slabs grow by
	// doubling when the guess is low.
	p.vals = make([]Value, 0, len(src)/32+1)
	p.stack = make([]Member, 0, 32)
	p.skipWS()
	v := p.newValue()
	if !p.parseValue(v) {
		return nil, p.err
	}
	p.skipWS()
	if p.pos < len(p.src) {
		p.fail("unexpected data after JSON value")
		return nil, p.err
	}
	return v, nil
}

// parser allocates Values, member slices and unescaped strings from slabs so
// that a parse costs a handful of allocations rather than one per node.
type parser struct {
	src   string
	pos   int
	depth int
	err   error
	vals  []Value  // current Value slab; never appended past cap, so pointers stay valid
	kids  []Member // current slab for finished containers' members
	stack []Member // members of the containers being parsed
	esc   []byte   // backing store of unescaped strings; never reallocated in place
	// index maps keys of the open objects that reached dedupMapThreshold
	// members to their position in stack. Open objects have distinct
	// depths, so one map serves all of them.
	index map[dedupKey]int
}

type dedupKey struct {
	depth int
	key   string
}

func (p *parser) fail(msg string) bool {
	if p.err == nil {
		p.err = &SyntaxError{Msg: msg, Offset: p.pos}
	}
	return false
}

func (p *parser) failEOF() bool {
	if p.pos >= len(p.src) {
		return p.fail("unexpected end of JSON input")
	}
	return p.fail(fmt.Sprintf("unexpected character %q", p.src[p.pos]))
}

func (p *parser) newValue() *Value {
	if len(p.vals) == cap(p.vals) {
		p.vals = make([]Value, 0, max(2*cap(p.vals), 8))
	}
	p.vals = p.vals[:len(p.vals)+1]
	return &p.vals[len(p.vals)-1]
}

// carve copies ms into the member slab and returns the copy.
func (p *parser) carve(ms []Member) []Member {
	n := len(ms)
	if n == 0 {
		return nil
	}
	if cap(p.kids)-len(p.kids) < n {
		p.kids = make([]Member, 0, max(n, 2*cap(p.kids), len(p.src)/32+1))
	}
	start := len(p.kids)
	p.kids = append(p.kids, ms...)
	return p.kids[start:len(p.kids):len(p.kids)]
}

func (p *parser) skipWS() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) parseValue(v *Value) bool {
	if p.pos >= len(p.src) {
		return p.failEOF()
	}
	switch c := p.src[p.pos]; c {
	case '{':
		return p.parseObject(v)
	case '[':
		return p.parseArray(v)
	case '"':
		s, ok := p.parseString()
		v.kind, v.str = String, s
		return ok
	case 't':
		v.kind, v.b = Bool, true
		return p.literal("true")
	case 'f':
		v.kind = Bool
		return p.literal("false")
	case 'n':
		v.kind = Null
		return p.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return p.parseNumber(v)
		}
		return p.failEOF()
	}
}

func (p *parser) literal(word string) bool {
	for i := 0; i < len(word); i++ {
		if p.pos >= len(p.src) || p.src[p.pos] != word[i] {
			return p.failEOF()
		}
		p.pos++
	}
	return true
}

func (p *parser) enter() bool {
	p.depth++
	if p.depth > MaxDepth {
		if p.err == nil {
			p.err = fmt.Errorf("%w (offset %d)", ErrTooDeep, p.pos)
		}
		return false
	}
	return true
}

func (p *parser) parseArray(v *Value) bool {
	if !p.enter() {
		return false
	}
	p.pos++ // '['
	base := len(p.stack)
	p.skipWS()
	if p.pos < len(p.src) && p.src[p.pos] == ']' {
		p.pos++
	} else {
		for {
			el := p.newValue()
			if !p.parseValue(el) {
				return false
			}
			p.stack = append(p.stack, Member{Value: el})
			p.skipWS()
			if p.pos >= len(p.src) {
				return p.failEOF()
			}
			if c := p.src[p.pos]; c == ',' {
				p.pos++
				p.skipWS()
			} else if c == ']' {
				p.pos++
				break
			} else {
				return p.failEOF()
			}
		}
	}
	v.kind = Array
	v.kids = p.carve(p.stack[base:])
	p.stack = p.stack[:base]
	p.depth--
	return true
}

func (p *parser) parseObject(v *Value) bool {
	if !p.enter() {
		return false
	}
	p.pos++ // '{'
	base := len(p.stack)
	indexed := false // keys are in p.index
	hasIndexKey := false
	p.skipWS()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
	} else {
		for {
			if p.pos >= len(p.src) || p.src[p.pos] != '"' {
				return p.failEOF()
			}
			key, ok := p.parseString()
			if !ok {
				return false
			}
			p.skipWS()
			if p.pos >= len(p.src) || p.src[p.pos] != ':' {
				return p.failEOF()
			}
			p.pos++
			p.skipWS()
			val := p.newValue()
			if !p.parseValue(val) {
				return false
			}
			// JSON.parse uses CreateDataProperty: a repeated key overwrites
			// the value but keeps the property's original position.
			dup := -1
			if indexed {
				if j, found := p.index[dedupKey{p.depth, key}]; found {
					dup = j
				}
			} else {
				for j := base; j < len(p.stack); j++ {
					if p.stack[j].Key == key {
						dup = j
						break
					}
				}
			}
			if dup >= 0 {
				p.stack[dup].Value = val
			} else {
				p.stack = append(p.stack, Member{Key: key, Value: val})
				if indexed {
					p.index[dedupKey{p.depth, key}] = len(p.stack) - 1
				} else if len(p.stack)-base >= dedupMapThreshold {
					indexed = true
					if p.index == nil {
						p.index = make(map[dedupKey]int, 2*dedupMapThreshold)
					}
					for j := base; j < len(p.stack); j++ {
						p.index[dedupKey{p.depth, p.stack[j].Key}] = j
					}
				}
				if !hasIndexKey && isArrayIndex(key) {
					hasIndexKey = true
				}
			}
			p.skipWS()
			if p.pos >= len(p.src) {
				return p.failEOF()
			}
			if c := p.src[p.pos]; c == ',' {
				p.pos++
				p.skipWS()
			} else if c == '}' {
				p.pos++
				break
			} else {
				return p.failEOF()
			}
		}
	}
	if indexed {
		for _, m := range p.stack[base:] {
			delete(p.index, dedupKey{p.depth, m.Key})
		}
	}
	v.kind = Object
	v.kids = p.carve(p.stack[base:])
	p.stack = p.stack[:base]
	if hasIndexKey {
		sortMembers(v.kids)
	}
	p.depth--
	return true
}

// sortMembers puts members in OrdinaryOwnPropertyKeys order: array-index
// keys ascending, then the rest in insertion order. Keys are unique.
func sortMembers(ms []Member) {
	slices.SortStableFunc(ms, func(a, b Member) int {
		ia, aok := arrayIndex(a.Key)
		ib, bok := arrayIndex(b.Key)
		switch {
		case aok && bok:
			if ia < ib {
				return -1
			}
			return 1
		case aok:
			return -1
		case bok:
			return 1
		}
		return 0
	})
}

// arrayIndex parses key as an ECMAScript array index: the canonical decimal
// form of an integer in [0, 2^32-2].
func arrayIndex(key string) (uint32, bool) {
	if len(key) == 0 || len(key) > 10 || (key[0] == '0' && len(key) > 1) {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 4294967294 {
		return 0, false
	}
	return uint32(n), true
}

func isArrayIndex(key string) bool {
	_, ok := arrayIndex(key)
	return ok
}

// strPlain marks bytes that can be copied verbatim inside a string literal.
var strPlain = func() (t [256]bool) {
	for i := 0x20; i < 256; i++ {
		t[i] = true
	}
	t['"'] = false
	t['\\'] = false
	return t
}()

// parseString parses the string literal at p.pos (which is '"').
func (p *parser) parseString() (string, bool) {
	start := p.pos + 1
	for i := start; i < len(p.src); i++ {
		if strPlain[p.src[i]] {
			continue
		}
		switch p.src[i] {
		case '"':
			p.pos = i + 1
			return p.src[start:i], true
		case '\\':
			return p.parseEscapedString(start)
		default:
			p.pos = i
			return "", p.fail("bad control character in string literal")
		}
	}
	p.pos = len(p.src)
	return "", p.fail("unterminated string")
}

func (p *parser) parseEscapedString(start int) (string, bool) {
	// Find the closing quote first: the decoded string is never longer than
	// its literal, so reserving that much keeps p.esc from moving and
	// strings already pointing into it stay intact.
	end := start
	for {
		if end >= len(p.src) {
			p.pos = len(p.src)
			return "", p.fail("unterminated string")
		}
		c := p.src[end]
		if c == '"' {
			break
		}
		if c < 0x20 {
			p.pos = end
			return "", p.fail("bad control character in string literal")
		}
		if c == '\\' {
			end++
		}
		end++
	}
	if need := end - start; cap(p.esc)-len(p.esc) < need {
		p.esc = make([]byte, 0, max(need, min(max(2*cap(p.esc), 512), len(p.src)-start)))
	}
	b0 := len(p.esc)
	s := p.src
	for i := start; i < end; {
		if s[i] != '\\' {
			j := i + 1
			for j < end && s[j] != '\\' {
				j++
			}
			p.esc = append(p.esc, s[i:j]...)
			i = j
			continue
		}
		var c byte
		switch s[i+1] {
		case '"':
			c = '"'
		case '\\':
			c = '\\'
		case '/':
			c = '/'
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'u':
			r, ok := hex4(s, i+2, end)
			if !ok {
				p.pos = i
				return "", p.fail("bad Unicode escape")
			}
			i += 6
			if r >= 0xD800 && r <= 0xDBFF && i+1 < end && s[i] == '\\' && s[i+1] == 'u' {
				if lo, ok := hex4(s, i+2, end); ok && lo >= 0xDC00 && lo <= 0xDFFF {
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					i += 6
				}
			}
			p.esc = appendWTF8(p.esc, r)
			continue
		default:
			p.pos = i
			return "", p.fail("bad escaped character")
		}
		p.esc = append(p.esc, c)
		i += 2
	}
	p.pos = end + 1
	n := len(p.esc) - b0
	if n == 0 {
		return "", true
	}
	// The bytes p.esc[b0:b0+n] are never written again (later strings only
	// append past them within capacity), so viewing them as a string is safe.
	return unsafe.String(&p.esc[b0], n), true
}

// hex4 decodes the four hex digits s[i:i+4], which must lie before end.
func hex4(s string, i, end int) (rune, bool) {
	if i+4 > end {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (p *parser) parseNumber(v *Value) bool {
	s := p.src
	start := p.pos
	i := start
	neg := false
	if s[i] == '-' {
		neg = true
		i++
	}
	var mant uint64
	nd := 0
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for ; i < len(s) && isDigit(s[i]); i++ {
			if nd < 19 {
				mant = mant*10 + uint64(s[i]-'0')
			}
			nd++
		}
	default:
		p.pos = i
		return p.failEOF()
	}
	simple := true
	if i < len(s) && s[i] == '.' {
		simple = false
		i++
		if i >= len(s) || !isDigit(s[i]) {
			p.pos = i
			return p.fail("no number after decimal point")
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
			p.pos = i
			return p.fail("exponent part is missing a number")
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	p.pos = i
	v.kind = Number
	if simple && nd <= 15 {
		// Exact: integers below 10^15 are representable.
		f := float64(mant)
		if neg {
			f = -f
		}
		v.num = f
		return true
	}
	// ParseFloat rounds correctly like V8; on overflow it returns ±Inf with
	// ErrRange, which is what JSON.parse yields too.
	f, err := strconv.ParseFloat(s[start:i], 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		p.pos = start
		return p.fail("bad number")
	}
	v.num = f
	return true
}
