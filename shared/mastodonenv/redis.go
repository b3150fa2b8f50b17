package mastodonenv

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Redis is the Redis connection Mastodon's streaming server would open.
// Exactly one of Options (REDIS_URL or REDIS_HOST/REDIS_PORT) and Failover
// (Sentinel) is non-nil.
type Redis struct {
	Options  *redis.Options
	Failover *redis.FailoverOptions
	// Namespace is REDIS_NAMESPACE verbatim ("" when unset or empty).
	Namespace string
}

// Prefix returns the prefix for every channel and key: "NS:" when
// REDIS_NAMESPACE is non-empty, else "".
//
// Node has a quirk here: REDIS_NAMESPACE set to "" adds no prefix but still
// cuts one character off every incoming channel name, so nothing is ever
// delivered. That is plainly broken, so Spillway deliberately treats an
// empty namespace exactly like an unset one.
func (r Redis) Prefix() string {
	if r.Namespace == "" {
		return ""
	}
	return r.Namespace + ":"
}

// NewClient creates (without connecting) the client for r: a Sentinel-backed
// failover client when r.Failover is set, else a plain client.
func (r Redis) NewClient() *redis.Client {
	if r.Failover != nil {
		return redis.NewFailoverClient(r.Failover)
	}
	if r.Options != nil {
		return redis.NewClient(r.Options)
	}
	return redis.NewClient(&redis.Options{})
}

// Defaults used by Mastodon's streaming/redis.js.
const (
	defaultRedisHost    = "127.0.0.1"
	defaultRedisPort    = 6379
	defaultSentinelPort = 26379
)

// RedisFromEnv reads the Redis configuration the way streaming/redis.js does,
// in this order of precedence:
//
//  1. REDIS_URL (non-empty): used verbatim (redis://, rediss:// for TLS,
//     unix://); every other REDIS_* variable except REDIS_NAMESPACE is
//     ignored and not even validated.
//  2. REDIS_SENTINELS and REDIS_SENTINEL_MASTER (both non-empty): Sentinel,
//     with REDIS_SENTINEL_PORT (26379) as the port for list entries without
//     one, REDIS_DB, REDIS_USERNAME, REDIS_PASSWORD, and
//     REDIS_SENTINEL_USERNAME / REDIS_SENTINEL_PASSWORD defaulting (when
//     unset, not when empty: Node uses ??) to REDIS_USERNAME / REDIS_PASSWORD.
//  3. REDIS_HOST (127.0.0.1), REDIS_PORT (6379), REDIS_DB (0),
//     REDIS_USERNAME, REDIS_PASSWORD.
//
// Node passes family 0 to ioredis so both IPv4 and IPv6 work; Go's dialer
// already does that.
func RedisFromEnv(env Env) (Redis, error) {
	r := Redis{Namespace: env.Get("REDIS_NAMESPACE")}

	if raw := env.Get("REDIS_URL"); raw != "" {
		opts, err := redis.ParseURL(raw)
		if err != nil {
			return Redis{}, upstreamErrorf("Invalid REDIS_URL environment variable: %w", redactURLError(err))
		}
		r.Options = opts
		return r, nil
	}

	if env.Get("REDIS_SENTINELS") != "" && env.Get("REDIS_SENTINEL_MASTER") != "" {
		db, err := intFromEnv(env, "REDIS_DB", 0, 0, 1<<31-1)
		if err != nil {
			return Redis{}, err
		}
		port, err := intFromEnv(env, "REDIS_SENTINEL_PORT", defaultSentinelPort, 1, 65535)
		if err != nil {
			return Redis{}, err
		}
		addrs, err := ParseSentinels(env.Get("REDIS_SENTINELS"), int(port))
		if err != nil {
			return Redis{}, err
		}
		username, password := env.Get("REDIS_USERNAME"), env.Get("REDIS_PASSWORD")
		sentinelUsername, ok := env("REDIS_SENTINEL_USERNAME")
		if !ok {
			sentinelUsername = username
		}
		sentinelPassword, ok := env("REDIS_SENTINEL_PASSWORD")
		if !ok {
			sentinelPassword = password
		}
		r.Failover = &redis.FailoverOptions{
			MasterName:       env.Get("REDIS_SENTINEL_MASTER"),
			SentinelAddrs:    addrs,
			SentinelUsername: sentinelUsername,
			SentinelPassword: sentinelPassword,
			Username:         username,
			Password:         password,
			DB:               int(db),
		}
		return r, nil
	}

	port, err := intFromEnv(env, "REDIS_PORT", defaultRedisPort, 1, 65535)
	if err != nil {
		return Redis{}, err
	}
	db, err := intFromEnv(env, "REDIS_DB", 0, 0, 1<<31-1)
	if err != nil {
		return Redis{}, err
	}
	host := env.Get("REDIS_HOST")
	if host == "" {
		host = defaultRedisHost
	}
	r.Options = &redis.Options{
		Network:  "tcp",
		Addr:     net.JoinHostPort(host, strconv.FormatInt(port, 10)),
		Username: env.Get("REDIS_USERNAME"),
		Password: env.Get("REDIS_PASSWORD"),
		DB:       int(db),
	}
	return r, nil
}

// ParseSentinels parses REDIS_SENTINELS, a comma-separated list of
// host[:port], into host:port addresses, using defaultPort for entries
// without a port.
//
// Node splits each entry on ':' and passes the pieces to ioredis unchecked.
// Here, for sanity, entries are trimmed and empty ones skipped, "[v6]:port"
// and bare IPv6 addresses are understood, an empty port
// means defaultPort, and a port that is not a number in 1..65535 or a list
// with no hosts is an error naming REDIS_SENTINELS.
func ParseSentinels(list string, defaultPort int) ([]string, error) {
	var addrs []string
	for entry := range strings.SplitSeq(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		host, port, err := splitSentinel(entry)
		if err != nil {
			return nil, upstreamErrorf("Invalid REDIS_SENTINELS environment variable: %s: %w", list, err)
		}
		p := defaultPort
		if port != "" {
			n, err := strconv.Atoi(port)
			if err != nil || n < 1 || n > 65535 {
				return nil, upstreamErrorf("Invalid REDIS_SENTINELS environment variable: %s: invalid port %q", list, port)
			}
			p = n
		}
		addrs = append(addrs, net.JoinHostPort(host, strconv.Itoa(p)))
	}
	if len(addrs) == 0 {
		return nil, upstreamErrorf("Invalid REDIS_SENTINELS environment variable: %s: no sentinel hosts", list)
	}
	return addrs, nil
}

// splitSentinel splits one sentinel entry into host and (possibly empty) port.
func splitSentinel(entry string) (host, port string, err error) {
	if strings.HasPrefix(entry, "[") {
		end := strings.IndexByte(entry, ']')
		if end < 0 {
			return "", "", errors.New(`missing "]" in IPv6 address`)
		}
		host, rest := entry[1:end], entry[end+1:]
		if _, err := netip.ParseAddr(host); err != nil || strings.ContainsAny(host, "[]") {
			return "", "", errors.New("bad address in brackets")
		}
		switch {
		case rest == "":
			return host, "", nil
		case rest[0] == ':':
			return host, rest[1:], nil
		default:
			return "", "", fmt.Errorf("unexpected %q after IPv6 address", rest)
		}
	}
	if strings.ContainsAny(entry, "[]") {
		return "", "", errors.New("misplaced bracket")
	}
	if strings.Count(entry, ":") > 1 {
		if _, err := netip.ParseAddr(entry); err != nil {
			return "", "", errors.New("more than one ':' outside an IPv6 address")
		}
		return entry, "", nil
	}
	host, port, _ = strings.Cut(entry, ":")
	if host == "" {
		return "", "", errors.New("empty host")
	}
	return host, port, nil
}

// redactURLError drops the URL that net/url embeds in its errors, because
// it may contain a password.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
