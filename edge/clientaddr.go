package edge

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

// DefaultTrustedProxies is Mastodon's TRUSTED_PROXY_IP default: proxies on
// loopback and on private (unique-local) networks are believed.
const DefaultTrustedProxies = "loopback,uniquelocal"

// TrustedProxies is the set of proxies whose X-Forwarded-For the edge
// believes, as Mastodon's TRUSTED_PROXY_IP configures Express's
// `trust proxy`. The zero value trusts nobody.
type TrustedProxies struct {
	prefixes []netip.Prefix
}

// namedRanges expands the names proxy-addr knows.
func namedRanges(name string) []string {
	switch name {
	case "loopback":
		return []string{"127.0.0.1/8", "::1/128"}
	case "linklocal":
		return []string{"169.254.0.0/16", "fe80::/10"}
	case "uniquelocal":
		return []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}
	}
	return nil
}

// ParseTrustedProxies parses a TRUSTED_PROXY_IP value: addresses, CIDR
// ranges (an IPv4 range may also be written with a netmask, as
// 10.0.0.0/255.0.0.0) and the names loopback, linklocal and uniquelocal,
// separated by commas and/or whitespace. An empty value means
// DefaultTrustedProxies, as in Mastodon. Empty items (a trailing comma)
// are skipped where Express would refuse to start, though a value of
// separators only is an error; anything else that is
// not an address, a range or a name is an error, as is a prefix length of
// 0 (proxy-addr refuses it too: it would trust the whole Internet).
// Addresses take Go's strict forms: dotted decimal for IPv4, not the hex
// or octal forms JavaScript's parser also accepts.
func ParseTrustedProxies(s string) (*TrustedProxies, error) {
	if strings.TrimSpace(s) == "" {
		s = DefaultTrustedProxies
	}
	t := &TrustedProxies{}
	items := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	for _, item := range items {
		if named := namedRanges(item); named != nil {
			for _, n := range named {
				p, _ := parseProxyRange(n)
				t.prefixes = append(t.prefixes, p)
			}
			continue
		}
		p, err := parseProxyRange(item)
		if err != nil {
			return nil, err
		}
		t.prefixes = append(t.prefixes, p)
	}
	if len(t.prefixes) == 0 {
		return nil, fmt.Errorf("%q lists no address", s)
	}
	return t, nil
}

var errNoAddress = errors.New("not an IP address, a CIDR range or one of loopback, linklocal, uniquelocal")

// parseProxyRange reads one address or range as proxy-addr does: a bare
// IPv4-mapped IPv6 address means its IPv4 address; a range is a prefix
// length of 1 up to the address's size, or, for IPv4, a netmask.
func parseProxyRange(item string) (netip.Prefix, error) {
	str, bits, hasRange := item, "", false
	if i := strings.LastIndexByte(item, '/'); i >= 0 {
		str, bits, hasRange = item[:i], item[i+1:], true
	}
	a, err := netip.ParseAddr(str)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q: %w", item, errNoAddress)
	}
	a = a.WithZone("")
	if !hasRange {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	n := -1
	if bits != "" && strings.Trim(bits, "0123456789") == "" {
		if v, err := strconv.Atoi(bits); err == nil {
			n = v
		}
	} else if a.Is4() {
		n = netmaskBits(bits)
	}
	if n <= 0 || n > a.BitLen() {
		return netip.Prefix{}, fmt.Errorf("%q: invalid range", item)
	}
	return netip.PrefixFrom(a, n).Masked(), nil
}

// netmaskBits is the prefix length of an IPv4 netmask, or -1 when mask is
// not one (not IPv4, or its ones are not contiguous).
func netmaskBits(mask string) int {
	m, err := netip.ParseAddr(mask)
	if err != nil || !m.Is4() {
		return -1
	}
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := 0
	for v&(1<<31) != 0 {
		ones++
		v <<= 1
	}
	if v != 0 {
		return -1
	}
	return ones
}

// String lists the trusted ranges, comma-separated, in a form
// ParseTrustedProxies reads back to the same set.
func (t *TrustedProxies) String() string {
	parts := make([]string, len(t.prefixes))
	for i, p := range t.prefixes {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// trusts reports whether a is a trusted proxy. Like proxy-addr, an IPv4
// address matches an IPv6 range as its IPv4-mapped form, and an
// IPv4-mapped IPv6 address matches IPv4 ranges as its IPv4 address.
func (t *TrustedProxies) trusts(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.WithZone("")
	for _, p := range t.prefixes {
		x := a
		switch {
		case p.Addr().Is4() && x.Is4In6():
			x = x.Unmap()
		case p.Addr().Is6() && x.Is4():
			x = netip.AddrFrom16(x.As16())
		}
		if p.Contains(x) {
			return true
		}
	}
	return false
}

// clientAddr derives the client's address from the socket peer and the
// X-Forwarded-For header (several headers joined with commas), as Express
// does with `trust proxy`: starting from the peer, each trusted hop hands
// over to the address it reports, the right-most X-Forwarded-For entry
// not yet used; the first untrusted hop, or the left-most entry, is the
// client. Entries are separated by commas and trimmed of spaces; empty
// ones are skipped.
//
// Two differences, so the result is always an address to count a client
// by: an entry that is not an IP address ends the walk and the trusted hop
// that passed it on is the client (proxy-addr would report the text
// itself), and a peer on a Unix socket (peer invalid) is a local process,
// trusted when 127.0.0.1 is (proxy-addr trusts none, and so ignores
// X-Forwarded-For on a Unix socket). The result is invalid only for a
// Unix socket peer that is not trusted or sent no X-Forwarded-For; an
// IPv4-mapped IPv6 address is returned as IPv4.
func (t *TrustedProxies) clientAddr(peer netip.Addr, xff string) netip.Addr {
	client := peer.Unmap()
	trusted := t.trusts(peer)
	if !peer.IsValid() {
		trusted = t.trusts(netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	}
	for rest := xff; trusted && rest != ""; {
		entry := rest
		if i := strings.LastIndexByte(rest, ','); i >= 0 {
			entry, rest = rest[i+1:], rest[:i]
		} else {
			rest = ""
		}
		entry = strings.Trim(entry, " ")
		if entry == "" {
			continue
		}
		a, err := netip.ParseAddr(entry)
		if err != nil {
			break
		}
		client = a.WithZone("").Unmap()
		trusted = t.trusts(a)
	}
	return client
}

// client is where a streaming request comes from.
type client struct {
	// addr is the client's address as clientAddr derives it: what limits
	// count and logs show. Invalid when unknown.
	addr netip.Addr
	// peer is the socket peer; invalid on a Unix socket.
	peer netip.Addr
	// trusted is set when addr is itself a trusted proxy: the proxy did
	// not say whom it speaks for (or the client is one of the trusted
	// hosts, which can claim to be anyone anyway).
	trusted bool
}

// limitKey is what per-address limits count c by: none (invalid) for a
// client whose address is unknown or trusted. Counting a trusted address
// would protect nothing, since it may name any client in X-Forwarded-For,
// and would throttle every user at once behind a proxy that does not set
// the header.
func (c client) limitKey() netip.Addr {
	if c.trusted {
		return netip.Addr{}
	}
	return limitKey(c.addr)
}

// clientOf derives where r comes from.
func (e *Edge) clientOf(r *http.Request) client {
	var peer netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		peer = ap.Addr()
	}
	var xff string
	switch v := r.Header.Values("X-Forwarded-For"); len(v) {
	case 0:
	case 1:
		xff = v[0]
	default:
		xff = strings.Join(v, ",")
	}
	addr := e.cfg.TrustedProxies.clientAddr(peer, xff)
	return client{addr: addr, peer: peer, trusted: e.cfg.TrustedProxies.trusts(addr)}
}

// logAttrs are the log fields naming the client: remote_addr, the
// derived address ("unix" when none is known), and peer_addr, the socket
// peer, when it differs.
func (c client) logAttrs() []any {
	remote := addrText(c.addr)
	attrs := []any{"remote_addr", remote}
	if peer := addrText(c.peer.Unmap()); peer != remote {
		attrs = append(attrs, "peer_addr", peer)
	}
	return attrs
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return "unix"
	}
	return a.String()
}
