package launch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/broker"
	"github.com/spillway/spillway/edge"
	"github.com/spillway/spillway/shared/mastodonenv"
)

// checkTimeout bounds each dependency check of -check-config.
const checkTimeout = 10 * time.Second

// mastodonVar is one of Mastodon's variables, with its default as shown by
// -check-config (the values used are those mastodonenv resolves, printed
// under "Effective settings").
type mastodonVar struct {
	name, def string
	// ifSet: listed only when set (libpq fallbacks few people use).
	ifSet bool
}

var (
	commonVars = []mastodonVar{
		{name: "NODE_ENV", def: "development"},
		{name: "LOG_LEVEL", def: "debug (development), info"},
	}
	listenVars = []mastodonVar{
		{name: "PORT", def: "4000"},
		{name: "BIND", def: "127.0.0.1"},
		{name: "SOCKET"},
		{name: "TRUSTED_PROXY_IP", def: "loopback,uniquelocal"},
	}
	postgresVars = []mastodonVar{
		{name: "DATABASE_URL"},
		{name: "DB_HOST", def: "localhost"},
		{name: "DB_PORT", def: "5432"},
		{name: "DB_USER", def: "mastodon (production), $USER"},
		{name: "DB_PASS"},
		{name: "DB_NAME", def: "mastodon_production, mastodon_development"},
		{name: "DB_SSLMODE"},
		{name: "DB_POOL", def: "10"},
		{name: "PGHOST", ifSet: true},
		{name: "PGUSER", ifSet: true},
		{name: "PGPASSWORD", ifSet: true},
		{name: "PGSSLMODE", ifSet: true},
	}
	redisVars = []mastodonVar{
		{name: "REDIS_URL"},
		{name: "REDIS_HOST", def: "127.0.0.1"},
		{name: "REDIS_PORT", def: "6379"},
		{name: "REDIS_DB", def: "0"},
		{name: "REDIS_USERNAME"},
		{name: "REDIS_PASSWORD"},
		{name: "REDIS_SENTINELS"},
		{name: "REDIS_SENTINEL_MASTER"},
		{name: "REDIS_SENTINEL_PORT", def: "26379"},
		{name: "REDIS_SENTINEL_USERNAME", def: "REDIS_USERNAME"},
		{name: "REDIS_SENTINEL_PASSWORD", def: "REDIS_PASSWORD"},
		{name: "REDIS_NAMESPACE"},
	}
)

// appliesTo reports whether a variable of the Variables list matters to
// the command: entries whose help starts with "Edge:" are the edge's only.
func appliesTo(help string, t toolTarget) bool {
	return t.name == "edge" || !strings.HasPrefix(help, "Edge:")
}

// report prints check-config's output with every known secret scrubbed,
// and counts the problems found.
type report struct {
	w        io.Writer
	sec      *secrets
	problems int
	werr     error
}

func (r *report) printf(format string, args ...any) {
	if r.werr != nil {
		return
	}
	_, r.werr = io.WriteString(r.w, r.sec.scrub(fmt.Sprintf(format, args...)))
}

// ok, warn and fail print one check line: what was checked (naming the
// address) and what came of it. Only fail counts as a problem.
func (r *report) ok(what, detail string)   { r.printf("  ok    %s: %s\n", what, detail) }
func (r *report) warn(what, detail string) { r.printf("  warn  %s: %s\n", what, detail) }
func (r *report) fail(what string, err error) {
	r.problems++
	r.printf("  FAIL  %s: %s\n", what, strings.ReplaceAll(err.Error(), "\n", "; "))
}

func (r *report) result() error {
	switch {
	case r.werr != nil:
		return r.werr
	case r.problems == 1:
		return errors.New("check-config: 1 problem")
	case r.problems > 1:
		return fmt.Errorf("check-config: %d problems", r.problems)
	}
	r.printf("No problems found.\n")
	return r.werr
}

// checkConfig prints the configuration t would run with, where each value
// came from (the environment, the .env file, or a default), the settings
// resolved from it, and the outcome of trying each dependency and listen
// address; it returns an error when any check failed.
func checkConfig(ctx context.Context, t toolTarget, stdout io.Writer) error {
	r := &report{w: stdout, sec: &secrets{}}
	mode := t.name
	if t.allInOne {
		mode += " -all-in-one"
	}
	file := mastodonenv.DotenvFile(t.env, t.root)
	env, err := mastodonenv.LoadDotenv(t.env, t.root)
	if err != nil {
		r.printf("%s\nConfiguration of %s:\n", versionLine(t.name), mode)
		r.fail(".env file "+file, err)
		return r.result()
	}
	fileState := "read"
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		fileState = "not present"
	}

	// Every row is masked (and its secrets recorded) before anything is
	// printed, so that no later line can show a secret either.
	table := variableTable(t, env, file, r.sec)
	s, loadErr := Load(t.env, t.root, t.name == "edge")
	var pgcfg *pgxpool.Config
	var pgErr error
	if loadErr == nil {
		recordRedisSecrets(s.Redis, r.sec)
		if t.name == "edge" {
			if pgcfg, pgErr = mastodonenv.PostgresFromEnv(s.Env); pgErr == nil {
				r.sec.add(pgcfg.ConnConfig.Password)
			}
		}
	}

	r.printf("%s\nConfiguration of %s (NODE_ENV=%s; .env file %s: %s):\n", versionLine(t.name), mode, mastodonenv.NodeEnv(env), file, fileState)
	r.printf("%s", table)
	if loadErr != nil {
		r.printf("Checks:\n")
		r.fail("configuration", loadErr)
		return r.result()
	}

	r.printf("Effective settings:\n")
	effective := &bytes.Buffer{}
	tw := tabwriter.NewWriter(effective, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	var natsURL string
	if t.name == "edge" {
		row("listen", s.Listen.Network+" "+s.Listen.Address)
		row("tls", describeTLS(s))
		if pgErr == nil {
			row("postgres", describePostgres(pgcfg))
		}
		if t.allInOne {
			row("redis", describeRedis(s.Redis))
			nats := "in-process (all-in-one), no TCP listener"
			if s.NATSListen != "" {
				nats = "in-process (all-in-one), listening for more edges on " + s.NATSListen
			}
			row("nats", nats)
		} else {
			natsURL = s.NATSURL
			if natsURL == "" {
				natsURL = defaultNATSURL
			}
			row("nats", maskValue("STREAMING_NATS_URL", natsURL, r.sec))
		}
		row("max connections", strconv.Itoa(s.MaxConnections)+" (0 = no cap)")
		row("trusted proxies", s.TrustedProxies.String())
		row("client limits", describeLimits(s.Limits))
		row("slow client queue", strconv.Itoa(s.QueueFrames)+" frames")
		row("shutdown", "delay "+s.ShutdownDelay.String()+", grace "+s.ShutdownGrace.String())
	} else {
		row("redis", describeRedis(s.Redis))
		if s.NATSSet {
			natsURL = s.NATSURL
			row("nats", "external: "+maskValue("STREAMING_NATS_URL", natsURL, r.sec))
		} else {
			row("nats", "embedded, listening for edges on "+brokerNATSListen(s))
			if c := s.NATSCluster; c.Listen != "" {
				row("nats cluster", "routes on "+c.Listen+", to "+maskValue("STREAMING_NATS_ROUTES", strings.Join(c.Routes, ","), r.sec))
			}
		}
		if s.BrokerLease > 0 {
			row("lease", fmt.Sprintf("%v, renewed every %v, key %s", s.BrokerLease, s.BrokerLeaseRenew, leaseKey(s)))
		} else {
			row("lease", "off: this broker always publishes (run exactly one)")
		}
		if t.metricsListen != "" {
			row("metrics", "http://"+t.metricsListen+"/metrics")
		}
	}
	row("subject prefix", s.Subjects.Prefix)
	row("log level", mastodonenv.LevelName(s.LogLevel))
	tw.Flush()
	r.printf("%s", effective.String())

	r.printf("Checks:\n")
	if t.name == "edge" {
		checkListen(ctx, r, "listen (PORT/BIND/SOCKET)", s.Listen, identifyEdge(s.Listen, s.Env))
		if s.TLSCert != "" {
			checkTLS(r, s)
		}
		if pgErr != nil {
			r.fail("postgres", pgErr)
		} else {
			checkPostgres(ctx, r, pgcfg)
		}
		if t.allInOne {
			checkRedis(ctx, r, s.Redis)
			if s.NATSListen != "" {
				checkListen(ctx, r, "embedded NATS (STREAMING_NATS_LISTEN)", tcp(s.NATSListen), identifyNATS(s.NATSListen))
			}
		} else {
			checkNATS(ctx, r, s, natsURL)
		}
		if addr := s.Env.Get("STREAMING_DEBUG_LISTEN"); addr != "" {
			checkListen(ctx, r, "profiling (STREAMING_DEBUG_LISTEN)", tcp(addr), identifyHTTP(addr))
		}
	} else {
		checkRedis(ctx, r, s.Redis)
		if s.BrokerLease > 0 {
			checkLease(ctx, r, s)
		}
		if err := checkCluster(s, !s.NATSSet); err != nil {
			r.fail("nats cluster", err)
		}
		if s.NATSSet {
			checkNATS(ctx, r, s, natsURL)
		} else {
			checkListen(ctx, r, "embedded NATS (STREAMING_NATS_LISTEN)", tcp(brokerNATSListen(s)), identifyNATS(brokerNATSListen(s)))
			if l := s.NATSCluster.Listen; l != "" {
				checkListen(ctx, r, "NATS routes (STREAMING_NATS_CLUSTER_LISTEN)", tcp(l), identifyNATS(l))
			}
		}
		if t.metricsListen != "" {
			checkListen(ctx, r, "metrics (-metrics-listen)", tcp(t.metricsListen), identifyHTTP(t.metricsListen))
		}
	}
	return r.result()
}

// variableTable lists the variables that apply to t with their values
// (masked) and where each came from.
func variableTable(t toolTarget, env mastodonenv.Env, file string, sec *secrets) string {
	vars := append([]mastodonVar(nil), commonVars...)
	if t.name == "edge" {
		vars = append(vars, listenVars...)
		vars = append(vars, postgresVars...)
	}
	if t.name == "broker" || t.allInOne {
		vars = append(vars, redisVars...)
	}
	for _, v := range Variables {
		if appliesTo(v.Help, t) {
			vars = append(vars, mastodonVar{name: v.Name, def: v.Default})
		}
	}
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, v := range vars {
		value, set := env(v.name)
		if !set && v.ifSet {
			continue
		}
		source := "environment"
		if _, inEnv := t.env(v.name); !inEnv {
			source = file
		}
		if !set {
			value, source = "-", "unset"
			if v.def != "" && v.def != "unset" {
				source = "unset, default " + v.def
			}
		} else if value == "" {
			value = `""`
		} else {
			value = maskValue(v.name, value, sec)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.name, value, source)
	}
	tw.Flush()
	return b.String()
}

// recordRedisSecrets records the passwords of the Redis connection, which
// may come from REDIS_URL or the REDIS_* variables.
func recordRedisSecrets(r mastodonenv.Redis, sec *secrets) {
	if r.Options != nil {
		sec.add(r.Options.Password)
	}
	if r.Failover != nil {
		sec.add(r.Failover.Password)
		sec.add(r.Failover.SentinelPassword)
	}
}

// brokerNATSListen is where the broker's embedded NATS server listens.
func brokerNATSListen(s Settings) string {
	if s.NATSListen != "" {
		return s.NATSListen
	}
	return defaultNATSListen
}

func tcp(addr string) mastodonenv.Listen { return mastodonenv.Listen{Network: "tcp", Address: addr} }

// describePostgres summarises a pool configuration without its password.
func describePostgres(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	tlsMode := "no TLS"
	if c.TLSConfig != nil {
		tlsMode = "TLS"
		if c.TLSConfig.InsecureSkipVerify {
			tlsMode = "TLS without certificate verification"
		}
	}
	return fmt.Sprintf("%s@%s/%s (%s, pool %d)", c.User, postgresServers(c), c.Database, tlsMode, cfg.MaxConns)
}

// postgresServers names the server(s) a configuration connects to.
func postgresServers(c *pgx.ConnConfig) string {
	addrs := []string{hostPort(c.Host, c.Port)}
	for _, fb := range c.Fallbacks {
		if a := hostPort(fb.Host, fb.Port); a != addrs[len(addrs)-1] {
			addrs = append(addrs, a)
		}
	}
	return strings.Join(addrs, ",")
}

func hostPort(host string, port uint16) string {
	if strings.HasPrefix(host, "/") {
		return filepath.Join(host, ".s.PGSQL."+strconv.Itoa(int(port)))
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// describeRedis summarises a Redis configuration without its passwords.
func describeRedis(r mastodonenv.Redis) string {
	ns := "none"
	if r.Namespace != "" {
		ns = strconv.Quote(r.Namespace)
	}
	if r.Failover != nil {
		f := r.Failover
		return fmt.Sprintf("sentinel master %s via %s, db %d, namespace %s", f.MasterName, strings.Join(f.SentinelAddrs, ","), f.DB, ns)
	}
	o := r.Options
	tlsMode := ""
	if o.TLSConfig != nil {
		tlsMode = ", TLS"
	}
	user := ""
	if o.Username != "" {
		user = o.Username + "@"
	}
	return fmt.Sprintf("%s%s, db %d%s, namespace %s", user, o.Addr, o.DB, tlsMode, ns)
}

// checkPostgres connects as the edge would and runs a query against a table
// the edge reads, which tells a wrong database from a working one.
func checkPostgres(ctx context.Context, r *report, cfg *pgxpool.Config) {
	what := "postgres " + postgresServers(cfg.ConnConfig)
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy())
	if err != nil {
		r.fail(what, err)
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	err = conn.QueryRow(ctx, "SELECT 1 FROM oauth_access_tokens LIMIT 1").Scan(&one)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		r.fail(what, fmt.Errorf("connected to %s, but reading oauth_access_tokens failed (is it Mastodon's database?): %w", cfg.ConnConfig.Database, err))
		return
	}
	r.ok(what, fmt.Sprintf("connected as %s to %s (PostgreSQL %s), oauth_access_tokens readable",
		cfg.ConnConfig.User, cfg.ConnConfig.Database, conn.PgConn().ParameterStatus("server_version")))
}

// checkRedis sends PING over a connection configured as the broker's.
func checkRedis(ctx context.Context, r *report, cfg mastodonenv.Redis) {
	var what string
	if f := cfg.Failover; f != nil {
		what = "redis sentinel " + strings.Join(f.SentinelAddrs, ",") + " master " + f.MasterName
	} else {
		what = "redis " + cfg.Options.Addr
	}
	rdb := probeRedis(cfg)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		r.fail(what, err)
		return
	}
	r.ok(what, "PING answered")
}

// checkLease tells who holds the broker lease, if anyone: the running
// broker, or another one.
func checkLease(ctx context.Context, r *report, s Settings) {
	key := leaseKey(s)
	what := "broker lease " + key
	rdb := probeRedis(s.Redis)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	// The lease is renewed by a script: an ACL may forbid them.
	if err := redis.NewScript("return 1").Run(ctx, rdb, []string{key}).Err(); err != nil {
		r.fail(what, fmt.Errorf("running a script: %w (the lease needs EVALSHA, EVAL and PUBLISH; with a single broker, STREAMING_BROKER_LEASE=0 does without)", err))
		return
	}
	holder, err := rdb.Get(ctx, key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		r.ok(what, "free: a broker started now leads at once")
	case err != nil:
		r.fail(what, err)
	default:
		ttl, _ := rdb.PTTL(ctx, key).Result()
		r.ok(what, fmt.Sprintf("held by %s for %v more: a broker started now stands by", holder, ttl.Round(time.Millisecond)))
	}
}

// leaseKey is the broker lease's Redis key.
func leaseKey(s Settings) string { return broker.LeaseKey(s.Redis.Namespace, s.Subjects) }

// probeRedis is a client configured as the broker's that fails fast.
func probeRedis(cfg mastodonenv.Redis) *redis.Client {
	if cfg.Failover != nil {
		f := *cfg.Failover
		f.MaxRetries, f.DialerRetries, f.DialTimeout = -1, 1, probeTimeout
		return redis.NewFailoverClient(&f)
	}
	o := *cfg.Options
	o.MaxRetries, o.DialerRetries, o.DialTimeout = -1, 1, probeTimeout
	return redis.NewClient(&o)
}

// checkNATS reaches each server of a NATS URL list over TCP (which names
// the one that cannot be reached), then connects as an edge would.
func checkNATS(ctx context.Context, r *report, s Settings, rawURL string) {
	what := "nats " + maskValue("STREAMING_NATS_URL", rawURL, r.sec)
	var dialErrs []error
	reachable := 0
	for u := range strings.SplitSeq(rawURL, ",") {
		addr, err := natsAddress(strings.TrimSpace(u))
		if err == nil {
			dctx, cancel := context.WithTimeout(ctx, probeTimeout)
			var c net.Conn
			c, err = (&net.Dialer{}).DialContext(dctx, "tcp", addr)
			cancel()
			if err == nil {
				c.Close()
				reachable++
				continue
			}
		}
		dialErrs = append(dialErrs, err)
	}
	if reachable == 0 {
		r.fail(what, joinErrors(dialErrs))
		return
	}
	nc, err := dialNATS(s, rawURL, "spillway-check-config", nil)
	if err != nil {
		r.fail(what, err)
		return
	}
	defer nc.Close()
	if err := nc.FlushTimeout(probeTimeout); err != nil {
		if last := nc.LastError(); last != nil {
			err = fmt.Errorf("%w (%v)", err, last)
		}
		r.fail(what, err)
		return
	}
	detail := fmt.Sprintf("connected to %s (nats-server %s)", nc.ConnectedUrlRedacted(), nc.ConnectedServerVersion())
	if len(dialErrs) > 0 {
		r.warn(what, fmt.Sprintf("%s; unreachable: %v", detail, joinErrors(dialErrs)))
		return
	}
	r.ok(what, detail)
}

// joinErrors joins errors on one line, so that each check stays one line.
func joinErrors(errs []error) error {
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// natsAddress is the host:port of one NATS URL (nats.go's default port and
// scheme when absent).
func natsAddress(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		raw = "nats://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "ws":
			port = "80"
		case "wss":
			port = "443"
		default:
			port = "4222"
		}
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// checkListen tries to listen where the command would. An address in use
// is only a warning when identify recognises the kind of server holding it
// (most likely the running instance, which a restart replaces); anything
// else in the way is a problem.
func checkListen(ctx context.Context, r *report, what string, l mastodonenv.Listen, identify func(context.Context) string) {
	what += " " + l.Address
	if l.Network == "unix" {
		if c, err := net.Dial("unix", l.Address); err == nil {
			c.Close()
			if who := identify(ctx); who != "" {
				r.warn(what, "in use by "+who+" (the running server?)")
			} else {
				r.fail(what, errors.New("another program listens on this socket"))
			}
			return
		}
		dir := filepath.Dir(l.Address)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			r.fail(what, fmt.Errorf("directory %s does not exist", dir))
			return
		}
		r.ok(what, "can be created")
		return
	}
	addr := l.Address
	if host, port, err := net.SplitHostPort(addr); err == nil && port == "-1" {
		addr = net.JoinHostPort(host, "0") // the embedded NATS server's "random port"
	}
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		ln.Close()
		r.ok(what, "free")
		return
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		if who := identify(ctx); who != "" {
			r.warn(what, "in use by "+who+" (the running server? a restart frees it)")
			return
		}
		r.fail(what, errors.New("in use by another program"))
		return
	}
	r.fail(what, err)
}

// identifyEdge, identifyNATS and identifyHTTP return a function that tells
// what holds a listen address, or "" when it is none of theirs.
func identifyEdge(l mastodonenv.Listen, env mastodonenv.Env) func(context.Context) string {
	return func(ctx context.Context) string {
		ctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		// A draining edge, or one without NATS, answers 503: still an edge.
		if _, err := probeEdge(ctx, l, env); err == nil || strings.Contains(err.Error(), " 503 ") {
			return "a streaming server"
		}
		return ""
	}
}

func identifyNATS(listen string) func(context.Context) string {
	return func(ctx context.Context) string {
		addr, err := localAddress(listen)
		if err != nil {
			return ""
		}
		ctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		if probeNATS(ctx, addr) == nil {
			return "a NATS server"
		}
		return ""
	}
}

func identifyHTTP(listen string) func(context.Context) string {
	return func(ctx context.Context) string {
		addr, err := localAddress(listen)
		if err != nil {
			return ""
		}
		ctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
		if err != nil {
			return ""
		}
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			return ""
		}
		resp.Body.Close()
		return "an HTTP server"
	}
}

// describeLimits sums up the per-client limits for -check-config.
func describeLimits(l edge.Limits) string {
	n := func(v int) string {
		if v == 0 {
			return "no limit"
		}
		return strconv.Itoa(v)
	}
	pace := func(r float64, burst int) string {
		if r == 0 {
			return "no limit"
		}
		return strconv.FormatFloat(r, 'g', -1, 64) + "/s, burst " + strconv.Itoa(burst)
	}
	return "connections per IP " + n(l.ConnectionsPerIP) + ", per account " + n(l.ConnectionsPerAccount) +
		"; new connections per IP " + pace(l.ConnectRate, l.ConnectBurst) +
		"; streams per WebSocket " + n(l.StreamsPerSocket) + ", subscribes " + pace(l.SubscribeRate, l.SubscribeBurst)
}
