package launch

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/spillway/spillway/broker"
	"github.com/spillway/spillway/shared/bus"
	"github.com/spillway/spillway/shared/mastodonenv"
	"github.com/spillway/spillway/shared/readiness"
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
	metricsAddr := fs.String("metrics-listen", "", "serve /healthz, /readyz and Prometheus /metrics on this host:port, as STREAMING_BROKER_HTTP_LISTEN (off when both are empty)")
	tools := addToolFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: broker [flags]

Subscribes to Mastodon's Redis (every timeline:* channel, REDIS_NAMESPACE aware)
and republishes each message unchanged on NATS for Spillway edges. Run one, or
two for failover: they share a lease in Redis (STREAMING_BROKER_LEASE), only
its holder publishes, and the other takes over when the holder stops or fails.
Their embedded NATS servers then form one cluster (STREAMING_NATS_CLUSTER_LISTEN,
STREAMING_NATS_ROUTES), or both use an external one (STREAMING_NATS_URL).

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
	var natsAddr string // for logs and /readyz
	var changed func(broker.Leadership)
	if s.NATSSet {
		if err := checkCluster(s, false); err != nil {
			return err
		}
		nc, err = dialNATS(s, s.NATSURL, "spillway-broker", logger)
		if err != nil {
			return natsConnectError(s.NATSURL, err)
		}
		natsAddr = readiness.RedactURL(s.NATSURL)
		logger.Info("publishing to external NATS", "url", natsAddr)
	} else {
		listen := s.NATSListen
		if listen == "" {
			listen = defaultNATSListen
		}
		srv, err := embedBrokerNATS(s, listen, logger)
		if err != nil {
			return err
		}
		defer srv.Shutdown()
		nc, err = srv.Connect("spillway-broker", logger)
		if err != nil {
			return err
		}
		logger.Info("NATS listening for edges on " + srv.ClientURL())
		if a := srv.ClusterAddr(); a != nil {
			logger.Info("NATS cluster listening for routes on "+a.String(), "routes", readiness.RedactURL(strings.Join(s.NATSCluster.Routes, ",")))
		} else {
			changed = warnUnclusteredStandby(logger)
		}
		natsAddr = "in-process; embedded server for edges on " + srv.ClientURL()
	}
	defer nc.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	deps := brokerDependencies(logger, s, natsAddr)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	// Follows the broker's own NATS connection; ends with stopWatch below,
	// before the connection closes.
	go func() { defer close(watched); bus.WatchStatus(watchCtx, nc, deps.Add("nats", "").Observe) }()
	defer func() { stopWatch(); <-watched }()
	rdb := brokerRedis(s.Redis)
	defer rdb.Close()
	b, err := newBroker(s, rdb, nc, broker.Config{Logger: logger, Registerer: reg, Redis: deps.Add("redis", ""), Lease: s.leaseConfig(changed)})
	if err != nil {
		return err
	}
	httpAddr := s.BrokerHTTPListen
	if *metricsAddr != "" {
		httpAddr = *metricsAddr
	}
	if httpAddr != "" {
		addr, stop, err := serveBrokerHTTP(httpAddr, reg, brokerReady{deps: deps, lease: b.Leadership})
		if err != nil {
			return err
		}
		defer stop()
		logger.Info("broker health, readiness and metrics on http://" + addr + " (/healthz, /readyz, /metrics)")
	}
	return b.Run(ctx)
}
