// Command loadtest load-tests a server that speaks Mastodon's streaming API
// (Spillway, or Mastodon's own Node server) on this machine: it holds many
// receive-only SSE and WebSocket clients, publishes marked Mastodon statuses
// into Redis, and reports delivery latency, loss, duplicates, reordering,
// connect behaviour and the server's CPU and memory cost.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/cmd/loadtest/internal/loadgen"
	"github.com/spillway/spillway/cmd/loadtest/internal/relay"
	"github.com/spillway/spillway/shared/benchdata/fixtures"
	"github.com/spillway/spillway/shared/benchdata/payload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

const usageHead = `Usage: loadtest [flags]
       loadtest instance [flags]   (a real instance's traffic; see loadtest instance -help)
       loadtest soak [flags]       (churn for minutes, resources sampled; see loadtest soak -help)
       loadtest fixtures [flags]   (benchmark database; see loadtest fixtures -help)
       loadtest relay [flags]      (minimal relay: the kernel's floor; see loadtest relay -help)

Load-tests a Mastodon streaming API server on this machine (loopback only).
Opens -clients receive-only clients (a mix of SSE and WebSocket, of streams
and of tokens) at -connect-rate from rotating 127.0.0.x source addresses,
confirms every subscription with probe events, then publishes Mastodon
"update" events into Redis at -rate ticks/s (one event per target channel per
tick) and reports publish-to-receive latency percentiles, loss, duplicates,
reordering, connect latency and failures, and (with -server-pid) the server's
CPU µs per delivery and per event and RSS KB per connection. With -ramp-start
it adds clients in steps until p99 exceeds -p99-bound or deliveries are lost,
and reports the last good step.

Token file: one token per line, optionally "token<TAB>account_id" (account ids
are needed for user, user:notification and direct streams; or give them in
-accounts, one per line in token order). Tokens are never printed.

Streams: comma list of NAME[=WEIGHT]: user, user:notification, direct,
public, public:media, public:local, public:local:media, public:remote,
public:remote:media, hashtag:TAG, hashtag:local:TAG.

Flags:
`

const usageExamples = `
Examples:
  # 2,000 clients, 30% SSE, public and per-user streams, 10 events/s for 60 s
  loadtest -url http://127.0.0.1:4000 -tokens tokens.tsv -clients 2000 \
    -sse-ratio 0.3 -streams public=1,user=3 -rate 10 -duration 60s \
    -redis-url redis://127.0.0.1:6379/0 -redis-namespace mastodon -server-pid 12345

  # find how many clients the server holds at 5 events/s with p99 <= 50ms
  loadtest -url http://127.0.0.1:4000 -tokens tokens.txt -streams public:local \
    -ws-subscribe -ramp-start 1000 -ramp-step 1000 -ramp-max 20000 \
    -p99-bound 50ms -rate 5 -duration 20s -warmup 3s -json ramp.json

  # the kernel's floor on this machine: the same load against a minimal relay
  loadtest relay -listen 127.0.0.1:4001 -redis-namespace mastodon -tokens tokens.tsv &
  loadtest -url http://127.0.0.1:4001 -tokens tokens.tsv -clients 1000 -rate 10 -server-pid $!
`

const instanceUsageHead = `Usage: loadtest instance [flags]

Runs the instance scenario: one client per account (the first -clients
distinct accounts of -tokens, which needs account ids; 0 = every one), on the
streams of -streams, with traffic shaped the way Rails publishes a real
instance's. -rate is the total of events PUBLISHed into Redis per second,
spent on actions, each a status or a notification:

  authors        a status's author is drawn with probability proportional to
                 1/rank^-zipf in a seeded activity ranking of the accounts (a
                 few busy accounts, a long tail; 0 = all alike)
  home timelines the status goes to the author's timeline:<id> and to each
                 follower's, in one burst, as Rails' fan-out on write does
                 (only accounts with a user client: Rails publishes home
                 events to subscribed timelines only); follower counts are
                 proportional to 1/rank^-zipf in a second, independent
                 popularity ranking (at most accounts-1), mean -followers;
                 followers are drawn uniformly from the other accounts
  public         -public of statuses also go to timeline:public,
                 timeline:public:local, timeline:public:media and
                 timeline:public:local:media (the status is local and has an
                 image); -tagged of those to one hashtag of the mix as well
                 (timeline:hashtag:<tag> and its :local twin; #spillway when
                 the mix has none)
  notifications  -notifications per status, each a "notification" event on
                 timeline:<id>:notifications of an account with a user or
                 user:notification client, drawn by popularity
  spacing        actions follow -arrivals: poisson (exponential gaps, as
                 independent people posting) or even (exactly 1/rate apart);
                 each wake-up of the tool publishes every action that is due,
                 so the rate holds whatever the timer's resolution

Deliveries owed are counted per event and client: an event on timeline:<id>
is owed to the account's user-stream client, one on
timeline:<id>:notifications to its user or user:notification client (tokens
with the read scope, as loadtest fixtures writes them), one on a public or
hashtag channel to every client of that stream. The report gives the model
(accounts, skew, followers, events per status), the server's CPU per event
published and per delivery (-server-pid), latency percentiles, loss, and how
late the tool published against its schedule.

Streams: comma list of NAME[=WEIGHT] of user, user:notification, public,
public:local, public:media, public:local:media, hashtag:TAG,
hashtag:local:TAG.

Flags:
`

const instanceUsageExamples = `
Examples:
  # a realistic mix on 1,500 accounts, 1,500 events/s
  loadtest instance -url http://127.0.0.1:4000 -tokens tokens1500.tsv -rate 1500 \
    -redis-namespace mastodon -server-pid 12345

  # 1 client per account, each event on one user's timeline, evenly spaced
  loadtest instance -url http://127.0.0.1:4000 -tokens tokens1500.tsv -streams user \
    -zipf 0 -followers 0 -public 0 -notifications 0 -arrivals even -rate 1500 \
    -redis-namespace mastodon -server-pid 12345
`

const soakUsageHead = `Usage: loadtest soak [flags]

Runs a soak. -clients steady clients connect and are confirmed; then, through
-warmup and the -duration window, churn clients connect at -churn-rate per
second and each leaves after 0.5 to 1.5 times -churn-lifetime (half of the
WebSockets with a close frame, everything else by closing the socket). Churn
WebSockets connect without a stream, subscribe to one of the mix and, every
-resubscribe, unsubscribe it and subscribe to the next. Events flow to the
steady clients' channels at -rate ticks/s (one event per channel per tick)
throughout.

Every -sample-interval of the window the server's RSS and open files (from
/proc/<pid>: -server-pid is required) and goroutines (go_goroutines from
-metrics-url) are sampled. The report compares each series' first and last
quarter (flat: grown by at most -flat-tolerance, or by a small absolute slack:
4 MB of RSS, 8 goroutines or files), gives its least-squares slope per hour,
checks that goroutines and open files fall back to their level before the
churn once it stops, and gives the steady clients' loss and latency.

Flags:
`

const soakUsageExamples = `
Example:
  # 30 minutes of churn around 200 steady clients
  loadtest soak -url http://127.0.0.1:4000 -tokens tokens.tsv -clients 200 \
    -streams public,user -rate 5 -churn-rate 10 -churn-lifetime 5s \
    -redis-namespace mastodon -server-pid 12345 -json soak.json
`

// Modes of the command.
const (
	modeDefault  = ""
	modeInstance = "instance"
	modeSoak     = "soak"
)

type options struct {
	url, streams, tokens, accounts, sourceIPs string
	authors                                   string
	redisURL, redisNS, jsonOut                string
	clients, payloadSize, serverPID           int
	rampStart, rampStep, rampMax              int
	sseRatio, connectRate, rate               float64
	wsSubscribe, progress                     bool
	duration, warmup, drain                   time.Duration
	connectTimeout, probeTimeout, p99Bound    time.Duration

	// instance
	zipf, followers, public, tagged, notifications float64
	arrivals                                       string
	seed                                           uint64
	// soak
	churnRate, flatTolerance                float64
	churnLifetime, resubscribe, sampleEvery time.Duration
	metricsURL                              string
}

func newFlagSet(mode string, o *options, stderr io.Writer) *flag.FlagSet {
	name := "loadtest"
	if mode != modeDefault {
		name += " " + mode
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	// Defaults that differ by mode.
	clients, streams, rate, duration, warmup := 100, "public", 10.0, 30*time.Second, 5*time.Second
	clientsUsage := "number of clients (fixed mode)"
	durationUsage, streamsUsage := "measured window (per ramp step)", "stream mix: comma list of `NAME[=WEIGHT]`"
	rateUsage := "publish ticks per second; each tick publishes one event on every target channel"
	switch mode {
	case modeInstance:
		clients, streams, rate, warmup = 0, "user=90,user:notification=4,public=4,hashtag:spillway=2", 1500, 10*time.Second
		clientsUsage = "accounts, one client each (the first distinct accounts of -tokens; 0 = every one)"
		durationUsage = "measured window"
		rateUsage = "events published into Redis per second, in total"
	case modeSoak:
		clients, streams, rate, duration, warmup = 200, "public,user", 5, 30*time.Minute, time.Minute
		clientsUsage = "steady clients, measured for loss and latency"
		durationUsage = "measured window: churn, events and samples"
		streamsUsage = "stream mix of the steady and the churn clients: comma list of `NAME[=WEIGHT]`"
	}
	fs.StringVar(&o.url, "url", "http://127.0.0.1:4000", "server base `URL` (http, loopback host only)")
	fs.IntVar(&o.clients, "clients", clients, clientsUsage)
	fs.Float64Var(&o.sseRatio, "sse-ratio", 0.5, "fraction of clients using SSE, 0..1 (the rest use WebSocket)")
	fs.StringVar(&o.streams, "streams", streams, streamsUsage)
	fs.BoolVar(&o.wsSubscribe, "ws-subscribe", false, "subscribe WebSockets with a subscribe message instead of ?stream=")
	fs.StringVar(&o.tokens, "tokens", "", "token `file`: one token per line, optionally token<TAB>account_id; clients take tokens round-robin")
	fs.StringVar(&o.accounts, "accounts", "", "account id `file`, one per line in token order (alternative to token<TAB>account_id)")
	fs.Float64Var(&o.connectRate, "connect-rate", 500, "new connections per second")
	fs.StringVar(&o.sourceIPs, "source-ips", "8", "local source addresses: a count N (127.0.0.2..127.0.0.N+1), a comma list of loopback IPs, or 0 for none")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 10*time.Second, "per-connection dial + handshake timeout")
	fs.StringVar(&o.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis `URL` the server subscribes to")
	fs.StringVar(&o.redisNS, "redis-namespace", "", "the server's REDIS_NAMESPACE (channels become NS:timeline:…)")
	fs.Float64Var(&o.rate, "rate", rate, rateUsage)
	fs.IntVar(&o.payloadSize, "payload-size", 3500, "approximate size of each published message in `bytes` (a complete status is at least ~3 KB; smaller values give that minimum)")
	fs.DurationVar(&o.duration, "duration", duration, durationUsage)
	fs.DurationVar(&o.warmup, "warmup", warmup, "unmeasured publishing before each window")
	fs.DurationVar(&o.drain, "drain", 5*time.Second, "longest wait for in-flight deliveries after a window")
	fs.DurationVar(&o.probeTimeout, "probe-timeout", 30*time.Second, "longest wait for every client to receive a probe event")
	fs.IntVar(&o.serverPID, "server-pid", 0, "server `pid` to sample CPU (utime+stime) and VmRSS from /proc")
	fs.StringVar(&o.jsonOut, "json", "", "also write the report as JSON to `file` (\"-\" = JSON on stdout instead of the table)")
	fs.BoolVar(&o.progress, "progress", true, "print a progress line to stderr every second")
	head, examples := usageHead, usageExamples
	switch mode {
	case modeDefault:
		fs.StringVar(&o.authors, "authors", "", "author `file` (account_id<TAB>username<TAB>acct lines, as written by loadtest fixtures): published statuses rotate over these authors so servers apply blocks, mutes and domain blocks (probes keep a neutral author; on public/hashtag streams the statuses a server drops count as lost)")
		fs.IntVar(&o.rampStart, "ramp-start", 0, "ramp mode: clients in the first step (0 = fixed mode)")
		fs.IntVar(&o.rampStep, "ramp-step", 1000, "ramp mode: clients added per step")
		fs.IntVar(&o.rampMax, "ramp-max", 20000, "ramp mode: most clients to try")
		fs.DurationVar(&o.p99Bound, "p99-bound", 100*time.Millisecond, "ramp mode: largest acceptable p99 latency")
	case modeInstance:
		head, examples = instanceUsageHead, instanceUsageExamples
		fs.Float64Var(&o.zipf, "zipf", 1, "`exponent` of the activity and follower-count skews: weight 1/rank^s (0 = every account alike)")
		fs.Float64Var(&o.followers, "followers", 10, "mean followers per account among the run's accounts")
		fs.Float64Var(&o.public, "public", 0.3, "share of statuses that are public (also published to the public channels)")
		fs.Float64Var(&o.tagged, "tagged", 0.2, "share of public statuses that carry a hashtag of the mix")
		fs.Float64Var(&o.notifications, "notifications", 0.3, "notifications per status")
		fs.StringVar(&o.arrivals, "arrivals", "poisson", "spacing of actions: poisson or even")
		fs.Uint64Var(&o.seed, "seed", 1, "seed of the rankings, the follower graph, the actions and their gaps")
	case modeSoak:
		head, examples = soakUsageHead, soakUsageExamples
		fs.Float64Var(&o.churnRate, "churn-rate", 10, "churn connections opened per second")
		fs.DurationVar(&o.churnLifetime, "churn-lifetime", 5*time.Second, "mean lifetime of a churn connection (each lives 0.5-1.5 times it)")
		fs.DurationVar(&o.resubscribe, "resubscribe", time.Second, "how often a churn WebSocket swaps its stream for the next of the mix (0 = never)")
		fs.DurationVar(&o.sampleEvery, "sample-interval", 10*time.Second, "pause between samples of the server's RSS, open files and goroutines")
		fs.StringVar(&o.metricsURL, "metrics-url", "", "Prometheus `URL` with the server's go_goroutines (default -url's /metrics; \"off\" = do not sample goroutines)")
		fs.Float64Var(&o.flatTolerance, "flat-tolerance", 0.1, "largest growth from the first to the last quarter's mean that counts as flat, as a fraction")
		fs.Uint64Var(&o.seed, "seed", 1, "seed of the churn connections' lifetimes and ways of leaving")
	}
	fs.Usage = func() {
		_, _ = io.WriteString(stderr, head)
		fs.PrintDefaults()
		_, _ = io.WriteString(stderr, examples)
	}
	return fs
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "fixtures" {
		return fixtures.Main(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "relay" {
		return relay.Main(ctx, args[1:], stdout, stderr)
	}
	mode := modeDefault
	if len(args) > 0 && (args[0] == modeInstance || args[0] == modeSoak) {
		mode, args = args[0], args[1:]
	}
	var o options
	fs := newFlagSet(mode, &o, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	cfg, err := buildConfig(mode, &o, stderr)
	if err != nil {
		return err
	}
	warnFileLimit(cfg, stderr)

	opts, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return fmt.Errorf("-redis-url: %w", err)
	}
	rdb := redis.NewClient(opts)
	defer func() { _ = rdb.Close() }()
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = rdb.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}

	rep, runErr := loadgen.Run(ctx, cfg, loadgen.NewRedisPublisher(rdb, o.redisNS))
	if rep == nil {
		return runErr
	}
	if err := writeReport(rep, o.jsonOut, stdout); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}

func writeReport(rep *loadgen.Report, jsonOut string, stdout io.Writer) error {
	if jsonOut != "-" {
		if err := rep.WriteTable(stdout); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	if jsonOut == "" {
		return nil
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	b = append(b, '\n')
	if jsonOut == "-" {
		_, err = stdout.Write(b)
	} else {
		err = os.WriteFile(jsonOut, b, 0o644)
	}
	if err != nil {
		return fmt.Errorf("write json report: %w", err)
	}
	return nil
}

func buildConfig(mode string, o *options, stderr io.Writer) (loadgen.Config, error) {
	u, err := url.Parse(o.url)
	if err != nil {
		return loadgen.Config{}, fmt.Errorf("-url: %w", err)
	}
	streams, err := loadgen.ParseStreams(o.streams)
	if err != nil {
		return loadgen.Config{}, fmt.Errorf("-streams: %w", err)
	}
	ips, err := loadgen.ParseSourceIPs(o.sourceIPs)
	if err != nil {
		return loadgen.Config{}, err
	}
	var tokens []loadgen.Token
	if o.tokens != "" {
		if tokens, err = readTokens(o.tokens, o.accounts); err != nil {
			return loadgen.Config{}, err
		}
	} else if o.accounts != "" {
		return loadgen.Config{}, errors.New("-accounts needs -tokens")
	}
	var authors []payload.Author
	if o.authors != "" {
		if authors, err = readAuthors(o.authors); err != nil {
			return loadgen.Config{}, err
		}
	}
	cfg := loadgen.Config{
		BaseURL: u, Clients: o.clients, SSERatio: o.sseRatio, Streams: streams,
		WSSubscribe: o.wsSubscribe, Tokens: tokens, ConnectRate: o.connectRate,
		SourceIPs: ips, ConnectTimeout: o.connectTimeout, Rate: o.rate,
		PayloadSize: o.payloadSize, Authors: authors, Warmup: o.warmup, Duration: o.duration,
		ProbeTimeout: o.probeTimeout, ProbeInterval: 200 * time.Millisecond, Drain: o.drain,
		ServerPID: o.serverPID, ProgressInterval: time.Second,
	}
	if o.progress {
		cfg.Progress = stderr
	}
	if o.rampStart > 0 {
		cfg.Ramp = &loadgen.Ramp{Start: o.rampStart, Step: o.rampStep, Max: o.rampMax, P99Bound: o.p99Bound}
	}
	switch mode {
	case modeInstance:
		arr, err := loadgen.ParseArrivals(o.arrivals)
		if err != nil {
			return loadgen.Config{}, err
		}
		cfg.Instance = &loadgen.Instance{
			Zipf: o.zipf, Followers: o.followers, PublicShare: o.public, TaggedShare: o.tagged,
			Notifications: o.notifications, Arrivals: arr, Seed: o.seed,
		}
		if cfg.Clients == 0 {
			cfg.Clients = loadgen.DistinctAccounts(tokens)
		}
	case modeSoak:
		sk := &loadgen.Soak{
			ChurnRate: o.churnRate, ChurnLifetime: o.churnLifetime, Resubscribe: o.resubscribe,
			SampleInterval: o.sampleEvery, Tolerance: o.flatTolerance, Seed: o.seed,
		}
		switch o.metricsURL {
		case "off":
		case "":
			sk.MetricsURL = u.JoinPath("metrics")
		default:
			if sk.MetricsURL, err = url.Parse(o.metricsURL); err != nil {
				return loadgen.Config{}, fmt.Errorf("-metrics-url: %w", err)
			}
		}
		cfg.Soak = sk
	}
	if err := cfg.Validate(); err != nil {
		return loadgen.Config{}, err
	}
	return cfg, nil
}

func readTokens(tokenPath, accountsPath string) ([]loadgen.Token, error) {
	f, err := os.Open(tokenPath)
	if err != nil {
		return nil, fmt.Errorf("-tokens: %w", err)
	}
	defer func() { _ = f.Close() }()
	tokens, err := loadgen.ParseTokens(f)
	if err != nil {
		return nil, fmt.Errorf("-tokens: %w", err)
	}
	if len(tokens) == 0 {
		return nil, errors.New("-tokens: file has no tokens")
	}
	if accountsPath == "" {
		return tokens, nil
	}
	af, err := os.Open(accountsPath)
	if err != nil {
		return nil, fmt.Errorf("-accounts: %w", err)
	}
	defer func() { _ = af.Close() }()
	if err := loadgen.ParseAccounts(af, tokens); err != nil {
		return nil, fmt.Errorf("-accounts: %w", err)
	}
	return tokens, nil
}

func readAuthors(path string) ([]payload.Author, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("-authors: %w", err)
	}
	defer func() { _ = f.Close() }()
	authors, err := payload.ParseAuthors(f)
	if err != nil {
		return nil, fmt.Errorf("-authors: %w", err)
	}
	if len(authors) == 0 {
		return nil, errors.New("-authors: file has no authors")
	}
	return authors, nil
}
