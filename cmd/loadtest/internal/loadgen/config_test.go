package loadgen

import (
	"bytes"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/spillway/spillway/shared/benchdata/fixtures"
)

func TestParseStreams(t *testing.T) {
	tests := []struct {
		in      string
		want    []Stream
		wantErr bool
	}{
		{in: "public", want: []Stream{{Name: "public", Weight: 1}}},
		{in: " public=3 , user ", want: []Stream{{Name: "public", Weight: 3}, {Name: "user", Weight: 1}}},
		{in: "hashtag:Cats=2,hashtag:local:dogs,public:local:media", want: []Stream{
			{Name: "hashtag", Tag: "Cats", Weight: 2}, {Name: "hashtag:local", Tag: "dogs", Weight: 1},
			{Name: "public:local:media", Weight: 1}}},
		{in: "", wantErr: true},
		{in: "nope", wantErr: true},
		{in: "hashtag:", wantErr: true},
		{in: "public=0", wantErr: true},
		{in: "public=x", wantErr: true},
		{in: "list", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseStreams(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %+v want %+v", got, tt.want)
			}
		})
	}
}

func TestStreamShapes(t *testing.T) {
	tests := []struct {
		s                 Stream
		path, channel, ws string
		sub               string
	}{
		{Stream{Name: "user"}, "/api/v1/streaming/user", "timeline:42", "stream=user", `{"type":"subscribe","stream":"user"}`},
		{Stream{Name: "user:notification"}, "/api/v1/streaming/user/notification", "timeline:42:notifications", "stream=user%3Anotification", `{"type":"subscribe","stream":"user:notification"}`},
		{Stream{Name: "direct"}, "/api/v1/streaming/direct", "timeline:direct:42", "stream=direct", `{"type":"subscribe","stream":"direct"}`},
		{Stream{Name: "public"}, "/api/v1/streaming/public", "timeline:public", "stream=public", `{"type":"subscribe","stream":"public"}`},
		{Stream{Name: "public:local:media"}, "/api/v1/streaming/public/local?only_media=true", "timeline:public:local:media", "stream=public%3Alocal%3Amedia", `{"type":"subscribe","stream":"public:local:media"}`},
		{Stream{Name: "public:remote"}, "/api/v1/streaming/public/remote", "timeline:public:remote", "stream=public%3Aremote", `{"type":"subscribe","stream":"public:remote"}`},
		{Stream{Name: "hashtag", Tag: "Foo-Bar"}, "/api/v1/streaming/hashtag?tag=Foo-Bar", "timeline:hashtag:foobar", "stream=hashtag&tag=Foo-Bar", `{"type":"subscribe","stream":"hashtag","tag":"Foo-Bar"}`},
		{Stream{Name: "hashtag:local", Tag: "x y"}, "/api/v1/streaming/hashtag/local?tag=x+y", "timeline:hashtag:xy:local", "stream=hashtag%3Alocal&tag=x+y", `{"type":"subscribe","stream":"hashtag:local","tag":"x y"}`},
	}
	for _, tt := range tests {
		t.Run(tt.s.Label(), func(t *testing.T) {
			if got := tt.s.SSEPath(); got != tt.path {
				t.Errorf("path %q want %q", got, tt.path)
			}
			if got := tt.s.Channel("42"); got != tt.channel {
				t.Errorf("channel %q want %q", got, tt.channel)
			}
			if got := tt.s.WSQuery().Encode(); got != tt.ws {
				t.Errorf("ws query %q want %q", got, tt.ws)
			}
			if got := string(tt.s.SubscribeMessage()); got != tt.sub {
				t.Errorf("subscribe %s want %s", got, tt.sub)
			}
		})
	}
}

func TestWeightedCycle(t *testing.T) {
	got := weightedCycle([]Stream{{Name: "a", Weight: 3}, {Name: "b", Weight: 1}, {Name: "c", Weight: 2}})
	counts := map[int]int{}
	for _, i := range got {
		counts[i]++
	}
	if len(got) != 6 || counts[0] != 3 || counts[1] != 1 || counts[2] != 2 {
		t.Fatalf("cycle %v", got)
	}
	if got[0] == got[1] && got[1] == got[2] {
		t.Fatalf("cycle not interleaved: %v", got)
	}
}

func TestParseTokens(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Token
		wantErr  bool
	}{
		{"plain", "a\n\nb\n", []Token{{Value: "a"}, {Value: "b"}}, false},
		{"with accounts and comments", "# header\na\t1\nb   2\r\n", []Token{{"a", "1"}, {"b", "2"}}, false},
		{"too many fields", "a 1 2\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTokens(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Fatalf("got %+v, %v", got, err)
			}
			if err != nil && strings.Contains(err.Error(), "a 1 2") {
				t.Fatalf("error leaks the token line: %v", err)
			}
		})
	}
}

func TestParseAccounts(t *testing.T) {
	toks := []Token{{Value: "a"}, {Value: "b"}}
	if err := ParseAccounts(strings.NewReader("1\n# c\n2\n"), toks); err != nil || toks[1].AccountID != "2" {
		t.Fatalf("%v %+v", err, toks)
	}
	if err := ParseAccounts(strings.NewReader("1\n"), toks); err == nil {
		t.Fatal("short accounts file accepted")
	}
	if err := ParseAccounts(strings.NewReader("1\n2\n3\n"), toks); err == nil {
		t.Fatal("long accounts file accepted")
	}
}

func TestParseSourceIPs(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "", want: nil},
		{in: "0", want: nil},
		{in: "3", want: []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}},
		{in: "127.0.0.5, ::1", want: []string{"127.0.0.5", "::1"}},
		{in: "10.0.0.1", wantErr: true},
		{in: "999", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSourceIPs(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v", err)
			}
			var s []string
			for _, ip := range got {
				s = append(s, ip.String())
			}
			if !slices.Equal(s, tt.want) {
				t.Fatalf("got %v want %v", s, tt.want)
			}
		})
	}
}

func validConfig() Config {
	u, _ := url.Parse("http://127.0.0.1:4000")
	return Config{
		BaseURL: u, Clients: 10, SSERatio: 0.5, Streams: []Stream{{Name: "public", Weight: 1}},
		ConnectRate: 100, ConnectTimeout: time.Second, Rate: 10, PayloadSize: 3000,
		Duration: time.Second, ProbeTimeout: time.Second, ProbeInterval: time.Millisecond,
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"valid", func(*Config) {}, true},
		{"https refused", func(c *Config) { c.BaseURL, _ = url.Parse("https://127.0.0.1") }, false},
		{"too many clients", func(c *Config) { c.Clients = MaxClients + 1 }, false},
		{"ratio", func(c *Config) { c.SSERatio = 1.5 }, false},
		{"user needs accounts", func(c *Config) {
			c.Streams = []Stream{{Name: "user", Weight: 1}}
			c.Tokens = []Token{{Value: "t"}}
		}, false},
		{"user with accounts", func(c *Config) {
			c.Streams = []Stream{{Name: "user", Weight: 1}}
			c.Tokens = []Token{{Value: "t", AccountID: "1"}}
		}, true},
		{"bad ramp", func(c *Config) { c.Ramp = &Ramp{Start: 5, Step: 1, Max: 4, P99Bound: time.Second} }, false},
		{"ramp", func(c *Config) { c.Clients = 0; c.Ramp = &Ramp{Start: 1, Step: 1, Max: 4, P99Bound: time.Second} }, true},
		{"rate", func(c *Config) { c.Rate = 0 }, false},
		{"non-loopback source", func(c *Config) { c.SourceIPs = []net.IP{net.IPv4(10, 0, 0, 1)} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestResolveLoopbackRefusesRemote(t *testing.T) {
	if _, err := resolveLoopback(t.Context(), "192.0.2.1", false); err == nil {
		t.Fatal("non-loopback target accepted")
	}
	if _, err := resolveLoopback(t.Context(), "::1", true); err == nil {
		t.Fatal("IPv6 target accepted with IPv4 source addresses")
	}
	ip, err := resolveLoopback(t.Context(), "127.0.0.1", true)
	if err != nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("got %v %v", ip, err)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&httpStatusError{code: 401}, "http 401"},
		{&wsErrorFrame{status: 401}, "ws error 401"},
		{&websocket.CloseError{Code: 1005}, "ws close 1005"},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, "refused"},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, "reset"},
		{errors.Join(errors.New("x"), syscall.EADDRNOTAVAIL), "no local port"},
		{syscall.EMFILE, "too many open files"},
		{errors.New("weird"), "other"},
	}
	for _, tt := range tests {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("classify(%v) = %q want %q", tt.err, got, tt.want)
		}
	}
}

func TestParseProc(t *testing.T) {
	stat := []byte("1234 (my (odd) proc) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 1000 200 0\n")
	cpu, err := parseStatCPU(stat)
	if err != nil || cpu != 300 {
		t.Fatalf("cpu %d %v", cpu, err)
	}
	if _, err := parseStatCPU([]byte("1 (x) S 1")); err == nil {
		t.Fatal("short stat accepted")
	}
	rss, err := parseStatusRSS([]byte("Name:\tx\nVmRSS:\t  12345 kB\nThreads: 1\n"))
	if err != nil || rss != 12345 {
		t.Fatalf("rss %d %v", rss, err)
	}
	if _, err := parseStatusRSS([]byte("Name: x\n")); err == nil {
		t.Fatal("missing VmRSS accepted")
	}
	if _, err := readProc(1 << 30); err == nil {
		t.Fatal("nonexistent pid accepted")
	}
}

// The token file "loadtest fixtures" writes is what ParseTokens reads.
func TestParsesFixtureTokens(t *testing.T) {
	s, err := fixtures.New(fixtures.Config{Accounts: 150, TokensPerAccount: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var tok bytes.Buffer
	if err := s.WriteTokens(&tok); err != nil {
		t.Fatal(err)
	}
	tokens, err := ParseTokens(&tok)
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 300 || tokens[0] != (Token{Value: "bench-1-1", AccountID: "200000000000000001"}) ||
		tokens[299] != (Token{Value: "bench-150-2", AccountID: "200000000000000150"}) {
		t.Fatalf("tokens %d: first %+v last %+v", len(tokens), tokens[0], tokens[len(tokens)-1])
	}
}
