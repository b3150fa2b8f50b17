package keyword

import (
	"github.com/spillway/spillway/edge/jsjson"

	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func kw(k string, whole bool) Keyword { return Keyword{Keyword: k, WholeWord: whole} }

func ptime(t time.Time) *time.Time { return &t }

// oneFilter builds a warn filter "1" with the given keywords.
func oneFilter(kws ...Keyword) []Filter {
	return []Filter{{ID: "1", Title: "t", Context: []string{"home"}, Action: "warn", Keywords: kws}}
}

// firstMatch returns keyword_matches[0] of the only result, or "" and false.
func firstMatch(t *testing.T, m *Matcher, text string) (string, bool) {
	t.Helper()
	out := m.AppendResults(nil, text, testNow)
	var res []struct {
		KeywordMatches []string `json:"keyword_matches"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("invalid JSON %s: %v", out, err)
	}
	if len(res) == 0 {
		return "", false
	}
	return res[0].KeywordMatches[0], true
}

func TestAppendResultsExact(t *testing.T) {
	tests := []struct {
		name    string
		filters []Filter
		text    string
		want    string
	}{
		{
			name:    "spec verified example",
			filters: []Filter{{ID: "7001", Title: "Spoilers", Context: []string{"home", "public"}, Action: "warn", Keywords: []Keyword{kw("spoiler", true)}}},
			text:    "\n\nThis has a spoiler in it",
			want:    `[{"filter":{"id":"7001","title":"Spoilers","context":["home","public"],"expires_at":null,"filter_action":"warn"},"keyword_matches":["spoiler"],"status_matches":null}]`,
		},
		{
			name:    "hide",
			filters: []Filter{{ID: "5", Title: "Hidden", Context: []string{"public"}, Action: "hide", Keywords: []Keyword{kw("secret", false)}}},
			text:    "top SECRET stuff",
			want:    `[{"filter":{"id":"5","title":"Hidden","context":["public"],"expires_at":null,"filter_action":"hide"},"keyword_matches":["SECRET"],"status_matches":null}]`,
		},
		{
			name:    "blur omits filter_action",
			filters: []Filter{{ID: "6", Title: "Blur", Context: []string{}, Keywords: []Keyword{kw("x", false)}}},
			text:    "x",
			want:    `[{"filter":{"id":"6","title":"Blur","context":[],"expires_at":null},"keyword_matches":["x"],"status_matches":null}]`,
		},
		{
			name:    "nil context is an empty array",
			filters: []Filter{{ID: "6", Title: "T", Action: "warn", Keywords: []Keyword{kw("x", false)}}},
			text:    "x",
			want:    `[{"filter":{"id":"6","title":"T","context":[],"expires_at":null,"filter_action":"warn"},"keyword_matches":["x"],"status_matches":null}]`,
		},
		{
			name: "expires_at milliseconds, UTC",
			filters: []Filter{{ID: "8", Title: "T", Context: []string{"home"}, Action: "warn", Keywords: []Keyword{kw("x", false)},
				ExpiresAt: ptime(time.Date(2026, 5, 2, 5, 4, 5, 678_901_000, time.FixedZone("x", 2*3600)))}},
			text: "x",
			want: `[{"filter":{"id":"8","title":"T","context":["home"],"expires_at":"2026-05-02T03:04:05.678Z","filter_action":"warn"},"keyword_matches":["x"],"status_matches":null}]`,
		},
		{
			name: "expires_at past year 9999",
			filters: []Filter{{ID: "8", Title: "T", Context: []string{}, Action: "warn", Keywords: []Keyword{kw("x", false)},
				ExpiresAt: ptime(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))}},
			text: "x",
			want: `[{"filter":{"id":"8","title":"T","context":[],"expires_at":"+010000-01-01T00:00:00.000Z","filter_action":"warn"},"keyword_matches":["x"],"status_matches":null}]`,
		},
		{
			name: "expires_at beyond the Date range is null and never expires",
			filters: []Filter{{ID: "8", Title: "T", Context: []string{}, Action: "warn", Keywords: []Keyword{kw("x", false)},
				ExpiresAt: ptime(time.Date(294276, 1, 1, 0, 0, 0, 0, time.UTC))}},
			text: "x",
			want: `[{"filter":{"id":"8","title":"T","context":[],"expires_at":null,"filter_action":"warn"},"keyword_matches":["x"],"status_matches":null}]`,
		},
		{
			name: "JSON.stringify escaping",
			filters: []Filter{{ID: "9", Title: "q\"\\<>&\u2028\n\x01\x7f", Context: []string{"é"}, Action: "warn",
				Keywords: []Keyword{kw("\t", false)}}},
			text: "a\tb",
			want: "[{\"filter\":{\"id\":\"9\",\"title\":\"q\\\"\\\\<>&\u2028\\n\\u0001\x7f\",\"context\":[\"é\"],\"expires_at\":null,\"filter_action\":\"warn\"},\"keyword_matches\":[\"\\t\"],\"status_matches\":null}]",
		},
		{
			name: "expired skipped, others kept in order",
			filters: []Filter{
				{ID: "1", Title: "old", Context: []string{}, Action: "warn", Keywords: []Keyword{kw("x", false)}, ExpiresAt: ptime(testNow.Add(-time.Millisecond))},
				{ID: "2", Title: "now", Context: []string{}, Action: "warn", Keywords: []Keyword{kw("x", false)}, ExpiresAt: ptime(testNow.Add(999 * time.Microsecond))},
			},
			text: "x",
			// Expiry compares JS Dates (whole milliseconds) with "<": a
			// filter expiring within the current millisecond still applies.
			want: `[{"filter":{"id":"2","title":"now","context":[],"expires_at":"2026-03-01T12:00:00.000Z","filter_action":"warn"},"keyword_matches":["x"],"status_matches":null}]`,
		},
		{
			name:    "no match",
			filters: oneFilter(kw("absent", false)),
			text:    "present",
			want:    `[]`,
		},
		{
			name:    "empty text matches nothing",
			filters: oneFilter(kw("", false)),
			text:    "",
			want:    `[]`,
		},
		{
			name:    "no filters",
			filters: nil,
			text:    "anything",
			want:    `[]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(Compile(tt.filters).AppendResults(nil, tt.text, testNow))
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestFilterOrder(t *testing.T) {
	ids := []string{"10", "abc", "2", "4294967295", "4294967294", "1", "007", "0"}
	var fs []Filter
	for _, id := range ids {
		fs = append(fs, Filter{ID: id, Title: id, Keywords: []Keyword{kw("x", false)}})
	}
	// A second row for filter "2" adds a keyword; the first row's fields win.
	fs = append(fs, Filter{ID: "2", Title: "ignored", Keywords: []Keyword{kw("y", false)}})
	m := Compile(fs)
	var res []struct {
		Filter struct {
			ID    string `json:"id"`
			Title string `json:"title"`
		} `json:"filter"`
		KeywordMatches []string `json:"keyword_matches"`
	}
	out := m.AppendResults(nil, "y x", testNow)
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res {
		got = append(got, r.Filter.ID+"="+r.KeywordMatches[0])
		if r.Filter.ID != r.Filter.Title {
			t.Errorf("filter %s has title %s", r.Filter.ID, r.Filter.Title)
		}
	}
	want := []string{"0=x", "1=x", "2=y", "10=x", "4294967294=x", "abc=x", "4294967295=x", "007=x"}
	if !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if m.Empty() || !Compile(nil).Empty() {
		t.Error("Empty() wrong")
	}
}

func TestMatching(t *testing.T) {
	tests := []struct {
		name  string
		kws   []Keyword
		text  string
		match string // "" = no match
	}{
		{"whole word rejects longer word", []Keyword{kw("spoiler", true)}, "spoilers ahead", ""},
		{"whole word at punctuation", []Keyword{kw("spoiler", true)}, "a spoiler.", "spoiler"},
		{"whole word underscore is a word char", []Keyword{kw("spoiler", true)}, "_spoiler", ""},
		{"whole word non-ASCII is not a word char", []Keyword{kw("spoiler", true)}, "éspoilerü", "spoiler"},
		{"whole word at text edges", []Keyword{kw("spoiler", true)}, "spoiler", "spoiler"},
		{"partial without whole word", []Keyword{kw("hide", false)}, "hideme", "hide"},
		{"case-insensitive keeps text case", []Keyword{kw("spoiler", false)}, "BIG SPOILER", "SPOILER"},
		{"metachars literal plus", []Keyword{kw("c++", false)}, "I like C++11", "C++"},
		{"metachars literal dot", []Keyword{kw("a.b", false)}, "axb a.b", "a.b"},
		{"metachars parens", []Keyword{kw("(x)", false)}, "f(x)", "(x)"},
		{"metachars others", []Keyword{kw(`^$*?{}[]|\/-`, false)}, `z^$*?{}[]|\/-z`, `^$*?{}[]|\/-`},
		{"whole word c++ prefix boundary only", []Keyword{kw("c++", true)}, "abc++ c++x", "c++"},
		{"whole word c++ needs prefix boundary", []Keyword{kw("c++", true)}, "abc++", ""},
		{"whole word leading dash suffix boundary", []Keyword{kw("-foo", true)}, "-foobar x-foo", "-foo"},
		{"whole word all non-word chars", []Keyword{kw("(x)", true)}, "a(x)b", "(x)"},
		{"long s does not match s", []Keyword{kw("s", false)}, "ſ", ""},
		{"s does not match long s keyword", []Keyword{kw("ſ", false)}, "sS", ""},
		{"long s matches itself", []Keyword{kw("ſ", false)}, "ſ", "ſ"},
		{"kelvin does not match k", []Keyword{kw("k", false)}, "\u212A", ""},
		{"k keyword vs kelvin keyword", []Keyword{kw("\u212A", false)}, "kK\u212A", "\u212A"},
		{"sharp s vs capital sharp s", []Keyword{kw("ß", false)}, "SS ẞ", ""},
		{"latin-1 folds", []Keyword{kw("é", false)}, "É", "É"},
		{"greek sigma forms", []Keyword{kw("σ", false)}, "ς", "ς"},
		{"dotless i does not match I", []Keyword{kw("ı", false)}, "Ii", ""},
		{"astral exact", []Keyword{kw("😀", false)}, "x😀y", "😀"},
		{"leftmost wins", []Keyword{kw("b", false), kw("a", false)}, "ab", "a"},
		{"first alternative wins", []Keyword{kw("spoil", false), kw("spoiler", false)}, "spoiler", "spoil"},
		{"first alternative wins reversed", []Keyword{kw("spoiler", false), kw("spoil", false)}, "spoiler", "spoiler"},
		{"empty keyword matches at 0", []Keyword{kw("x", false), kw("", false)}, "ax", ""},
		{"earlier alternative beats empty at 0", []Keyword{kw("a", false), kw("", false)}, "ax", "a"},
		// V8 rewrites /ſa|sb|sc/i to /ſ(?:a|b|c)/i (ICU folds ſ like s), so
		// Node never matches "sb" here, while two alternatives are left alone.
		{"V8 prefix factoring quirk", []Keyword{kw("ſa", false), kw("sb", false), kw("sc", false)}, "sb", ""},
		{"no factoring with two atoms", []Keyword{kw("ſa", false), kw("sb", false)}, "sb", "sb"},
		{"factoring is harmless for ASCII", []Keyword{kw("Spoiler", false), kw("spoilers", false), kw("spoil", false)}, "SPOILERS", "SPOILER"},
		{"factoring across a shared lead surrogate", []Keyword{kw("😀a", false), kw("😁b", false), kw("😀c", false)}, "😁b", "😁b"},
		{"whole-word alternatives break atom runs", []Keyword{kw("ſa", false), kw("sb", true), kw("sc", false)}, "sb", "sb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := firstMatch(t, Compile(oneFilter(tt.kws...)), tt.text)
			if tt.match == "" {
				if ok && !(got == "" && tt.kws[len(tt.kws)-1].Keyword == "") {
					t.Errorf("matched %q, want no match", got)
				}
				return
			}
			if !ok || got != tt.match {
				t.Errorf("match %q (ok=%v), want %q", got, ok, tt.match)
			}
		})
	}
}

func TestKeywordlessFilterMatchesEmpty(t *testing.T) {
	// new RegExp("", "i") matches "" at 0.
	got := string(Compile([]Filter{{ID: "1", Title: "t"}}).AppendResults(nil, "x", testNow))
	want := `[{"filter":{"id":"1","title":"t","context":[],"expires_at":null},"keyword_matches":[""],"status_matches":null}]`
	if got != want {
		t.Errorf("got %s", got)
	}
}

func TestAppendJSString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"\b\f\n\r\t\x00\x1f", `"\b\f\n\r\t\u0000\u001f"`},
		{"<>&/\u2028\u2029\x7f", "\"<>&/\u2028\u2029\x7f\""},
		{"bad\xffbyte", "\"bad\uFFFDbyte\""},
		{"\xed\xa0\x80", `"\ud800"`},
		{"\xed\xbf\xbf", `"\udfff"`},
	}
	for _, tt := range tests {
		if got := string(jsjson.AppendString(nil, tt.in)); got != tt.want {
			t.Errorf("jsjson.AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestCanonTable(t *testing.T) {
	for i := 1; i < len(foldPairs); i++ {
		if foldPairs[i-1][0] >= foldPairs[i][0] {
			t.Fatalf("foldPairs not sorted at %d", i)
		}
	}
	for i := 1; i < len(foldMerges); i++ {
		if foldMerges[i-1][0] >= foldMerges[i][0] {
			t.Fatalf("foldMerges not sorted at %d", i)
		}
	}
	for _, p := range foldPairs {
		if p[1] < 0x80 {
			t.Errorf("%U canonicalises to ASCII", p[0])
		}
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("spoiler", true, "Spoiler", "a spoiler here", "hide")
	f.Add("c++", true, "ſa", "abc++ c++", "sb")
	f.Add("😀a", false, "😁b", "x😁b", "😀c")
	f.Add("\u212A", false, "", "kK\u212A", "(x)")
	f.Fuzz(func(t *testing.T, k1 string, whole bool, k2, text, k3 string) {
		m := Compile([]Filter{
			{ID: "1", Title: k1, Keywords: []Keyword{{k1, whole}}},
			{ID: "2", Title: "multi", Keywords: []Keyword{{k1, false}, {k2, whole}, {k3, false}}},
		})
		out := m.AppendResults(nil, text, testNow)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q", out)
		}
		if text == "" {
			return
		}
		s, e, ok := m.filters[0].find(text)
		if !ok {
			return
		}
		got := text[s:e]
		if !slices.Equal(canonUnits(got), canonUnits(k1)) {
			t.Fatalf("match %q does not equal keyword %q case-insensitively", got, k1)
		}
		if whole && k1 != "" && isASCIIWord(k1) {
			if s > 0 && isWordByte(text[s-1]) || e < len(text) && isWordByte(text[e]) {
				t.Fatalf("whole-word match %q at %d:%d of %q touches a word character", got, s, e, text)
			}
		}
	})
}

func isASCIIWord(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isWordByte(s[i]) {
			return false
		}
	}
	return true
}

func benchMatcher() *Matcher {
	return Compile([]Filter{
		{ID: "101", Title: "Spoilers", Context: []string{"home", "public"}, Action: "warn", Keywords: []Keyword{kw("spoiler", true), kw("season finale", false)}},
		{ID: "102", Title: "Politics", Context: []string{"public"}, Action: "hide", Keywords: []Keyword{kw("election", true), kw("senate", true)}},
		{ID: "103", Title: "Crypto", Context: []string{"public"}, Keywords: []Keyword{kw("nft", true)}},
	})
}

func BenchmarkAppendResults(b *testing.B) {
	text := Text("", realisticContent(), nil, nil)
	m := benchMatcher()
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendResults(buf[:0], text, testNow)
	}
}

func BenchmarkAppendResultsHit(b *testing.B) {
	text := Text("", realisticContent(), nil, nil) + " the season finale SPOILER"
	text = strings.Repeat("x ", 10) + text
	m := benchMatcher()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendResults(buf[:0], text, testNow)
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = benchMatcher()
	}
}
