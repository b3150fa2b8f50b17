package launch

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/spillway/spillway/shared/bus"
	"github.com/spillway/spillway/shared/mastodonenv"
)

// defaultNATSListen is where the broker's embedded NATS server listens for
// edges.
const defaultNATSListen = "127.0.0.1:4222"

// Broker is the broker command: it parses args (args[0] is the program
// name), reads the environment and runs until ctx is done. cmd/broker's main
// only wires signals to it; tests call it directly.
func Broker(ctx context.Context, args []string, env mastodonenv.Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("mastodon-root", ".", "Mastodon's directory: .env.production (NODE_ENV=production) or .env is read from it")
	metricsAddr := fs.String("metrics-listen", "", "serve Prometheus /metrics on this host:port (off when empty)")
	tools := addToolFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: broker [flags]

Subscribes to Mastodon's Redis (every timeline:* channel, REDIS_NAMESPACE aware)
and republishes each message unchanged on NATS for Spillway edges. Run one.

Configuration comes from Mastodon's environment variables (REDIS_URL or
REDIS_HOST/REDIS_PORT/REDIS_DB/REDIS_USERNAME/REDIS_PASSWORD, REDIS_SENTINELS,
REDIS_NAMESPACE, LOG_LEVEL, NODE_ENV) and these:
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
	if ran, err := tools.run(ctx, toolTarget{name: "broker", env: env, root: *root, metricsListen: *metricsAddr}, stdout); ran {
		return err
	}
	s, err := Load(env, *root, false)
	if err != nil {
		return err
	}
	logger := Logger(stdout, s.LogLevel)

	var nc *nats.Conn
	if s.NATSSet {
		nc, err = bus.Connect(nil, s.NATSURL, "spillway-broker", logger)
		if err != nil {
			return err
		}
		logger.Info("publishing to external NATS", "url", nc.ConnectedUrlRedacted())
	} else {
		listen := s.NATSListen
		if listen == "" {
			listen = defaultNATSListen
		}
		ns, err := bus.StartServer(bus.ServerConfig{Listen: listen, Logger: logger})
		if err != nil {
			return fmt.Errorf("embedded NATS on STREAMING_NATS_LISTEN=%s: %w", listen, err)
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		nc, err = bus.Connect(ns, "", "spillway-broker", logger)
		if err != nil {
			return err
		}
		logger.Info("NATS listening for edges on " + ns.ClientURL())
	}
	defer nc.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if *metricsAddr != "" {
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("-metrics-listen %s: %w", *metricsAddr, err)
		}
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }() // ends with Shutdown below
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	return RunBroker(ctx, s, nc, logger, reg)
}
