package channel

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The ASCII folding table of Rails' app/lib/ascii_folder.rb, copied verbatim
// from the spec: the rune at index i of foldFrom becomes the byte at index i
// of foldTo. Both are 181 characters long; every rune of foldFrom lies in
// U+00C0..U+017F.
const (
	foldFrom = "ÀÁÂÃÄÅàáâãäåĀāĂăĄąÇçĆćĈĉĊċČčÐðĎďĐđÈÉÊËèéêëĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĦħÌÍÎÏìíîïĨĩĪīĬĭĮįİıĴĵĶķĸĹĺĻļĽľĿŀŁłÑñŃńŅņŇňŉŊŋÒÓÔÕÖØòóôõöøŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšſŢţŤťŦŧÙÚÛÜùúûüŨũŪūŬŭŮůŰűŲųŴŵÝýÿŶŷŸŹźŻżŽž"
	foldTo   = "AAAAAAaaaaaaAaAaAaCcCcCcCcCcDdDdDdEEEEeeeeEeEeEeEeEeGgGgGgGgHhHhIIIIiiiiIiIiIiIiIiJjKkkLlLlLlLlLlNnNnNnNnnNnOOOOOOooooooOoOoOoRrRrRrSsSsSsSssTtTtTtUUUUuuuuUuUuUuUuUuUuWwYyyYyYZzZzZz"
)

const (
	foldLo = 0xC0
	foldHi = 0x17F
)

// foldTable is foldFrom/foldTo as a direct lookup; 0 means "not folded". It is
// filled once at package initialisation and never written afterwards.
var foldTable = func() (t [foldHi - foldLo + 1]byte) {
	i := 0
	for _, r := range foldFrom {
		t[r-foldLo] = foldTo[i]
		i++
	}
	return t
}()

// NormalizeHashtag normalises a hashtag the way Mastodon's Node streaming
// server does (which is meant to agree with Rails' HashtagNormalizer), so
// that the resulting channel name is the one Rails publishes to:
//
//  1. Unicode NFKC (golang.org/x/text/unicode/norm);
//  2. JavaScript String.prototype.toLowerCase, i.e. full, locale-independent
//     Unicode lower-casing as done by ICU's root locale (see below);
//  3. ASCII folding with Rails' 181-character table (À→a after step 2, ß is
//     not in the table and stays ß, ı→i, ĸ→k);
//  4. deletion of every rune that is not \p{L}, \p{N}, '_', U+00B7 MIDDLE
//     DOT or U+200C ZERO WIDTH NON-JOINER.
//
// Lower-casing is hand-rolled rather than done with golang.org/x/text/cases
// because that package gives up the final-sigma look-ahead after 30
// case-ignorable runes and handles a preceding rune that is both cased and
// case-ignorable differently from ICU (which V8 uses). The rules applied:
//   - every rune gets its simple lowercase mapping (unicode.ToLower), which
//     equals the full mapping for all runes except U+0130 (İ);
//   - U+0130 maps to "i\u0307" in full; the U+0307 is a mark that step 4
//     deletes anyway, so "i" is emitted directly;
//   - U+03A3 (Σ) becomes ς when it is preceded by a cased rune followed only
//     by case-ignorable runes and is not followed by case-ignorable runes and
//     then a cased rune (Unicode Final_Sigma); otherwise σ. Like ICU, a rune
//     that is both case-ignorable and cased (e.g. U+0345) is skipped as
//     ignorable in both directions.
//
// Unicode data comes from Go's unicode package and x/text (both Unicode
// 15.0.0 with Go 1.26); Node may ship a different Unicode version, so runes
// assigned after 15.0 may be classified differently.
//
// JavaScript strings cannot hold invalid UTF-8; here each invalid byte
// decodes as U+FFFD, which is a symbol and therefore deleted by step 4.
//
// NormalizeHashtag is idempotent except in rare cases where step 4 deletes a
// separator between runes that NFKC would then compose (for example Hangul
// conjoining jamo "\u1100-\u1161" → "\u1100\u1161", which a second pass
// composes to "\uAC00"). Node has the same property; the channel name uses a
// single pass, exactly as Node does.
func NormalizeHashtag(s string) string {
	s = norm.NFKC.String(s)
	if isNormalASCII(s) {
		return s
	}
	out := make([]byte, 0, len(s))
	prevCased := false // preceded by a cased rune and then only case-ignorables
	for i, r := range s {
		var lr rune
		switch r {
		case 'Σ':
			if prevCased && !followedByCased(s[i+len("Σ"):]) {
				lr = 'ς'
			} else {
				lr = 'σ'
			}
		case 'İ':
			lr = 'i'
		default:
			lr = unicode.ToLower(r)
		}
		if !isCaseIgnorable(r) {
			prevCased = isCased(r)
		}
		if lr >= foldLo && lr <= foldHi {
			if f := foldTable[lr-foldLo]; f != 0 {
				lr = rune(f)
			}
		}
		if keepInHashtag(lr) {
			out = utf8.AppendRune(out, lr)
		}
	}
	return string(out)
}

// isNormalASCII reports whether s is already a fixed point made only of
// [a-z0-9_], the overwhelmingly common case, so it can be returned without
// allocating.
func isNormalASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func keepInHashtag(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_'
	}
	return r == 0x00B7 || r == 0x200C || unicode.IsLetter(r) || unicode.IsNumber(r)
}

// followedByCased reports whether rest starts with zero or more
// case-ignorable runes and then a cased rune. The scan stops at the first
// rune that is not case-ignorable, so over a whole string the look-aheads
// stay linear: the next Σ always lies at or after where the previous scan
// stopped.
func followedByCased(rest string) bool {
	for _, r := range rest {
		if isCaseIgnorable(r) {
			continue
		}
		return isCased(r)
	}
	return false
}

// isCased is the Unicode Cased property: Lowercase, Uppercase or Lt.
func isCased(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
	}
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// isCaseIgnorable is the Unicode Case_Ignorable property: Mn, Me, Cf, Lm, Sk,
// or Word_Break MidLetter, MidNumLet or Single_Quote (the switch lists those,
// as Go's unicode package has no Word_Break tables; Unicode 15.0).
func isCaseIgnorable(r rune) bool {
	if r < utf8.RuneSelf {
		return r == '\'' || r == '.' || r == ':' || r == '^' || r == '`' // Sk: ^ `
	}
	switch r {
	case 0x00B7, 0x0387, 0x055F, 0x05F4, 0x2018, 0x2019, 0x2024,
		0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
