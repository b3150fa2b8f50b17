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
       loadtest fixtures [flags]   (benchmark database; see loadtest fixtures -help)
       loadtest relay [flags]      (minimal relay: the kernel's floor; see loadtest relay -help)

Load-tests a Mastodon streaming API server on this machine (loopback only).
Opens -clients receive-only clients (a mix of SSE and WebSocket, of streams
and of tokens) at -connect-rate from rotating 127.0.0.x source addresses,
confirms every subscription with probe events, then publishes Mastodon
"update" events into Redis at -rate ticks/s (one event per target channel per
tick) and reports publish-to-receive latency percentiles, loss, duplicates,
reordering, connect latency and failures, and (with -server-pid) the server's
CPU µs per delivery and RSS KB per connection. With -ramp-start it adds
clients in steps until p99 exceeds -p99-bound or deliveries are lost, and
reports the last good step.

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
}

func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:4000", "server base `URL` (http, loopback host only)")
	fs.IntVar(&o.clients, "clients", 100, "number of clients (fixed mode)")
	fs.Float64Var(&o.sseRatio, "sse-ratio", 0.5, "fraction of clients using SSE, 0..1 (the rest use WebSocket)")
	fs.StringVar(&o.streams, "streams", "public", "stream mix: comma list of `NAME[=WEIGHT]`")
	fs.BoolVar(&o.wsSubscribe, "ws-subscribe", false, "subscribe WebSockets with a subscribe message instead of ?stream=")
	fs.StringVar(&o.tokens, "tokens", "", "token `file`: one token per line, optionally token<TAB>account_id; clients take tokens round-robin")
	fs.StringVar(&o.accounts, "accounts", "", "account id `file`, one per line in token order (alternative to token<TAB>account_id)")
	fs.Float64Var(&o.connectRate, "connect-rate", 500, "new connections per second")
	fs.StringVar(&o.sourceIPs, "source-ips", "8", "local source addresses: a count N (127.0.0.2..127.0.0.N+1), a comma list of loopback IPs, or 0 for none")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 10*time.Second, "per-connection dial + handshake timeout")
	fs.StringVar(&o.redisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis `URL` the server subscribes to")
	fs.StringVar(&o.redisNS, "redis-namespace", "", "the server's REDIS_NAMESPACE (channels become NS:timeline:…)")
	fs.Float64Var(&o.rate, "rate", 10, "publish ticks per second; each tick publishes one event on every target channel")
	fs.StringVar(&o.authors, "authors", "", "author `file` (account_id<TAB>username<TAB>acct lines, as written by loadtest fixtures): published statuses rotate over these authors so servers apply blocks, mutes and domain blocks (probes keep a neutral author; on public/hashtag streams the statuses a server drops count as lost)")
	fs.IntVar(&o.payloadSize, "payload-size", 3500, "approximate size of each published message in `bytes` (a complete status is at least ~3 KB; smaller values give that minimum)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "measured window (per ramp step)")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "unmeasured publishing before each window")
	fs.DurationVar(&o.drain, "drain", 5*time.Second, "longest wait for in-flight deliveries after a window")
	fs.DurationVar(&o.probeTimeout, "probe-timeout", 30*time.Second, "longest wait for every client to receive a probe event")
	fs.IntVar(&o.serverPID, "server-pid", 0, "server `pid` to sample CPU (utime+stime) and VmRSS from /proc")
	fs.IntVar(&o.rampStart, "ramp-start", 0, "ramp mode: clients in the first step (0 = fixed mode)")
	fs.IntVar(&o.rampStep, "ramp-step", 1000, "ramp mode: clients added per step")
	fs.IntVar(&o.rampMax, "ramp-max", 20000, "ramp mode: most clients to try")
	fs.DurationVar(&o.p99Bound, "p99-bound", 100*time.Millisecond, "ramp mode: largest acceptable p99 latency")
	fs.StringVar(&o.jsonOut, "json", "", "also write the report as JSON to `file` (\"-\" = JSON on stdout instead of the table)")
	fs.BoolVar(&o.progress, "progress", true, "print a progress line to stderr every second")
	fs.Usage = func() {
		_, _ = io.WriteString(stderr, usageHead)
		fs.PrintDefaults()
		_, _ = io.WriteString(stderr, usageExamples)
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
	var o options
	fs := newFlagSet(&o, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	cfg, err := buildConfig(&o, stderr)
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

func buildConfig(o *options, stderr io.Writer) (loadgen.Config, error) {
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
