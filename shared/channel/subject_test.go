package channel

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

func TestSubjectsOf(t *testing.T) {
	s := Subjects{}
	tests := []struct {
		n    Name
		want string
	}{
		{Public(ScopeAll, false), "mastodon.ch.timeline.public"},
		{Public(ScopeLocal, true), "mastodon.ch.timeline.public.local.media"},
		{Home(109000000000000001), "mastodon.ch.timeline.109000000000000001"},
		{Notifications(5), "mastodon.ch.timeline.5.notifications"},
		{Direct(5), "mastodon.ch.timeline.direct.5"},
		{List("12"), "mastodon.ch.timeline.list.12"},
		{List("1.2 *>"), "mastodon.ch.timeline.list.1%2E2%20%2A%3E"},
		{Hashtag("Café", true), "mastodon.ch.timeline.hashtag.cafe.local"},
		{Hashtag("日本", false), "mastodon.ch.timeline.hashtag.%E6%97%A5%E6%9C%AC"},
		{Hashtag("😀", false), "mastodon.ch.timeline.hashtag.%"},
		{Hashtag("😀", true), "mastodon.ch.timeline.hashtag.%.local"},
		{AccessToken(3), "mastodon.ch.timeline.access_token.3"},
		{System(3), "mastodon.ch.timeline.system.3"},
		{"", "mastodon.ch.%"},
		{":", "mastodon.ch.%.%"},
		{"a::b", "mastodon.ch.a.%.b"},
		{"%", "mastodon.ch.%25"},
		{"ctl:interest", "mastodon.ch.ctl.interest"},
		{"a\xff\x00", "mastodon.ch.a%FF%00"},
		{"Aa_-", "mastodon.ch.Aa_-"},
	}
	for _, tt := range tests {
		got := s.Of(tt.n)
		if got != tt.want {
			t.Errorf("Of(%q) = %q, want %q", tt.n, got, tt.want)
		}
		if !server.IsValidLiteralSubject(got) {
			t.Errorf("Of(%q) = %q is not a valid literal subject", tt.n, got)
		}
		back, err := s.Parse(got)
		if err != nil || back != tt.n {
			t.Errorf("Parse(%q) = %q, %v; want %q", got, back, err, tt.n)
		}
	}
	if got := (Subjects{Prefix: "spill.prod"}).Of(Home(1)); got != "spill.prod.ch.timeline.1" {
		t.Errorf("custom prefix: got %q", got)
	}
}

func TestSubjectsControl(t *testing.T) {
	for _, s := range []Subjects{{}, {Prefix: "x-y.z_1"}} {
		p := s.prefix()
		if got, want := s.Timelines(), p+".ch.timeline.>"; got != want {
			t.Errorf("Timelines() = %q, want %q", got, want)
		}
		if got, want := s.Interest(), p+".ctl.interest"; got != want {
			t.Errorf("Interest() = %q, want %q", got, want)
		}
		if got, want := s.Resync(), p+".ctl.resync"; got != want {
			t.Errorf("Resync() = %q, want %q", got, want)
		}
		if !server.IsValidSubject(s.Timelines()) || !server.IsValidLiteralSubject(s.Interest()) || !server.IsValidLiteralSubject(s.Resync()) {
			t.Errorf("invalid control subjects %q %q %q", s.Timelines(), s.Interest(), s.Resync())
		}
		for _, ctl := range []string{s.Interest(), s.Resync()} {
			if _, err := s.Parse(ctl); !errors.Is(err, ErrNotChannel) {
				t.Errorf("Parse(%q) err = %v, want ErrNotChannel", ctl, err)
			}
			if server.SubjectMatchesFilter(ctl, s.Timelines()) {
				t.Errorf("Timelines() matches %q", ctl)
			}
			for _, n := range []Name{"ctl:interest", "ctl:resync", "ctl", "", "interest", "resync"} {
				if s.Of(n) == ctl {
					t.Errorf("Of(%q) collides with %q", n, ctl)
				}
			}
		}
	}
}

func TestTimelinesMatches(t *testing.T) {
	s := Subjects{}
	tests := []struct {
		n    Name
		want bool
	}{
		{Home(1), true},
		{Public(ScopeAll, false), true},
		{Hashtag("😀", false), true},
		{"timeline:", true},
		{"timeline", false},
		{"timelines:x", false},
		{"ctl:interest", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := server.SubjectMatchesFilter(s.Of(tt.n), s.Timelines()); got != tt.want {
			t.Errorf("Of(%q)=%q matches %q: %v, want %v", tt.n, s.Of(tt.n), s.Timelines(), got, tt.want)
		}
		if got := strings.HasPrefix(string(tt.n), "timeline:"); got != tt.want {
			t.Errorf("test table inconsistent for %q", tt.n)
		}
	}
	if server.SubjectMatchesFilter(s.Interest(), s.Timelines()) {
		t.Error("Timelines() matches Interest()")
	}
}

func TestParseRejects(t *testing.T) {
	s := Subjects{}
	for _, subj := range []string{
		"",
		"mastodon",
		"mastodon.ch",
		"mastodon.ch.",
		"other.ch.timeline.public",
		"mastodon.ctl.interest",
		"mastodon.ch.timeline..public",
		"mastodon.ch.timeline.public.",
		"mastodon.ch.timeline.%41", // 'A' must not be escaped
		"mastodon.ch.timeline.%e9", // lowercase hex
		"mastodon.ch.timeline.%E",  // truncated
		"mastodon.ch.timeline.%%",  // bare % inside a longer token
		"mastodon.ch.timeline.a%",  // trailing bare %
		"mastodon.ch.timeline.%GG", // not hex
		"mastodon.ch.timeline.a b", // raw space
		"mastodon.ch.timeline.*",   // wildcard
		"mastodon.ch.timeline.>",   // wildcard
		"mastodon.ch.timeline.caf\xc3\xa9",
	} {
		if n, err := s.Parse(subj); !errors.Is(err, ErrNotChannel) {
			t.Errorf("Parse(%q) = %q, %v; want ErrNotChannel", subj, n, err)
		}
	}
}

func TestValidPrefix(t *testing.T) {
	for _, p := range []string{"mastodon", "a.b.c", "spill-way_1", "A", "x.y-z", strings.Repeat("p", MaxPrefixLen)} {
		if err := ValidPrefix(p); err != nil {
			t.Errorf("ValidPrefix(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"", ".", "a.", ".a", "a..b", "a b", "a.*", ">", "a%b", "é", "a:b", "a\tb", strings.Repeat("p", MaxPrefixLen+1)} {
		if err := ValidPrefix(p); !errors.Is(err, ErrInvalidPrefix) {
			t.Errorf("ValidPrefix(%q) = %v, want ErrInvalidPrefix", p, err)
		}
	}
}

var fuzzSeeds = []string{
	"timeline:public", "timeline:public:local:media", "timeline:109000000000000001",
	"timeline:5:notifications", "timeline:list:12", "timeline:hashtag:café:local",
	"timeline:hashtag:", "timeline:access_token:3", "timeline:system:3",
	"timeline:hashtag:日本語:local", "timeline:list:  +0005001 ", "timeline:hashtag:a\u200cb",
	"", ":", "a::b", "%", "%25", "ctl:interest", "a.b*c>d", "\xff\x00 \t\n", "timeline:>", "timeline:*:x",
	strings.Repeat("\xff", MaxNameLen), strings.Repeat("\xff", MaxNameLen+1), strings.Repeat(":", MaxNameLen),
	"timeline:hashtag:" + strings.Repeat("a", 5000),
}

// maxPrefix is a prefix of MaxPrefixLen bytes.
var maxPrefix = strings.Repeat("abcdefg.", MaxPrefixLen/8)[:MaxPrefixLen-1] + "z"

// checkSubject fails unless subj is what NATS accepts as a literal subject
// and Spillway's rule produces: non-empty '.'-separated tokens of
// [A-Za-z0-9_%-] (no whitespace, control bytes, wildcards or non-ASCII),
// within MaxSubjectLen.
func checkSubject(t *testing.T, name, subj string) {
	t.Helper()
	if !server.IsValidLiteralSubject(subj) {
		t.Fatalf("Of(%q) = %q is not a valid literal subject", name, subj)
	}
	if len(subj) > MaxSubjectLen {
		t.Fatalf("Of(%.40q…) has %d bytes, more than MaxSubjectLen %d", name, len(subj), MaxSubjectLen)
	}
	for tok := range strings.SplitSeq(subj, ".") {
		if tok == "" {
			t.Fatalf("Of(%q) = %q has an empty token", name, subj)
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; !isPlain(c) && c != '%' {
				t.Fatalf("Of(%q) = %q has byte %#x", name, subj, c)
			}
		}
	}
}

// Any bytes give a subject Parse reverses; a name CheckName accepts gives
// one NATS can carry, under any valid prefix; CheckName refuses exactly the
// names longer than MaxNameLen.
func FuzzSubjectRoundTrip(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, "")
		f.Add(s, "spill.prod")
		f.Add(s, maxPrefix)
	}
	f.Fuzz(func(t *testing.T, name, prefix string) {
		if ValidPrefix(prefix) != nil {
			prefix = ""
		}
		s := Subjects{Prefix: prefix}
		subj := s.Of(Name(name))
		if err := CheckName(Name(name)); (err != nil) != (len(name) > MaxNameLen) {
			t.Fatalf("CheckName(%d bytes) = %v", len(name), err)
		} else if err == nil {
			checkSubject(t, name, subj)
		} else if !errors.Is(err, ErrNameTooLong) {
			t.Fatalf("CheckName error %v does not wrap ErrNameTooLong", err)
		}
		if limit := len(s.prefix()) + len(".ch.") + 3*len(name) + 1; len(subj) > limit {
			t.Fatalf("Of(%q) = %q: %d bytes, more than %d", name, subj, len(subj), limit)
		}
		if !strings.HasPrefix(subj, s.prefix()+".ch.") {
			t.Fatalf("Of(%q) = %q lacks prefix", name, subj)
		}
		for i := 0; i < len(subj); i++ {
			if subj[i] >= 0x80 || subj[i] <= ' ' {
				t.Fatalf("Of(%q) = %q has byte %#x", name, subj, subj[i])
			}
		}
		if subj == s.Interest() || subj == s.Resync() {
			t.Fatalf("Of(%q) collides with a control subject", name)
		}
		if got := server.SubjectMatchesFilter(subj, s.Timelines()); got != strings.HasPrefix(name, "timeline:") {
			t.Fatalf("Of(%q) = %q matches Timelines(): %v", name, subj, got)
		}
		back, err := s.Parse(subj)
		if err != nil || string(back) != name {
			t.Fatalf("Parse(Of(%q)) = %q, %v", name, back, err)
		}
	})
}

// FuzzSubjectInjective checks both directions of the bijection: distinct
// names give distinct subjects, and any string Parse accepts is exactly
// Of of what it returns.
func FuzzSubjectInjective(f *testing.F) {
	for i, a := range fuzzSeeds {
		f.Add(a, fuzzSeeds[(i+1)%len(fuzzSeeds)])
	}
	f.Add("a:b", "a.b")
	f.Add("a%2Eb", "a.b")
	f.Add("", ":")
	f.Fuzz(func(t *testing.T, a, b string) {
		s := Subjects{}
		if a != b && s.Of(Name(a)) == s.Of(Name(b)) {
			t.Fatalf("Of(%q) == Of(%q) == %q", a, b, s.Of(Name(a)))
		}
		// Treat b as a candidate subject too.
		if n, err := s.Parse(b); err == nil && s.Of(n) != b {
			t.Fatalf("Parse(%q) = %q but Of gives %q", b, n, s.Of(n))
		}
	})
}

func BenchmarkSubjectsOf(b *testing.B) {
	s := Subjects{}
	for _, bm := range []struct {
		name string
		n    Name
	}{
		{"home", Home(109000000000000001)},
		{"public", Public(ScopeLocal, true)},
		{"hashtag-utf8", Hashtag("日本語", false)},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = s.Of(bm.n)
			}
		})
	}
}

func BenchmarkSubjectsParse(b *testing.B) {
	s := Subjects{}
	subj := s.Of(Home(109000000000000001))
	b.ReportAllocs()
	for b.Loop() {
		_, _ = s.Parse(subj)
	}
}
