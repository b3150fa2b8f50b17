package channel

import "testing"

func TestConstructors(t *testing.T) {
	tests := []struct {
		got  Name
		want string
	}{
		{Public(ScopeAll, false), "timeline:public"},
		{Public(ScopeAll, true), "timeline:public:media"},
		{Public(ScopeLocal, false), "timeline:public:local"},
		{Public(ScopeLocal, true), "timeline:public:local:media"},
		{Public(ScopeRemote, false), "timeline:public:remote"},
		{Public(ScopeRemote, true), "timeline:public:remote:media"},
		{Public(Scope(200), true), "timeline:public:media"},
		{Home(109000000000000001), "timeline:109000000000000001"},
		{Home(1), "timeline:1"},
		{Notifications(109000000000000001), "timeline:109000000000000001:notifications"},
		{Direct(42), "timeline:direct:42"},
		{List("7"), "timeline:list:7"},
		{List("007"), "timeline:list:007"},
		{List(""), "timeline:list:"},
		{List("a:b.c"), "timeline:list:a:b.c"},
		{Hashtag("Café", true), "timeline:hashtag:cafe:local"},
		{Hashtag("Café", false), "timeline:hashtag:cafe"},
		{Hashtag("#Foo-Bar", false), "timeline:hashtag:foobar"},
		{Hashtag("😀", false), "timeline:hashtag:"},
		{Hashtag("", true), "timeline:hashtag::local"},
		{AccessToken(99), "timeline:access_token:99"},
		{System(109000000000000001), "timeline:system:109000000000000001"},
	}
	for _, tt := range tests {
		if string(tt.got) != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestScopeString(t *testing.T) {
	for s, want := range map[Scope]string{ScopeAll: "", ScopeLocal: "local", ScopeRemote: "remote", 9: ""} {
		if got := s.String(); got != want {
			t.Errorf("Scope(%d).String() = %q, want %q", s, got, want)
		}
	}
}

func TestTracked(t *testing.T) {
	tests := []struct {
		n    Name
		want bool
	}{
		{Home(1), true},
		{Notifications(1), true},
		{List("5"), true},
		{Direct(1), true},
		{Public(ScopeLocal, true), true},
		{Hashtag("foo", false), true},
		{Hashtag("foo", true), true},
		{AccessToken(1), false},
		{System(1), false},
		{"timeline:system", true}, // no id: not something System produces
	}
	for _, tt := range tests {
		if got := tt.n.Tracked(); got != tt.want {
			t.Errorf("%q.Tracked() = %v, want %v", tt.n, got, tt.want)
		}
	}
}

func TestSystemChannelIDs(t *testing.T) {
	tests := []struct {
		name           Name
		token, account int64
		isToken, isAcc bool
	}{
		{AccessToken(42), 42, 0, true, false},
		{System(7), 0, 7, false, true},
		{"timeline:access_token:", 0, 0, false, false},
		{"timeline:access_token:042", 0, 0, false, false},
		{"timeline:access_token:+4", 0, 0, false, false},
		{"timeline:system:99999999999999999999", 0, 0, false, false},
		{"timeline:system:1:x", 0, 0, false, false},
		{Home(3), 0, 0, false, false},
	}
	for _, tc := range tests {
		tok, okT := AccessTokenID(tc.name)
		acc, okA := SystemAccountID(tc.name)
		if tok != tc.token || okT != tc.isToken || acc != tc.account || okA != tc.isAcc {
			t.Errorf("%q: token %d %v, account %d %v", tc.name, tok, okT, acc, okA)
		}
	}
}
