package launch

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/spillway/spillway/broker"
	"github.com/spillway/spillway/edge"
	"github.com/spillway/spillway/edge/store"
	"github.com/spillway/spillway/shared/bus"
	"github.com/spillway/spillway/shared/mastodonenv"
)

// defaultNATSURL is where a split-mode edge finds the broker's NATS server.
const defaultNATSURL = "nats://127.0.0.1:4222"

// Edge is the edge command (with -all-in-one, broker and NATS too): it
// parses args (args[0] is the program name), reads the environment and
// serves until ctx is done. cmd/edge's main only wires signals to it; tests
// call it directly.
func Edge(ctx context.Context, args []string, env mastodonenv.Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	allInOne := fs.Bool("all-in-one", false, "also run the broker and an embedded NATS server in this process (a drop-in for Mastodon's streaming server)")
	root := fs.String("mastodon-root", ".", "Mastodon's directory: .env.production (NODE_ENV=production) or .env is read from it")
	tools := addToolFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: edge [flags]

Serves Mastodon's streaming API on PORT/BIND or SOCKET: /api/v1/streaming
(WebSocket), the SSE paths under /api/v1/streaming/, /api/v1/streaming/health,
/metrics, and /readyz (NATS, Postgres and, all-in-one, Redis as JSON).

Configuration comes from Mastodon's environment variables (PORT, BIND, SOCKET,
TRUSTED_PROXY_IP, DATABASE_URL or DB_HOST/DB_PORT/DB_USER/DB_PASS/DB_NAME/
DB_SSLMODE/DB_POOL, REDIS_* (all-in-one only), LOG_LEVEL, NODE_ENV) and these:
`)
		for _, v := range Variables {
			fmt.Fprintf(stderr, "  %s (default %s)\n    \t%s\n", v.Name, v.Default, v.Help)
		}
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if ran, err := tools.run(ctx, toolTarget{name: "edge", env: env, root: *root, allInOne: *allInOne}, stdout); ran {
		return err
	}
	s, err := Load(env, *root, true)
	if err != nil {
		return err
	}
	pgcfg, err := mastodonenv.PostgresFromEnv(s.Env)
	if err != nil {
		return err
	}
	logger := Logger(stdout, s.LogLevel)
	var cert *certificate
	var tlsConfig *tls.Config
	if s.TLSCert != "" {
		if cert, err = loadCertificate(s.TLSCert, s.TLSKey, logger); err != nil {
			return err
		}
		tlsConfig = cert.tlsConfig()
	}
	defer reloadOnHangup(cert, logger)()

	// No I/O to Postgres here: the pool connects on first use, so the
	// edge starts (and reports itself) even while the database is down.
	pool, err := pgxpool.NewWithConfig(context.WithoutCancel(ctx), pgcfg)
	if err != nil {
		return fmt.Errorf("postgres pool: %w", err)
	}
	defer pool.Close()

	ln, err := Listen(s.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()

	var srv *bus.Server
	var nc *nats.Conn
	natsURL := s.NATSURL
	if *allInOne {
		if srv, err = embedNATS(s, s.NATSListen, logger); err != nil {
			return err
		}
		defer srv.Shutdown()
		if s.NATSListen != "" {
			logger.Info("NATS listening for edges on " + srv.ClientURL())
		}
		nc, err = srv.Connect("spillway-edge", logger)
	} else {
		if natsURL == "" {
			natsURL = defaultNATSURL
		}
		nc, err = dialNATS(s, natsURL, "spillway-edge", logger)
	}
	if err != nil {
		return natsConnectError(natsURL, err)
	}
	defer nc.Close()
	// Neither NATS nor Postgres being unreachable stops the edge: it
	// starts, logs each one naming its address, reports not ready and
	// serves once they answer (Mastodon also starts without its database).
	deps := edgeDependencies(logger, s, pgcfg, natsURL, *allInOne)

	if addr := s.Env.Get("STREAMING_DEBUG_LISTEN"); addr != "" {
		stop, err := serveDebug(addr)
		if err != nil {
			return err
		}
		defer stop()
	}
	reg := prometheus.NewRegistry()
	e, err := edge.New(edge.Config{
		Listener:       ln,
		TLS:            tlsConfig,
		NATS:           nc,
		Store:          store.NewObserved(pool, deps.Add("postgres", "").Observe),
		Subjects:       s.Subjects,
		Logger:         logger,
		Registry:       reg,
		MaxConnections: s.MaxConnections,
		Limits:         s.Limits,
		TrustedProxies: s.TrustedProxies,
		MaxQueueFrames: s.QueueFrames,
		ShutdownDelay:  s.ShutdownDelay,
		ShutdownGrace:  s.ShutdownGrace,
		Readiness:      deps,
		NATSShedAfter:  s.shedAfter(),
		// All-in-one: the broker hands events over in process.
		Local: *allInOne,
	})
	if err != nil {
		return err
	}

	if !*allInOne {
		logger.Info("Streaming API now listening on " + ln.Addr().String())
		return e.Run(ctx)
	}
	bnc, err := srv.Connect("spillway-broker", logger)
	if err != nil {
		return err
	}
	defer bnc.Close()
	logger.Info("Streaming API now listening on " + ln.Addr().String())
	return runTogether(ctx, logger, e.Run, func(ctx context.Context) error {
		cfg := broker.Config{Logger: logger, Registerer: reg, Redis: deps.Add("redis", ""), Local: e}
		if s.NATSListen != "" {
			// Edges may join through the listener: events go on NATS too
			// while one listens.
			cfg.Remote = srv.HasSubscribers
		}
		return RunBroker(ctx, s, bnc, cfg)
	})
}

// runTogether runs an all-in-one edge and broker until ctx is done. The
// broker outlives the edge, so that draining clients lose nothing, and a
// broker that stops by itself stops the edge: the process then exits and
// its supervisor restarts it. It returns once both have returned.
func runTogether(ctx context.Context, logger *slog.Logger, edge, broker func(context.Context) error) error {
	edgeCtx, stopEdge := context.WithCancel(ctx)
	defer stopEdge()
	brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBroker()
	var g errgroup.Group
	g.Go(func() error {
		err := broker(brokerCtx)
		if brokerCtx.Err() == nil {
			if err == nil {
				err = errors.New("broker stopped unexpectedly")
			}
			logger.Error("broker stopped; stopping the edge", "err", err)
			stopEdge()
		}
		return err
	})
	edgeErr := edge(edgeCtx)
	stopBroker()
	return errors.Join(edgeErr, g.Wait())
}
