// Package launch turns Mastodon's environment (plus Spillway's STREAMING_*
// variables) into running Spillway components. It is the wiring shared by
// cmd/broker and cmd/edge, so that all-in-one and split mode start the
// broker and the edge through the same code.
package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/broker"
	"github.com/spillway/spillway/edge"
	"github.com/spillway/spillway/shared/bus"
	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/mastodonenv"
	"github.com/spillway/spillway/shared/rawio"
)

// Variables lists Spillway's own environment variables with their meaning,
// for --help and the README.
var Variables = slices.Concat(coreVariables, limitVariables, natsVariables, clusterVariables)

var coreVariables = []struct{ Name, Default, Help string }{
	{"STREAMING_NATS_URL", "nats://127.0.0.1:4222 (edge); unset (broker)", "NATS server or cluster URL(s), comma-separated. Edge: where to receive events. Broker: when set, publish there instead of embedding a NATS server."},
	{"STREAMING_NATS_LISTEN", "127.0.0.1:4222 (broker); unset (all-in-one)", "Client listen address of the embedded NATS server. In all-in-one mode, setting it lets extra edges join."},
	{"STREAMING_NATS_PREFIX", "mastodon", "First token(s) of every NATS subject ([A-Za-z0-9_-] tokens, at most 128 bytes); instances sharing one NATS cluster need different prefixes."},
	{"STREAMING_MAX_CONNECTIONS", "0 (no cap)", "Edge: concurrent client connections accepted; more get 503."},
	{"STREAMING_SHUTDOWN_DELAY", "0s", "Edge: time health reports 503 before clients are closed on SIGTERM."},
	{"STREAMING_SHUTDOWN_GRACE", "5s", "Edge: window over which clients are closed on shutdown."},
	{"STREAMING_QUEUE_FRAMES", "512", "Edge: frames queued for one slow client before it is disconnected."},
	{"STREAMING_DEBUG_LISTEN", "unset", "Edge: serve Go's /debug/pprof profiles on this host:port (keep it private)."},
	{"STREAMING_NATS_SHED_AFTER", "30s", "Edge: once its NATS connection has been down this long, close its clients (spread over STREAMING_SHUTDOWN_GRACE) so the load balancer moves them, and refuse new ones until NATS is back; 0 never sheds."},
	{"STREAMING_TLS_CERT", "unset", "Edge: PEM file of the TLS certificate chain (leaf first). With STREAMING_TLS_KEY, the edge serves HTTPS with HTTP/2 and HTTP/1.1 on PORT/BIND or SOCKET; SIGHUP reloads both files (a pair that does not load keeps the one in use)."},
	{"STREAMING_TLS_KEY", "unset", "Edge: PEM file of the private key of STREAMING_TLS_CERT."},
	{"STREAMING_BROKER_HTTP_LISTEN", "unset", "Broker: serve /healthz, /readyz and /metrics on this host:port (the -metrics-listen flag wins when both are given)."},
	{"STREAMING_BROKER_LEASE", "3s", "Broker: brokers of one Mastodon (same REDIS_NAMESPACE and STREAMING_NATS_PREFIX) hold a lease in Redis this long: only the holder publishes events, the others stand by and take over when it stops or fails to renew it; 0 turns the lease off (then run exactly one broker)."},
	{"STREAMING_BROKER_LEASE_RENEW", "a third of STREAMING_BROKER_LEASE", "Broker: how often the holder renews the lease and a standby tries to take it; shorter than STREAMING_BROKER_LEASE."},
}

// Settings is everything read from the environment, validated.
type Settings struct {
	Env        mastodonenv.Env
	Redis      mastodonenv.Redis
	Listen     mastodonenv.Listen
	LogLevel   slog.Level
	NATSURL    string // "" = embed (broker)
	NATSSet    bool   // STREAMING_NATS_URL was given
	NATSListen string
	NATSAuth   NATSAuth
	Subjects   channel.Subjects

	MaxConnections int
	ShutdownDelay  time.Duration
	ShutdownGrace  time.Duration
	QueueFrames    int
	Limits         edge.Limits          // edge only
	TrustedProxies *edge.TrustedProxies // edge only (TRUSTED_PROXY_IP)

	NATSShedAfter    time.Duration // 0 = never
	BrokerHTTPListen string

	// TLSCert and TLSKey are the edge's certificate and key files; both
	// empty serves plain HTTP.
	TLSCert, TLSKey string

	BrokerLease      time.Duration // 0 = no lease
	BrokerLeaseRenew time.Duration
	NATSCluster      bus.ClusterConfig // the broker's embedded server's routes
}

// Load reads and validates the environment, after Mastodon's .env loading
// rule relative to root. Every error names the variable at fault.
func Load(env mastodonenv.Env, root string, wantListen bool) (Settings, error) {
	env, err := mastodonenv.LoadDotenv(env, root)
	if err != nil {
		return Settings{}, err
	}
	s := Settings{Env: env, LogLevel: mastodonenv.LogLevelFromEnv(env)}
	if s.Redis, err = mastodonenv.RedisFromEnv(env); err != nil {
		return Settings{}, err
	}
	if wantListen {
		if s.Listen, err = mastodonenv.ListenFromEnv(env); err != nil {
			return Settings{}, err
		}
		s.TLSCert, s.TLSKey = env.Get("STREAMING_TLS_CERT"), env.Get("STREAMING_TLS_KEY")
		if (s.TLSCert == "") != (s.TLSKey == "") {
			return Settings{}, errors.New("invalid STREAMING_TLS_CERT and STREAMING_TLS_KEY environment variables: set both to serve HTTPS, or neither")
		}
		if err := loadClientLimits(env, &s); err != nil {
			return Settings{}, err
		}
	}
	s.NATSURL, s.NATSSet = env("STREAMING_NATS_URL")
	s.NATSSet = s.NATSSet && s.NATSURL != ""
	s.NATSListen, _ = env("STREAMING_NATS_LISTEN")
	s.Subjects.Prefix = env.Get("STREAMING_NATS_PREFIX")
	if s.Subjects.Prefix == "" {
		s.Subjects.Prefix = "mastodon"
	}
	if err := channel.ValidPrefix(s.Subjects.Prefix); err != nil {
		return Settings{}, fmt.Errorf("invalid STREAMING_NATS_PREFIX environment variable: %w", err)
	}
	if s.NATSAuth, err = natsAuthFromEnv(env); err != nil {
		return Settings{}, err
	}
	if s.MaxConnections, err = intVar(env, "STREAMING_MAX_CONNECTIONS", 0); err != nil {
		return Settings{}, err
	}
	if s.QueueFrames, err = intVar(env, "STREAMING_QUEUE_FRAMES", 512); err != nil {
		return Settings{}, err
	}
	if s.QueueFrames < 1 {
		return Settings{}, errors.New("invalid STREAMING_QUEUE_FRAMES environment variable: must be at least 1")
	}
	if s.ShutdownDelay, err = durationVar(env, "STREAMING_SHUTDOWN_DELAY", 0); err != nil {
		return Settings{}, err
	}
	if s.ShutdownGrace, err = durationVar(env, "STREAMING_SHUTDOWN_GRACE", 5*time.Second); err != nil {
		return Settings{}, err
	}
	if err := loadReadiness(env, &s); err != nil {
		return Settings{}, err
	}
	if err := loadFailover(env, &s); err != nil {
		return Settings{}, err
	}
	return s, nil
}

func intVar(env mastodonenv.Env, name string, def int) (int, error) {
	v := env.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid %s environment variable: %q is not a non-negative integer", name, v)
	}
	return n, nil
}

func durationVar(env mastodonenv.Env, name string, def time.Duration) (time.Duration, error) {
	v := env.Get(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid %s environment variable: %q is not a duration like 10s", name, v)
	}
	return d, nil
}

// Logger writes JSON lines to w, as Mastodon's pino logger does, tagged
// name=streaming.
func Logger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})).With("name", "streaming")
}

// RunBroker runs a broker on nc until ctx is done, with a Redis client from
// the settings that it closes on return, configured as newBroker does. It
// takes no lease: all-in-one processes each serve their own clients, so
// each publishes everything.
func RunBroker(ctx context.Context, s Settings, nc *nats.Conn, cfg broker.Config) error {
	rdb := brokerRedis(s.Redis)
	defer rdb.Close()
	b, err := newBroker(s, rdb, nc, cfg)
	if err != nil {
		return err
	}
	return b.Run(ctx)
}

// brokerRedis is the broker's Redis client: raw reads and writes on plain
// connections (shared/rawio); TLS connections keep go-redis's own dialer.
func brokerRedis(r mastodonenv.Redis) *redis.Client {
	switch {
	case r.Failover != nil:
		o := *r.Failover
		if o.TLSConfig == nil && o.Dialer == nil {
			o.Dialer = rawio.Dialer{Timeout: o.DialTimeout}.DialContext
		}
		r.Failover = &o
	default:
		var o redis.Options
		if r.Options != nil {
			o = *r.Options
		}
		if o.TLSConfig == nil && o.Dialer == nil {
			o.Dialer = rawio.Dialer{Timeout: o.DialTimeout}.DialContext
		}
		r.Options = &o
	}
	return r.NewClient()
}

// newBroker configures a broker: cfg carries what the caller wires
// (logger, metrics, readiness, a lease, an in-process edge); the namespace
// and subjects come from the settings.
func newBroker(s Settings, rdb redis.UniversalClient, nc *nats.Conn, cfg broker.Config) (*broker.Broker, error) {
	cfg.Namespace, cfg.Subjects = s.Redis.Namespace, s.Subjects
	return broker.New(cfg, rdb, nc)
}

// Listen opens the client listener: TCP, or a Unix socket made
// world-writable as Mastodon does (a stale socket file left by a dead
// process is replaced).
func Listen(l mastodonenv.Listen) (net.Listener, error) {
	if l.Network == "unix" {
		if c, err := net.Dial("unix", l.Address); err == nil {
			c.Close()
			return nil, fmt.Errorf("SOCKET %s: another process is listening there", l.Address)
		} else if fi, serr := os.Lstat(l.Address); serr == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(l.Address)
		}
		ln, err := net.Listen("unix", l.Address)
		if err != nil {
			return nil, fmt.Errorf("listen on SOCKET %s: %w", l.Address, err)
		}
		if err := os.Chmod(l.Address, 0o666); err != nil {
			ln.Close()
			return nil, fmt.Errorf("chmod SOCKET %s: %w", l.Address, err)
		}
		return ln, nil
	}
	ln, err := net.Listen("tcp", l.Address)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (PORT/BIND): %w", l.Address, err)
	}
	return ln, nil
}
