package edge

import (
	"errors"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits bound what one client may take of an edge. Each limit is per
// edge process; zero means no limit. Addresses are the client's as
// TrustedProxies derive them, and an IPv6 client counts by its /64 (one
// host or home network), so that a single machine cannot step around a
// limit by changing addresses within its network. Trusted addresses are
// not limited per address (see client.limitKey).
type Limits struct {
	// ConnectionsPerIP caps concurrent connections from one address;
	// beyond it new ones get 429.
	ConnectionsPerIP int
	// ConnectionsPerAccount caps concurrent connections of one account.
	ConnectionsPerAccount int
	// ConnectRate paces new streaming requests from one address, per
	// second, with ConnectBurst requests at once. Every request counts,
	// refused ones too, so that a flood of bad tokens costs Postgres no
	// more than this.
	ConnectRate  float64
	ConnectBurst int
	// StreamsPerSocket caps the streams subscribed at once on one
	// WebSocket.
	StreamsPerSocket int
	// SubscribeRate paces subscribe messages on one WebSocket, per
	// second, with SubscribeBurst at once.
	SubscribeRate  float64
	SubscribeBurst int
}

// DefaultLimits are the limits the edge command applies unless told
// otherwise: far above what a Mastodon client does, so that only abuse
// meets them (README, "Limits", gives the reasons).
func DefaultLimits() Limits {
	return Limits{
		ConnectionsPerIP:      1000,
		ConnectionsPerAccount: 200,
		ConnectRate:           20,
		ConnectBurst:          200,
		StreamsPerSocket:      100,
		SubscribeRate:         10,
		SubscribeBurst:        50,
	}
}

func (l Limits) validate() error {
	if l.ConnectionsPerIP < 0 || l.ConnectionsPerAccount < 0 || l.StreamsPerSocket < 0 ||
		l.ConnectRate < 0 || l.SubscribeRate < 0 || l.ConnectBurst < 0 || l.SubscribeBurst < 0 {
		return errors.New("limits must not be negative")
	}
	if l.ConnectRate > 0 && l.ConnectBurst < 1 || l.SubscribeRate > 0 && l.SubscribeBurst < 1 {
		return errors.New("a rate limit needs a burst of at least 1")
	}
	return nil
}

// Refusals of the limits: 429, as Mastodon's API answers a client over its
// rate limits (whose message errTooManyRequests reuses).
var (
	errTooManyRequests   = &apiError{429, "Too many requests"}
	errTooManyFromIP     = &apiError{429, "Too many connections from this address"}
	errTooManyForAccount = &apiError{429, "Too many connections for this account"}
	errTooManyStreams    = &apiError{429, "Too many streams on this connection"}
)

// Reasons of spillway_connections_refused_total and
// spillway_subscriptions_refused_total.
const (
	refusedDraining      = "draining"
	refusedNATS          = "nats_down"
	refusedMax           = "max_connections"
	refusedPerIP         = "connections_per_ip"
	refusedPerAccount    = "connections_per_account"
	refusedConnectRate   = "connect_rate"
	refusedStreams       = "streams_per_websocket"
	refusedSubscribeRate = "subscribe_rate"
)

// maxPaced bounds the addresses whose connection pace is tracked. An
// entry lives until its bucket has refilled (ConnectBurst/ConnectRate
// after its last request, at most sweepEvery later), so only a flood of
// tens of thousands of distinct addresses per minute reaches it; new
// addresses then go unpaced until entries expire, while the connection
// caps still apply. Each entry costs about 150 bytes.
const maxPaced = 1 << 16

// sweepEvery is how often, at most, expired pace entries are dropped.
const sweepEvery = 10 * time.Second

// clientLimits counts connections per address and per account and paces
// new connections per address. Its maps hold only what is live: an
// address or account with no connection has no count, and a pace entry
// whose bucket is full again is dropped by the next sweep.
type clientLimits struct {
	cfg Limits

	mu         sync.Mutex
	perIP      map[netip.Addr]int
	perAccount map[int64]int
	paced      map[netip.Addr]*rate.Limiter
	swept      time.Time // last sweep of paced
}

func newClientLimits(cfg Limits) *clientLimits {
	return &clientLimits{cfg: cfg, perIP: make(map[netip.Addr]int), perAccount: make(map[int64]int),
		paced: make(map[netip.Addr]*rate.Limiter)}
}

// limitKey is what per-address limits count a client by: its IPv4
// address, or its IPv6 /64. Invalid (not counted) when the address is
// unknown.
func limitKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p.Addr()
	}
	return a
}

// allowNew reports whether one more streaming request from key is within
// the connection pace.
func (l *clientLimits) allowNew(key netip.Addr, now time.Time) bool {
	if l.cfg.ConnectRate <= 0 || !key.IsValid() {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.paced[key]
	if lim == nil {
		if now.Sub(l.swept) >= sweepEvery || len(l.paced) >= maxPaced && now.Sub(l.swept) >= time.Second {
			l.sweepLocked(now)
		}
		if len(l.paced) >= maxPaced {
			return true
		}
		lim = rate.NewLimiter(rate.Limit(l.cfg.ConnectRate), l.cfg.ConnectBurst)
		l.paced[key] = lim
	}
	return lim.AllowN(now, 1)
}

// sweepLocked drops the pace entries whose bucket is full again: they are
// no different from a fresh one. Lock must be held.
func (l *clientLimits) sweepLocked(now time.Time) {
	l.swept = now
	full := float64(l.cfg.ConnectBurst)
	for k, lim := range l.paced {
		if lim.TokensAt(now) >= full {
			delete(l.paced, k)
		}
	}
}

// take counts a connection of key and account, or refuses it with the
// limit it would exceed (the metric's reason, and the client's error).
// Account 0 (no account) and an invalid key are not counted.
func (l *clientLimits) take(key netip.Addr, account int64) (string, *apiError) {
	perIP, perAccount := l.counted(key, account)
	if !perIP && !perAccount {
		return "", nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if perIP && l.perIP[key] >= l.cfg.ConnectionsPerIP {
		return refusedPerIP, errTooManyFromIP
	}
	if perAccount && l.perAccount[account] >= l.cfg.ConnectionsPerAccount {
		return refusedPerAccount, errTooManyForAccount
	}
	if perIP {
		l.perIP[key]++
	}
	if perAccount {
		l.perAccount[account]++
	}
	return "", nil
}

// counted reports which of the connection caps count key and account.
func (l *clientLimits) counted(key netip.Addr, account int64) (perIP, perAccount bool) {
	return l.cfg.ConnectionsPerIP > 0 && key.IsValid(), l.cfg.ConnectionsPerAccount > 0 && account != 0
}

// give undoes a successful take.
func (l *clientLimits) give(key netip.Addr, account int64) {
	perIP, perAccount := l.counted(key, account)
	if !perIP && !perAccount {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if perIP {
		if n := l.perIP[key] - 1; n > 0 {
			l.perIP[key] = n
		} else {
			delete(l.perIP, key)
		}
	}
	if perAccount {
		if n := l.perAccount[account] - 1; n > 0 {
			l.perAccount[account] = n
		} else {
			delete(l.perAccount, account)
		}
	}
}

// sizes reports the entries held (tests).
func (l *clientLimits) sizes() (perIP, perAccount, paced int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.perIP), len(l.perAccount), len(l.paced)
}

// subscribePace paces one WebSocket's subscribe messages. Only the
// socket's input rounds use it, one at a time, so it needs no lock of its
// own beyond the limiter's; the limiter is made at the first subscribe
// message, so a socket that never sends one costs nothing.
type subscribePace struct {
	lim *rate.Limiter
}

// allow reports whether one more subscribe message is within cfg's pace.
func (p *subscribePace) allow(cfg Limits, now time.Time) bool {
	if cfg.SubscribeRate <= 0 {
		return true
	}
	if p.lim == nil {
		p.lim = rate.NewLimiter(rate.Limit(cfg.SubscribeRate), cfg.SubscribeBurst)
	}
	return p.lim.AllowN(now, 1)
}
