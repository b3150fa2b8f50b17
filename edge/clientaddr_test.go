package edge

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"unicode"
)

func TestParseTrustedProxies(t *testing.T) {
	const def = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
	tests := []struct {
		in, want string // want "" means an error
	}{
		{"", def},
		{"  \t", def},
		{"loopback,uniquelocal", def},
		{"loopback", "127.0.0.0/8,::1/128"},
		{"linklocal", "169.254.0.0/16,fe80::/10"},
		{"loopback linklocal\tuniquelocal", "127.0.0.0/8,::1/128,169.254.0.0/16,fe80::/10,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"},
		{"10.0.0.1, 192.168.0.0/16", "10.0.0.1/32,192.168.0.0/16"},
		{"10.0.0.1 ,\n 203.0.113.0/24,", "10.0.0.1/32,203.0.113.0/24"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"10.0.0.0/255.0.0.0", "10.0.0.0/8"},
		{"10.0.0.0/255.255.255.255", "10.0.0.0/32"},
		{"10.0.0.0/008", "10.0.0.0/8"},
		{"::ffff:10.0.0.1", "10.0.0.1/32"},
		{"::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"fe80::1%eth0", "fe80::1/128"},
		{",", ""},
		{"nope", ""},
		{"Loopback", ""},
		{"10.0.0.0/0", ""},
		{"::/0", ""},
		{"10.0.0.0/33", ""},
		{"2001:db8::/129", ""},
		{"10.0.0.0/", ""},
		{"10.0.0.0/8x", ""},
		{"10.0.0.0/255.0.255.0", ""},
		{"10.0.0.0/0.0.0.0", ""},
		{"2001:db8::/ffff::", ""},
		{"0x7f000001", ""},
		{"127.1", ""},
		{"10.0.0.0/8/8", ""},
		{"loopback,10.0.0.300", ""},
	}
	for _, tc := range tests {
		got, err := ParseTrustedProxies(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseTrustedProxies(%q) = %s, want an error", tc.in, got)
		case tc.want != "" && err != nil:
			t.Errorf("ParseTrustedProxies(%q): %v", tc.in, err)
		case err == nil && got.String() != tc.want:
			t.Errorf("ParseTrustedProxies(%q) = %s, want %s", tc.in, got, tc.want)
		case err != nil && !strings.Contains(err.Error(), "\""):
			t.Errorf("ParseTrustedProxies(%q): error %q does not quote the value", tc.in, err)
		}
	}
}

func TestClientAddr(t *testing.T) {
	def, _ := ParseTrustedProxies("")
	only, _ := ParseTrustedProxies("203.0.113.0/24")
	mapped, _ := ParseTrustedProxies("::ffff:0:0/96")
	unix := netip.Addr{}
	tests := []struct {
		name  string
		trust *TrustedProxies
		peer  netip.Addr
		xff   string
		want  netip.Addr // invalid: unknown
	}{
		{"untrusted peer, header ignored", def, ip("198.51.100.9"), "1.2.3.4", ip("198.51.100.9")},
		{"trusted peer, no header", def, ip("127.0.0.1"), "", ip("127.0.0.1")},
		{"trusted peer", def, ip("127.0.0.1"), "203.0.113.7", ip("203.0.113.7")},
		{"entries left of an untrusted hop are the client's own claims", def, ip("127.0.0.1"), "198.51.100.1, 203.0.113.7", ip("203.0.113.7")},
		{"chain of trusted proxies", def, ip("127.0.0.1"), "198.51.100.1, 10.0.0.2", ip("198.51.100.1")},
		{"all trusted: the left-most entry", def, ip("127.0.0.1"), "10.0.0.3, 10.0.0.2", ip("10.0.0.3")},
		{"not an address: its reporter", def, ip("127.0.0.1"), "junk, 10.0.0.2", ip("10.0.0.2")},
		{"a port is not an address", def, ip("127.0.0.1"), "203.0.113.7:1234", ip("127.0.0.1")},
		{"tab is not trimmed", def, ip("127.0.0.1"), "\t203.0.113.7", ip("127.0.0.1")},
		{"spaces and empty entries", def, ip("127.0.0.1"), " , 203.0.113.7 ,, ", ip("203.0.113.7")},
		{"mapped peer matches IPv4 ranges", def, ip("::ffff:127.0.0.1"), "203.0.113.7", ip("203.0.113.7")},
		{"mapped result is IPv4", def, ip("::1"), "::ffff:203.0.113.7", ip("203.0.113.7")},
		{"IPv6", def, ip("::1"), "2001:db8::1", ip("2001:db8::1")},
		{"zone dropped", def, ip("::1"), "fe80::1%eth0", ip("fe80::1")},
		{"IPv4 matches mapped ranges", mapped, ip("192.0.2.1"), "198.51.100.1", ip("198.51.100.1")},
		{"unix peer, loopback trusted", def, unix, "203.0.113.7", ip("203.0.113.7")},
		{"unix peer without header", def, unix, "", unix},
		{"unix peer, loopback not trusted", only, unix, "198.51.100.1", unix},
		{"loopback not trusted", only, ip("127.0.0.1"), "198.51.100.1", ip("127.0.0.1")},
		{"custom range", only, ip("203.0.113.1"), "198.51.100.1, 203.0.113.2", ip("198.51.100.1")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.trust.clientAddr(tc.peer, tc.xff); got != tc.want {
				t.Fatalf("clientAddr(%v, %q) = %v, want %v", tc.peer, tc.xff, got, tc.want)
			}
		})
	}
}

// Several X-Forwarded-For headers count as one list, in order, as Node
// joins them.
func TestClientOfJoinsHeaders(t *testing.T) {
	def, _ := ParseTrustedProxies("")
	e := &Edge{cfg: Config{TrustedProxies: def}}
	r := &http.Request{RemoteAddr: "127.0.0.1:5000", Header: http.Header{"X-Forwarded-For": {"198.51.100.1", "10.0.0.2"}}}
	c := e.clientOf(r)
	if c.addr != ip("198.51.100.1") || c.peer != ip("127.0.0.1") || c.trusted || c.limitKey() != ip("198.51.100.1") {
		t.Fatalf("got %+v", c)
	}
	for _, xff := range []string{"", "10.0.0.3"} {
		r := &http.Request{RemoteAddr: "127.0.0.1:5000", Header: http.Header{"X-Forwarded-For": {xff}}}
		if c := e.clientOf(r); !c.trusted || c.limitKey().IsValid() {
			t.Fatalf("X-Forwarded-For %q: %+v is counted", xff, c)
		}
	}
	if got := c.logAttrs(); !slices.Equal(got, []any{"remote_addr", "198.51.100.1", "peer_addr", "127.0.0.1"}) {
		t.Fatalf("log attrs %v", got)
	}
	r = &http.Request{RemoteAddr: "@", Header: http.Header{}}
	if got := e.clientOf(r).logAttrs(); !slices.Equal(got, []any{"remote_addr", "unix"}) {
		t.Fatalf("unix log attrs %v", got)
	}
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// FuzzParseTrustedProxies checks that a parsed value reads back to the
// same set, that it trusts an address exactly when one of its items does,
// and that every address listed on its own is trusted.
func FuzzParseTrustedProxies(f *testing.F) {
	for _, s := range []string{"", "loopback,uniquelocal", "10.0.0.1, 192.168.0.0/16", "10.0.0.0/255.0.0.0",
		"::ffff:10.0.0.1", "fe80::1%eth0 linklocal", "2001:db8::/32,", "10.0.0.0/0", "x"} {
		f.Add(s, "10.0.0.1")
	}
	f.Fuzz(func(t *testing.T, s, addr string) {
		tp, err := ParseTrustedProxies(s)
		if err != nil {
			return
		}
		for _, p := range tp.prefixes {
			if !p.IsValid() || p != p.Masked() || p.Bits() <= 0 || p.Addr().Zone() != "" {
				t.Fatalf("%q: bad prefix %v", s, p)
			}
		}
		back, err := ParseTrustedProxies(tp.String())
		if err != nil || !slices.Equal(back.prefixes, tp.prefixes) {
			t.Fatalf("%q: %s reads back as %v, %v", s, tp, back, err)
		}
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return
		}
		items := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
		if strings.TrimSpace(s) == "" {
			items = []string{"loopback", "uniquelocal"}
		}
		some := false
		for _, item := range items {
			one, err := ParseTrustedProxies(item)
			if err != nil {
				t.Fatalf("%q parses but its item %q does not: %v", s, item, err)
			}
			some = some || one.trusts(a)
			if item == addr && !one.trusts(a) {
				t.Fatalf("%q does not trust itself", item)
			}
		}
		if tp.trusts(a) != some {
			t.Fatalf("%q trusts %v: %v, its items: %v", s, a, tp.trusts(a), some)
		}
	})
}

// FuzzClientAddr compares clientAddr with a transcription of proxy-addr's
// algorithm (the X-Forwarded-For parser and the walk), apart from the two
// documented differences: a Unix socket peer counts as 127.0.0.1 for
// trust, and where proxy-addr would return an entry that is not an
// address, clientAddr returns the hop before it.
func FuzzClientAddr(f *testing.F) {
	for _, s := range [][3]string{
		{"", "127.0.0.1", "203.0.113.7"},
		{"", "127.0.0.1", "198.51.100.1, 10.0.0.2"},
		{"", "127.0.0.1", "junk, 10.0.0.2"},
		{"", "::ffff:127.0.0.1", " , 203.0.113.7 ,, "},
		{"loopback", "", "10.0.0.1"},
		{"203.0.113.0/24", "203.0.113.1", "::1, 203.0.113.9"},
		{"::ffff:0:0/96", "192.0.2.1", "fe80::1%eth0"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, trust, peer, xff string) {
		tp, err := ParseTrustedProxies(trust)
		if err != nil {
			return
		}
		p, err := netip.ParseAddr(peer)
		if err != nil {
			p, peer = netip.Addr{}, ""
		}
		got := tp.clientAddr(p, xff)
		if got.Is4In6() || got.Zone() != "" {
			t.Fatalf("result %v not normalised", got)
		}
		addrs := append([]string{peer}, proxyAddrParse(xff)...)
		trusted := func(s string) bool {
			if s == "" { // the Unix socket peer
				return tp.trusts(netip.AddrFrom4([4]byte{127, 0, 0, 1}))
			}
			a, err := netip.ParseAddr(s)
			return err == nil && tp.trusts(a)
		}
		i := 0
		for i < len(addrs)-1 && trusted(addrs[i]) {
			i++
		}
		if _, err := netip.ParseAddr(addrs[i]); err != nil && i > 0 {
			i-- // not an address: the hop that reported it
		}
		want := netip.Addr{}
		if a, err := netip.ParseAddr(addrs[i]); err == nil {
			want = a.WithZone("").Unmap()
		}
		if got != want {
			t.Fatalf("trust %q, peer %q, X-Forwarded-For %q: got %v, want %v (%q)", trust, peer, xff, got, want, addrs)
		}
		if !p.IsValid() && got.IsValid() && xff == "" {
			t.Fatalf("an address for a Unix socket peer without a header: %v", got)
		}
		if p.IsValid() && !tp.trusts(p) && got != p.Unmap() {
			t.Fatalf("untrusted peer %v replaced by %v", p, got)
		}
	})
}

// proxyAddrParse is proxy-addr's X-Forwarded-For parser, transcribed: it
// scans backwards and returns the entries right-most first, each trimmed
// of spaces, empty ones skipped.
func proxyAddrParse(header string) []string {
	end, start := len(header), len(header)
	var list []string
	for i := len(header) - 1; i >= 0; i-- {
		switch header[i] {
		case ' ':
			if start == end {
				start, end = i, i
			}
		case ',':
			if start != end {
				list = append(list, header[start:end])
			}
			start, end = i, i
		default:
			start = i
		}
	}
	if start != end {
		list = append(list, header[start:end])
	}
	return list
}
