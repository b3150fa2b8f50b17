package channel

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
	"golang.org/x/text/unicode/norm"
)

func TestFoldTable(t *testing.T) {
	if n := utf8.RuneCountInString(foldFrom); n != 181 {
		t.Fatalf("foldFrom has %d runes, want 181", n)
	}
	if len(foldTo) != 181 {
		t.Fatalf("foldTo has %d bytes, want 181", len(foldTo))
	}
	seen := map[rune]bool{}
	for _, r := range foldFrom {
		if r < foldLo || r > foldHi || seen[r] {
			t.Fatalf("foldFrom rune %U out of range or repeated", r)
		}
		seen[r] = true
	}
}

func TestNormalizeHashtag(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Café", "cafe"},
		{"#Foo-Bar", "foobar"},
		{"foo_bar", "foo_bar"},
		{"Straße", "straße"},     // ß is not in the folding table
		{"ẞ", "ß"},               // capital sharp s lower-cases to ß
		{"İstanbul", "istanbul"}, // İ → i + U+0307, the mark is deleted
		{"ıI", "ii"},             // dotless i folds to i; JS has no Turkish rule
		{"ΟΔΟΣ", "οδος"},         // final sigma
		{"ΣΑΣ", "σας"},           // initial Σ is not final
		{"Σ", "σ"},               // no preceding cased letter
		{"ΣΣ", "σς"},             // second Σ is preceded by a cased Σ
		{"Σ Σ", "σσ"},            // space breaks the context
		{"ΑΣ ΑΣ", "αςας"},        // each word ends with ς
		{"ΑΣ'Β", "ασβ"},          // apostrophe is case-ignorable
		{"ΑΣ.Β", "ασβ"},          // full stop is case-ignorable (MidNumLet)
		{"ΑΣ-Β", "αςβ"},          // hyphen is not: Σ is final, then '-' deleted
		{"ΑΣ1", "ας1"},           // digits are not cased
		{"\u0345Σ", "σ"},         // ICU: a cased ignorable is skipped
		{"ˀΣ", "ˀσ"},             // same for a modifier letter
		{"ΑΣ" + strings.Repeat(".", 40) + "Β", "ασβ"}, // unbounded look-ahead
		{"ΑΣ" + strings.Repeat(".", 40) + "-", "ας"},
		{strings.Repeat("ΣΑ", 32) + "Σ", strings.Repeat("σα", 32) + "ς"}, // long: x/text/cases gets this wrong
		{"Ｆｏｏ", "foo"}, // fullwidth via NFKC
		{"ﬁ", "fi"},    // ligature via NFKC
		{"①", "1"},     // circled digit via NFKC
		{"Ⅻ", "xii"},   // roman numeral via NFKC
		{"ǅ", "dz"},    // NFKC then ž folds
		{"ŉ", "ʼn"},    // NFKC splits ŉ before folding could see it
		{"ĸ", "k"},
		{"ŁÆØ", "læo"},           // Æ is not in the table
		{"foo😀bar", "foobar"},    // emoji deleted
		{"a\u200Cb", "a\u200Cb"}, // ZWNJ kept
		{"a\u200Db", "ab"},       // ZWJ deleted
		{"l·l", "l·l"},           // middle dot kept
		{"x١٢٣४", "x١٢٣४"},       // digits of other scripts kept
		{"日本語", "日本語"},
		{"Ⴀ", "ⴀ"},
		{"a\xffb", "ab"}, // invalid UTF-8 decodes as U+FFFD, a symbol
		{"", ""},
		{"#", ""},
		{"\u1100-\u1161", "\u1100\u1161"}, // not composed again: the non-idempotent case
	}
	for _, tt := range tests {
		if got := NormalizeHashtag(tt.in); got != tt.want {
			t.Errorf("NormalizeHashtag(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestNormalizeHashtagNode compares against outputs of the JavaScript
// reference (str.normalize('NFKC').toLowerCase(), folding, regexp delete)
// recorded with Node 20.20.2 / ICU 78.2 / Unicode 17.0 for curated and
// pseudo-random inputs biased towards Greek, Latin-1/Extended-A, Turkish,
// compatibility characters, Hangul jamo, emoji and other-script digits.
func TestNormalizeHashtagNode(t *testing.T) {
	data, err := os.ReadFile("testdata/normalize_node.json")
	if err != nil {
		t.Fatal(err)
	}
	var pairs [][2]string
	if err := json.Unmarshal(data, &pairs); err != nil {
		t.Fatal(err)
	}
	if len(pairs) < 1000 {
		t.Fatalf("only %d pairs", len(pairs))
	}
	for _, p := range pairs {
		if got := NormalizeHashtag(p[0]); got != p[1] {
			t.Errorf("NormalizeHashtag(%q) = %q, Node gives %q", p[0], got, p[1])
		}
	}
}

func FuzzNormalizeHashtag(f *testing.F) {
	for _, s := range []string{
		"Café", "#Foo-Bar", "ΟΔΟΣ", "ΑΣ'Β", "İstanbul", "Ｆｏｏ", "foo😀bar",
		"a\u200Cb", "l·l", "x١٢٣", "\u1100-\u1161", "a\xffb", "", "mastodon",
		"\uFDFA", "Ⱥ", "K", "ﬃ", "ŉ:local", "tag:local", "a.b*c>d", "%E6%97%A5", "日本語のタグ",
		"MastoDon2024", "#100DaysOfCode", "Ελληνικά", "Русский", "한국어", "ไทย", "हिन्दी",
		strings.Repeat("ΑΣ.", 100), strings.Repeat("a", MaxNameLen+1),
	} {
		f.Add(s)
	}
	lower := cases.Lower(language.Und)
	f.Fuzz(func(t *testing.T, s string) {
		got := NormalizeHashtag(s)
		if !utf8.ValidString(got) {
			t.Fatalf("NormalizeHashtag(%q) = %q, invalid UTF-8", s, got)
		}
		for _, r := range got {
			if !keepInHashtag(r) {
				t.Fatalf("NormalizeHashtag(%q) = %q keeps %U", s, got, r)
			}
			// Rails' channel names are lower case; ':' would add a
			// token to the channel name.
			if r < utf8.RuneSelf && !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_') {
				t.Fatalf("NormalizeHashtag(%q) = %q keeps ASCII %q", s, got, r)
			}
		}
		// The edge bounds the raw tag so that normalising costs little:
		// output grows at most as NFKC's worst case (U+FDFA, 3 → 33 bytes).
		if len(got) > maxHashtagGrowth*len(s) {
			t.Fatalf("NormalizeHashtag(%d bytes) = %d bytes", len(s), len(got))
		}
		for _, local := range []bool{false, true} {
			n := Hashtag(s, local)
			want := "timeline:hashtag:" + got
			if local {
				want += ":local"
			}
			if string(n) != want {
				t.Fatalf("Hashtag(%q, %v) = %q, want %q", s, local, n, want)
			}
			if CheckName(n) == nil {
				checkSubject(t, string(n), Subjects{}.Of(n))
			}
		}
		// Idempotence holds unless deleting characters made the output
		// non-NFKC (e.g. Hangul jamo brought together); see the doc comment.
		if norm.NFKC.IsNormalString(got) {
			if again := NormalizeHashtag(got); again != got {
				t.Fatalf("not idempotent: %q → %q → %q", s, got, again)
			}
		}
		// Differential check of the hand-rolled lower-casing against
		// x/text/cases where their documented behaviours coincide: no run of
		// 30+ case-ignorables and no rune that is both cased and ignorable.
		n := norm.NFKC.String(s)
		if !utf8.ValidString(n) || !xtextComparable(n) {
			return
		}
		want := lower.String(n)
		var b strings.Builder
		for _, r := range want {
			if r >= foldLo && r <= foldHi && foldTable[r-foldLo] != 0 {
				r = rune(foldTable[r-foldLo])
			}
			if keepInHashtag(r) {
				b.WriteRune(r)
			}
		}
		if got != b.String() {
			t.Fatalf("NormalizeHashtag(%q) = %q, x/text/cases pipeline gives %q", s, got, b.String())
		}
	})
}

// maxHashtagGrowth bounds len(NormalizeHashtag(s)) / len(s).
const maxHashtagGrowth = 11

// xtextComparable reports whether x/text/cases lower-cases s as ICU does:
// no run of 25+ case-ignorables, no rune both cased and ignorable, and
// well under 128 bytes, from where x/text transforms in chunks and loses
// the final-sigma context ("ΣΑ"×32+"Σ" ends in σ, not ς).
func xtextComparable(s string) bool {
	if len(s) >= 100 {
		return false
	}
	run := 0
	for _, r := range s {
		ign := isCaseIgnorable(r)
		if ign && isCased(r) {
			return false
		}
		if ign {
			run++
			if run >= 25 {
				return false
			}
		} else {
			run = 0
		}
	}
	return true
}

func BenchmarkNormalizeHashtag(b *testing.B) {
	for _, bm := range []struct{ name, in string }{
		{"ascii-normal", "mastodon"},
		{"ascii-mixed", "#Foo-Bar"},
		{"latin", "CaféÉtéŁódź"},
		{"greek", "ΟΔΟΣ ΚΑΙ ΝΟΜΟΣ"},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				NormalizeHashtag(bm.in)
			}
		})
	}
}

func TestASCIIProperties(t *testing.T) {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		cased := unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
		ign := r == '\'' || r == '.' || r == ':' || unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
		if isCased(r) != cased || isCaseIgnorable(r) != ign {
			t.Errorf("%q: isCased=%v want %v, isCaseIgnorable=%v want %v", r, isCased(r), cased, isCaseIgnorable(r), ign)
		}
	}
}
