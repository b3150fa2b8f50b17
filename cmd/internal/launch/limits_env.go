package launch

import (
	"fmt"
	"math"
	"strconv"

	"github.com/spillway/spillway/edge"
	"github.com/spillway/spillway/shared/mastodonenv"
)

// limitVariables lists the per-client limits, for Variables. Their
// defaults are edge.DefaultLimits (a test keeps the two in step).
var limitVariables = []struct{ Name, Default, Help string }{
	{"STREAMING_MAX_CONNECTIONS_PER_IP", "1000", "Edge: concurrent connections from one client address (an IPv6 client counts by its /64; behind a proxy, see TRUSTED_PROXY_IP); more get 429; 0 = no limit."},
	{"STREAMING_MAX_CONNECTIONS_PER_ACCOUNT", "200", "Edge: concurrent connections of one account; more get 429; 0 = no limit."},
	{"STREAMING_CONNECT_RATE_PER_IP", "20", "Edge: streaming requests per second from one client address (refused ones too), once STREAMING_CONNECT_BURST_PER_IP is spent; more get 429; 0 = no limit."},
	{"STREAMING_CONNECT_BURST_PER_IP", "200", "Edge: streaming requests one client address may make at once before STREAMING_CONNECT_RATE_PER_IP paces it."},
	{"STREAMING_MAX_STREAMS_PER_WEBSOCKET", "100", "Edge: streams subscribed at once on one WebSocket; more get an error frame with status 429; 0 = no limit."},
	{"STREAMING_SUBSCRIBE_RATE", "10", "Edge: subscribe messages per second on one WebSocket, once STREAMING_SUBSCRIBE_BURST is spent; more get an error frame with status 429; 0 = no limit."},
	{"STREAMING_SUBSCRIBE_BURST", "50", "Edge: subscribe messages one WebSocket may send at once before STREAMING_SUBSCRIBE_RATE paces it."},
}

// loadClientLimits reads TRUSTED_PROXY_IP (Mastodon's) and the per-client
// limits.
func loadClientLimits(env mastodonenv.Env, s *Settings) error {
	var err error
	if s.TrustedProxies, err = edge.ParseTrustedProxies(env.Get("TRUSTED_PROXY_IP")); err != nil {
		return fmt.Errorf("invalid TRUSTED_PROXY_IP environment variable: %w", err)
	}
	def := edge.DefaultLimits()
	l := &s.Limits
	for _, v := range []struct {
		name string
		to   *int
		def  int
	}{
		{"STREAMING_MAX_CONNECTIONS_PER_IP", &l.ConnectionsPerIP, def.ConnectionsPerIP},
		{"STREAMING_MAX_CONNECTIONS_PER_ACCOUNT", &l.ConnectionsPerAccount, def.ConnectionsPerAccount},
		{"STREAMING_CONNECT_BURST_PER_IP", &l.ConnectBurst, def.ConnectBurst},
		{"STREAMING_MAX_STREAMS_PER_WEBSOCKET", &l.StreamsPerSocket, def.StreamsPerSocket},
		{"STREAMING_SUBSCRIBE_BURST", &l.SubscribeBurst, def.SubscribeBurst},
	} {
		if *v.to, err = intVar(env, v.name, v.def); err != nil {
			return err
		}
	}
	if l.ConnectRate, err = rateVar(env, "STREAMING_CONNECT_RATE_PER_IP", def.ConnectRate); err != nil {
		return err
	}
	if l.SubscribeRate, err = rateVar(env, "STREAMING_SUBSCRIBE_RATE", def.SubscribeRate); err != nil {
		return err
	}
	if l.ConnectRate > 0 && l.ConnectBurst < 1 {
		return fmt.Errorf("invalid STREAMING_CONNECT_BURST_PER_IP environment variable: must be at least 1 while STREAMING_CONNECT_RATE_PER_IP is not 0")
	}
	if l.SubscribeRate > 0 && l.SubscribeBurst < 1 {
		return fmt.Errorf("invalid STREAMING_SUBSCRIBE_BURST environment variable: must be at least 1 while STREAMING_SUBSCRIBE_RATE is not 0")
	}
	return nil
}

// rateVar reads a non-negative number of events per second, fractions
// allowed (0.5: one every two seconds).
func rateVar(env mastodonenv.Env, name string, def float64) (float64, error) {
	v := env.Get(name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("invalid %s environment variable: %q is not a non-negative number per second", name, v)
	}
	return f, nil
}
