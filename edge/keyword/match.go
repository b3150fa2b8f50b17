package keyword

import (
	"github.com/spillway/spillway/edge/jsjson"

	"slices"
	"sort"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Keyword is one row of custom_filter_keywords.
type Keyword struct {
	Keyword   string
	WholeWord bool
}

// Filter is one custom filter with its keywords, as grouped from the filter query's
// query rows.
type Filter struct {
	ID      string
	Title   string
	Context []string
	// ExpiresAt is nil when the filter never expires. A PostgreSQL
	// 'infinity' maps best to any time past JavaScript's Date range (year
	// 275760): like node-postgres' Infinity it is rendered as null and never
	// expires; '-infinity' maps to any past time.
	ExpiresAt *time.Time
	// Action is "warn", "hide", or "" when Mastodon's action is neither
	// (blur), which omits the filter_action key. Other values are emitted
	// verbatim.
	Action   string
	Keywords []Keyword
}

// Matcher is a user's compiled filters. It is immutable and safe for
// concurrent use.
type Matcher struct {
	filters []compiled
}

type compiled struct {
	terms []term
	// first marks the bytes that can start a match (every byte >= 0x80
	// when some alternative starts with a non-ASCII character).
	first    [256]bool
	nonASCII bool
	// empty means some top-level alternative is the empty string, so every
	// text matches at position 0.
	empty     bool
	hasExpiry bool
	expiresMs int64
	// head is `{"filter":{…},"keyword_matches":[`.
	head []byte
}

type termKind uint8

const (
	// termAtom is a literal (V8's RegExpAtom).
	termAtom termKind = iota
	// termEmpty matches the empty string.
	termEmpty
	// termBounded is a literal with \b at one or both ends; V8 does not
	// treat it as an atom, so it takes no part in the atom rewriting.
	termBounded
	// termPrefixed is a literal followed by a disjunction: the result of
	// V8 factoring a common prefix out of consecutive atoms.
	termPrefixed
)

// term is one alternative of a (possibly nested) disjunction. units are
// canonicalised UTF-16 code units, since JavaScript matches code units.
type term struct {
	kind      termKind
	units     []uint16
	wordStart bool
	wordEnd   bool
	sub       []term
}

const resultTail = `],"status_matches":null}`

// jsDateMaxMs bounds JavaScript's Date range; a time outside it is an
// Invalid Date, which JSON.stringify renders as null and which never
// compares as earlier than now.
const jsDateMaxMs = 8_640_000_000_000_000

// Compile builds the matcher for one connection's filters, given in query row
// order. It never fails: every keyword is a literal (Mastodon escapes all
// regexp syntax, so its regexp always compiles too). Filters sharing an ID
// are merged as Mastodon's reduce does (keywords appended, the first row's
// fields kept). Filters are ordered like JavaScript object keys: IDs that are
// array indices (canonical integers below 2^32-1) ascending, then the rest in
// row order. A filter without keywords behaves like `new RegExp("", "i")`,
// matching "" in every non-empty text (the filter query's join never produces one).
func Compile(filters []Filter) *Matcher {
	type group struct {
		f        Filter
		keywords []Keyword
	}
	var groups []*group
	byID := make(map[string]*group, len(filters))
	for _, f := range filters {
		if g, ok := byID[f.ID]; ok {
			g.keywords = append(g.keywords, f.Keywords...)
			continue
		}
		g := &group{f: f, keywords: slices.Clone(f.Keywords)}
		byID[f.ID] = g
		groups = append(groups, g)
	}
	sort.SliceStable(groups, func(i, j int) bool {
		ai, iok := arrayIndex(groups[i].f.ID)
		aj, jok := arrayIndex(groups[j].f.ID)
		switch {
		case iok && jok:
			return ai < aj
		default:
			return iok && !jok
		}
	})
	m := &Matcher{filters: make([]compiled, 0, len(groups))}
	for _, g := range groups {
		m.filters = append(m.filters, compile(g.f, g.keywords))
	}
	return m
}

func compile(f Filter, keywords []Keyword) compiled {
	c := compiled{}
	if len(keywords) == 0 {
		// `[].join("|")` is the empty pattern.
		keywords = []Keyword{{}}
	}
	terms := make([]term, 0, len(keywords))
	for _, k := range keywords {
		units := canonUnits(k.Keyword)
		if len(units) == 0 {
			terms = append(terms, term{kind: termEmpty})
			continue
		}
		// The escaped keyword starts with a word character exactly when
		// the keyword does: escaping only prefixes non-word characters.
		t := term{kind: termAtom, units: units}
		t.wordStart = k.WholeWord && isWordByte(k.Keyword[0])
		t.wordEnd = k.WholeWord && isWordByte(k.Keyword[len(k.Keyword)-1])
		if t.wordStart || t.wordEnd {
			t.kind = termBounded
		}
		terms = append(terms, t)
	}
	c.terms = v8Disjunction(terms)
	for _, t := range c.terms {
		if t.kind == termEmpty {
			c.empty = true
			continue
		}
		u := t.units[0]
		if u < utf8.RuneSelf {
			c.first[u] = true
			if u >= 'A' && u <= 'Z' {
				c.first[u+'a'-'A'] = true
			}
		} else {
			c.nonASCII = true
		}
	}
	if c.nonASCII {
		for b := utf8.RuneSelf; b < 256; b++ {
			c.first[b] = true
		}
	}
	if f.ExpiresAt != nil {
		ms := floorMs(*f.ExpiresAt)
		if ms >= -jsDateMaxMs && ms <= jsDateMaxMs {
			c.hasExpiry = true
			c.expiresMs = ms
		}
	}
	c.head = appendHead(nil, f)
	return c
}

// canonUnits returns s as canonicalised UTF-16 code units (invalid UTF-8
// as U+FFFD, the character JavaScript would hold).
func canonUnits(s string) []uint16 {
	units := make([]uint16, 0, len(s))
	for _, r := range s {
		if r > 0xFFFF {
			hi, lo := utf16.EncodeRune(r)
			units = append(units, uint16(hi), uint16(lo))
			continue
		}
		units = append(units, uint16(canon(r)))
	}
	return units
}

// v8Disjunction applies the rewriting V8's irregexp performs on a
// disjunction of more than two alternatives (RegExpDisjunction::ToNode):
// runs of consecutive atoms are stably sorted by case-folded first
// character, and runs of three or more atoms whose first characters fold
// equal are rewritten from `ab|ac|ad` to `a(?:b|c|d)`, taking the prefix from
// the first atom of the run and extending it while the atoms' characters fold
// equal. Because ICU case folding equates characters that JavaScript's
// canonicalisation keeps apart (ſ/s, Kelvin sign/k, ß/ẞ, ᾳ/ᾼ, …), the
// rewritten prefix can stop matching text the original alternatives
// matched: /ſa|sb|sc/i does not match "sb" in Node. Mastodon inherits that,
// so it is reproduced here. (V8's merging of single-character atoms into a
// class does not change what matches and is not modelled.)
func v8Disjunction(alts []term) []term {
	if len(alts) <= 2 {
		return alts
	}
	found := false
	for i := 0; i < len(alts); {
		if alts[i].kind != termAtom {
			i++
			continue
		}
		j := i + 1
		for j < len(alts) && alts[j].kind == termAtom {
			j++
		}
		// Only the grouping matters: atoms whose first characters fold
		// differently can never match at the same position, so any order
		// between the groups behaves the same.
		slices.SortStableFunc(alts[i:j], func(a, b term) int {
			return int(foldKey(a.units[0])) - int(foldKey(b.units[0]))
		})
		if j-i > 1 {
			found = true
		}
		i = j
	}
	if !found {
		return alts
	}
	out := make([]term, 0, len(alts))
	for i := 0; i < len(alts); {
		if alts[i].kind != termAtom {
			out = append(out, alts[i])
			i++
			continue
		}
		first := i
		key := foldKey(alts[i].units[0])
		plen := len(alts[i].units)
		i++
		for i < len(alts) && alts[i].kind == termAtom && foldKey(alts[i].units[0]) == key {
			plen = min(plen, len(alts[i].units))
			i++
		}
		run := alts[first:i]
		if len(run) <= 2 {
			out = append(out, run...)
			continue
		}
		a0 := run[0].units
		for j := 1; j < len(run) && plen > 1; j++ {
			for k := 1; k < plen; k++ {
				if foldKey(a0[k]) != foldKey(run[j].units[k]) {
					plen = k
					break
				}
			}
		}
		subs := make([]term, len(run))
		for j, a := range run {
			if len(a.units) == plen {
				subs[j] = term{kind: termEmpty}
			} else {
				subs[j] = term{kind: termAtom, units: a.units[plen:]}
			}
		}
		out = append(out, term{kind: termPrefixed, units: a0[:plen], sub: v8Disjunction(subs)})
	}
	return out
}

// Empty reports whether the user has no filters, in which case every result
// is "[]".
func (m *Matcher) Empty() bool { return m == nil || len(m.filters) == 0 }

// AppendResults appends to dst the JSON array Mastodon puts in a status's
// `filtered` key for the searchable text at time now: one entry per
// unexpired filter whose regexp matches, holding the first match only, as it
// appears in the text. Empty text matches nothing.
func (m *Matcher) AppendResults(dst []byte, text string, now time.Time) []byte {
	dst = append(dst, '[')
	if m == nil || text == "" {
		return append(dst, ']')
	}
	nowMs := floorMs(now)
	n := 0
	for i := range m.filters {
		f := &m.filters[i]
		if f.hasExpiry && f.expiresMs < nowMs {
			continue
		}
		start, end, ok := f.find(text)
		if !ok {
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, f.head...)
		dst = jsjson.AppendString(dst, text[start:end])
		dst = append(dst, resultTail...)
	}
	return append(dst, ']')
}

// find returns the leftmost match of the filter's regexp; at that position
// the first alternative that matches wins, as in a backtracking engine.
func (f *compiled) find(text string) (int, int, bool) {
	if f.empty {
		// Some alternative matches "" at 0, so 0 is the leftmost position;
		// an earlier alternative may still match something longer there.
		end, ok := matchTerms(f.terms, text, 0, false)
		return 0, end, ok
	}
	first := &f.first
	for i := 0; i < len(text); {
		b := text[i]
		if !first[b] {
			// Without a non-ASCII first character every byte >= 0x80 is
			// skipped here, continuation bytes included.
			i++
			continue
		}
		if end, ok := matchTerms(f.terms, text, i, false); ok {
			return i, end, true
		}
		if b < utf8.RuneSelf {
			i++
			continue
		}
		_, size := utf8.DecodeRuneInString(text[i:])
		i += size
	}
	return 0, 0, false
}

// matchTerms tries the alternatives in order at byte offset off (trail: in
// the middle of an astral character, its trail surrogate still to match) and
// returns the end of the first that matches. Nothing follows a disjunction
// in these patterns, so the first success is final.
func matchTerms(ts []term, text string, off int, trail bool) (int, bool) {
	for i := range ts {
		t := &ts[i]
		switch t.kind {
		case termEmpty:
			return off, true
		case termPrefixed:
			end, tr, ok := matchUnits(text, off, trail, t.units)
			if !ok {
				continue
			}
			if end, ok := matchTerms(t.sub, text, end, tr); ok {
				return end, true
			}
		default:
			if t.wordStart && !trail && off > 0 && isWordByte(text[off-1]) {
				continue
			}
			end, tr, ok := matchUnits(text, off, trail, t.units)
			if !ok {
				continue
			}
			if t.wordEnd && !tr && end < len(text) && isWordByte(text[end]) {
				continue
			}
			return end, true
		}
	}
	return 0, false
}

// matchUnits matches canonical UTF-16 code units against the UTF-8 text.
func matchUnits(text string, off int, trail bool, units []uint16) (int, bool, bool) {
	for _, u := range units {
		if off >= len(text) {
			return 0, false, false
		}
		b := text[off]
		if b < utf8.RuneSelf {
			// ASCII canonicalises among ASCII only, and nothing else
			// canonicalises to ASCII, so a byte comparison is exact.
			if b >= 'a' && b <= 'z' {
				b -= 'a' - 'A'
			}
			if uint16(b) != u {
				return 0, false, false
			}
			off++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[off:])
		if r > 0xFFFF {
			// Surrogates canonicalise to themselves.
			hi, lo := utf16.EncodeRune(r)
			if trail {
				if uint16(lo) != u {
					return 0, false, false
				}
				off += size
				trail = false
				continue
			}
			if uint16(hi) != u {
				return 0, false, false
			}
			trail = true
			continue
		}
		if uint16(canon(r)) != u {
			return 0, false, false
		}
		off += size
	}
	return off, trail, true
}

// isWordByte reports whether b is in JavaScript's non-Unicode \w class.
// Every byte of a multi-byte UTF-8 sequence is outside it, as is every
// UTF-16 unit of the character it encodes.
func isWordByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_'
}

// canon is JavaScript's non-Unicode, ignoreCase Canonicalize for a
// character. Astral characters are two surrogate code units in JavaScript,
// each canonicalising to itself, so they compare exactly.
func canon(r rune) rune {
	if r < utf8.RuneSelf {
		if r >= 'a' && r <= 'z' {
			return r - ('a' - 'A')
		}
		return r
	}
	if r > 0xFFFF {
		return r
	}
	u := uint16(r)
	i := sort.Search(len(foldPairs), func(i int) bool { return foldPairs[i][0] >= u })
	if i < len(foldPairs) && foldPairs[i][0] == u {
		return rune(foldPairs[i][1])
	}
	return r
}

// foldKey maps a canonical code unit to a representative of its ICU
// full-case-folding class. Characters with equal canonical forms always fold
// equal; foldMerges lists the canonical forms that fold equal to another.
func foldKey(u uint16) uint16 {
	i := sort.Search(len(foldMerges), func(i int) bool { return foldMerges[i][0] >= u })
	if i < len(foldMerges) && foldMerges[i][0] == u {
		return foldMerges[i][1]
	}
	return u
}

// foldMerges pairs each canonical form with the canonical form of a
// character it case-folds equal to (ICU UnicodeString::caseCompare with
// U_FOLD_CASE_DEFAULT, i.e. full case folding), sorted by the first element.
var foldMerges = [...][2]uint16{
	{0x017F, 0x0053}, {0x03F4, 0x0398}, {0x1E9E, 0x00DF}, {0x1F88, 0x1F80}, {0x1F89, 0x1F81}, {0x1F8A, 0x1F82},
	{0x1F8B, 0x1F83}, {0x1F8C, 0x1F84}, {0x1F8D, 0x1F85}, {0x1F8E, 0x1F86}, {0x1F8F, 0x1F87}, {0x1F98, 0x1F90},
	{0x1F99, 0x1F91}, {0x1F9A, 0x1F92}, {0x1F9B, 0x1F93}, {0x1F9C, 0x1F94}, {0x1F9D, 0x1F95}, {0x1F9E, 0x1F96},
	{0x1F9F, 0x1F97}, {0x1FA8, 0x1FA0}, {0x1FA9, 0x1FA1}, {0x1FAA, 0x1FA2}, {0x1FAB, 0x1FA3}, {0x1FAC, 0x1FA4},
	{0x1FAD, 0x1FA5}, {0x1FAE, 0x1FA6}, {0x1FAF, 0x1FA7}, {0x1FBC, 0x1FB3}, {0x1FCC, 0x1FC3}, {0x1FD3, 0x0390},
	{0x1FE3, 0x03B0}, {0x1FFC, 0x1FF3}, {0x2126, 0x03A9}, {0x212A, 0x004B}, {0x212B, 0x00C5}, {0xFB06, 0xFB05},
}

// arrayIndex reports whether s is a JavaScript array index (a canonical
// integer string below 2^32-1), which object key order puts first.
func arrayIndex(s string) (uint64, bool) {
	if s == "" || len(s) > 10 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v >= 1<<32-1 {
		return 0, false
	}
	return v, true
}

// floorMs is the JavaScript Date value for t: milliseconds since the epoch,
// sub-millisecond digits dropped (node-postgres builds its Dates from
// components, truncating the fraction, i.e. flooring).
func floorMs(t time.Time) int64 {
	s := t.Unix()
	// Far outside the Date range either way; avoid overflowing int64.
	if s > jsDateMaxMs/1000+1 {
		return jsDateMaxMs + 1
	}
	if s < -jsDateMaxMs/1000-1 {
		return -jsDateMaxMs - 1
	}
	ns := int64(t.Nanosecond())
	return s*1000 + ns/1e6
}

func appendHead(dst []byte, f Filter) []byte {
	dst = append(dst, `{"filter":{"id":`...)
	dst = jsjson.AppendString(dst, f.ID)
	dst = append(dst, `,"title":`...)
	dst = jsjson.AppendString(dst, f.Title)
	dst = append(dst, `,"context":[`...)
	for i, c := range f.Context {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsjson.AppendString(dst, c)
	}
	dst = append(dst, `],"expires_at":`...)
	if f.ExpiresAt == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendJSDate(dst, floorMs(*f.ExpiresAt))
	}
	if f.Action != "" {
		dst = append(dst, `,"filter_action":`...)
		dst = jsjson.AppendString(dst, f.Action)
	}
	return append(dst, `},"keyword_matches":[`...)
}

// appendJSDate appends JSON.stringify of a Date with value ms: the quoted
// Date.prototype.toISOString form, or null outside the Date range.
func appendJSDate(dst []byte, ms int64) []byte {
	if ms < -jsDateMaxMs || ms > jsDateMaxMs {
		return append(dst, "null"...)
	}
	sec, frac := ms/1000, ms%1000
	if frac < 0 {
		sec, frac = sec-1, frac+1000
	}
	t := time.Unix(sec, 0).UTC()
	dst = append(dst, '"')
	switch y := t.Year(); {
	case y >= 0 && y <= 9999:
		dst = appendPad(dst, int64(y), 4)
	case y < 0:
		dst = append(dst, '-')
		dst = appendPad(dst, int64(-y), 6)
	default:
		dst = append(dst, '+')
		dst = appendPad(dst, int64(y), 6)
	}
	dst = append(dst, '-')
	dst = appendPad(dst, int64(t.Month()), 2)
	dst = append(dst, '-')
	dst = appendPad(dst, int64(t.Day()), 2)
	dst = append(dst, 'T')
	dst = appendPad(dst, int64(t.Hour()), 2)
	dst = append(dst, ':')
	dst = appendPad(dst, int64(t.Minute()), 2)
	dst = append(dst, ':')
	dst = appendPad(dst, int64(t.Second()), 2)
	dst = append(dst, '.')
	dst = appendPad(dst, frac, 3)
	return append(dst, `Z"`...)
}

func appendPad(dst []byte, v int64, width int) []byte {
	var buf [20]byte
	s := strconv.AppendInt(buf[:0], v, 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}
