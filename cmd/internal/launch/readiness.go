package launch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spillway/spillway/shared/mastodonenv"
	"github.com/spillway/spillway/shared/readiness"
)

// defaultNATSShedAfter is STREAMING_NATS_SHED_AFTER's default: longer than
// a broker restart takes, so a routine restart sheds nobody.
const defaultNATSShedAfter = 30 * time.Second

// loadReadiness reads the readiness and dependency variables into s.
func loadReadiness(env mastodonenv.Env, s *Settings) error {
	var err error
	if s.NATSShedAfter, err = durationVar(env, "STREAMING_NATS_SHED_AFTER", defaultNATSShedAfter); err != nil {
		return err
	}
	s.BrokerHTTPListen = env.Get("STREAMING_BROKER_HTTP_LISTEN")
	return nil
}

// shedAfter is STREAMING_NATS_SHED_AFTER for edge.Config, where 0 (never)
// is negative.
func (s Settings) shedAfter() time.Duration {
	if s.NATSShedAfter == 0 {
		return -1
	}
	return s.NATSShedAfter
}

// edgeDependencies is what an edge reports at /readyz and logs on each
// change: NATS and Postgres, and in all-in-one mode the broker's Redis
// subscription. Addresses name where each dependency is, never a secret.
func edgeDependencies(logger *slog.Logger, s Settings, pg *pgxpool.Config, natsURL string, allInOne bool) *readiness.Set {
	deps := readiness.NewSet(logger)
	if allInOne {
		deps.Add("nats", "in-process")
		deps.Add("redis", redisAddress(s.Redis))
	} else {
		deps.Add("nats", readiness.RedactURL(natsURL))
	}
	deps.Add("postgres", postgresAddress(pg))
	return deps
}

// brokerDependencies is what the broker reports at /readyz and logs: its
// NATS connection (at natsAddr) and its Redis subscription.
func brokerDependencies(logger *slog.Logger, s Settings, natsAddr string) *readiness.Set {
	deps := readiness.NewSet(logger)
	deps.Add("nats", natsAddr)
	deps.Add("redis", redisAddress(s.Redis))
	return deps
}

// natsConnectError names the configured URL when connecting fails at once
// (an unusable URL; an unreachable server is retried, not an error). The
// URL that net/url puts in its errors is dropped: it may hold a password.
func natsConnectError(raw string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("STREAMING_NATS_URL=%s: %w", readiness.RedactURL(raw), err)
}

// postgresAddress names the database as a URL without its password:
// postgres://user@host:port/database, or libpq's ?host= form for a Unix
// socket directory.
func postgresAddress(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	user := ""
	if c.User != "" {
		user = c.User + "@"
	}
	port := strconv.Itoa(int(c.Port))
	if strings.HasPrefix(c.Host, "/") {
		return "postgres://" + user + "/" + c.Database + "?host=" + c.Host + "&port=" + port
	}
	return "postgres://" + user + net.JoinHostPort(c.Host, port) + "/" + c.Database
}

// redisAddress names the Redis server (or the Sentinels and master) and
// database, with the user but never a password.
func redisAddress(r mastodonenv.Redis) string {
	if f := r.Failover; f != nil {
		return fmt.Sprintf("sentinels %s, master %s, db %d", strings.Join(f.SentinelAddrs, ","), f.MasterName, f.DB)
	}
	o := r.Options
	if o == nil {
		return "redis://127.0.0.1:6379/0"
	}
	user := ""
	if o.Username != "" {
		user = o.Username + "@"
	}
	if o.Network == "unix" {
		return "unix://" + user + o.Addr + "?db=" + strconv.Itoa(o.DB)
	}
	scheme := "redis://"
	if o.TLSConfig != nil {
		scheme = "rediss://"
	}
	return scheme + user + o.Addr + "/" + strconv.Itoa(o.DB)
}

// serveBrokerHTTP serves the broker's own endpoints on addr: /healthz
// (liveness: "OK" while the process serves), /readyz (ready, answering
// with dependencies and role as JSON, 503 when a dependency is down) and
// /metrics. It returns the address it listens on and a function that
// stops the server.
func serveBrokerHTTP(addr string, reg *prometheus.Registry, ready http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("broker HTTP listener (STREAMING_BROKER_HTTP_LISTEN or -metrics-listen) %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Type"] = []string{"text/plain"}
		w.Header()["Cache-Control"] = []string{"private, no-store"}
		_, _ = w.Write([]byte("OK"))
	})
	mux.Handle("GET /readyz", ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ends with Shutdown in the returned func
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
