package launch

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

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
(WebSocket), the SSE paths under /api/v1/streaming/, /api/v1/streaming/health
and /metrics.

Configuration comes from Mastodon's environment variables (PORT, BIND, SOCKET,
DATABASE_URL or DB_HOST/DB_PORT/DB_USER/DB_PASS/DB_NAME/DB_SSLMODE/DB_POOL,
REDIS_* (all-in-one only), LOG_LEVEL, NODE_ENV) and these:
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

	var ns *server.Server
	natsURL := s.NATSURL
	if *allInOne {
		ns, err = bus.StartServer(bus.ServerConfig{Listen: s.NATSListen, Logger: logger})
		if err != nil {
			return fmt.Errorf("embedded NATS (STREAMING_NATS_LISTEN=%q): %w", s.NATSListen, err)
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	} else if natsURL == "" {
		natsURL = defaultNATSURL
	}
	nc, err := bus.Connect(ns, natsURL, "spillway-edge", logger)
	if err != nil {
		return err
	}
	defer nc.Close()

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
		NATS:           nc,
		Store:          store.New(pool),
		Subjects:       s.Subjects,
		Logger:         logger,
		Registry:       reg,
		MaxConnections: s.MaxConnections,
		MaxQueueFrames: s.QueueFrames,
		ShutdownDelay:  s.ShutdownDelay,
		ShutdownGrace:  s.ShutdownGrace,
	})
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBroker()
	var brokerErr error
	if *allInOne {
		bnc, err := bus.Connect(ns, "", "spillway-broker", logger)
		if err != nil {
			return err
		}
		defer bnc.Close()
		wg.Go(func() { brokerErr = RunBroker(brokerCtx, s, bnc, logger, reg) })
	}
	logger.Info("Streaming API now listening on " + ln.Addr().String())
	edgeErr := e.Run(ctx)
	// The broker outlives the edge so that draining edges lose nothing.
	stopBroker()
	wg.Wait()
	return errors.Join(edgeErr, brokerErr)
}
