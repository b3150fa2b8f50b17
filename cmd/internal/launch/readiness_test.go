package launch

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/spillway/spillway/shared/bus"
	"github.com/spillway/spillway/shared/mastodonenv"
	"github.com/spillway/spillway/shared/testenv"
)

var brokerHTTPRe = regexp.MustCompile(`broker health, readiness and metrics on http://([0-9.:]+)`)

// awaitLine waits for a JSON log line carrying every given key and value.
func (l *logBuffer) awaitLine(t *testing.T, want map[string]string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() error {
		if l.countLines(want) == 0 {
			return fmt.Errorf("no log line with %v in:\n%s", want, l.String())
		}
		return nil
	})
}

// countLines counts JSON log lines carrying every given key and value.
func (l *logBuffer) countLines(want map[string]string) int {
	n := 0
	for line := range strings.SplitSeq(l.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		ok := true
		for k, v := range want {
			ok = ok && fmt.Sprint(m[k]) == v
		}
		if ok {
			n++
		}
	}
	return n
}

// closedPort returns a 127.0.0.1 port nothing listens on (for now).
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

// probe is a GET answered by one of the commands' listeners.
type probe struct {
	code int
	body string
	deps map[string]string // /readyz: dependency → state
}

func get(t *testing.T, u string) probe {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p := probe{code: resp.StatusCode, body: string(b)}
	if strings.HasSuffix(u, "/readyz") {
		var r struct {
			Dependencies map[string]struct {
				State string `json:"state"`
			} `json:"dependencies"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v: %s", u, err, b)
		}
		p.deps = make(map[string]string)
		for name, d := range r.Dependencies {
			p.deps[name] = d.State
		}
	}
	return p
}

// awaitReadyz polls a /readyz until it answers code with these states.
func awaitReadyz(t *testing.T, u string, code int, states map[string]string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() error {
		p := get(t, u)
		if p.code != code || fmt.Sprint(p.deps) != fmt.Sprint(states) {
			return fmt.Errorf("%s: %d %s, want %d %v", u, p.code, p.body, code, states)
		}
		return nil
	})
}

// An edge whose NATS server is not there starts anyway, says so naming
// the URL (its token masked), reports not ready, and serves once NATS
// appears.
func TestEdgeStartsWithoutNATS(t *testing.T) {
	_, ns := testenv.Redis(t)
	port := closedPort(t)
	env := baseEnv(t, ns)
	env["STREAMING_NATS_URL"] = "nats://s3cr3t-token@127.0.0.1:" + port
	log := command(t, Edge, []string{"edge", "-mastodon-root", t.TempDir()}, env)
	addr := log.await(t, listeningRe)
	log.awaitLine(t, map[string]string{"level": "WARN", "msg": "nats unreachable", "address": "nats://xxxxx@127.0.0.1:" + port})
	awaitReadyz(t, "http://"+addr+"/readyz", 503, map[string]string{"nats": "down", "postgres": "up"})
	if p := get(t, "http://"+addr+"/api/v1/streaming/health"); p.code != 503 || p.body != "NATS unavailable" {
		t.Errorf("health %d %q", p.code, p.body)
	}

	srv, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:" + port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown() })
	log.awaitLine(t, map[string]string{"level": "INFO", "msg": "nats back", "address": "nats://xxxxx@127.0.0.1:" + port})
	awaitReadyz(t, "http://"+addr+"/readyz", 200, map[string]string{"nats": "up", "postgres": "up"})
	openSSE(t, addr, "/api/v1/streaming/user", testenv.AliceReadToken)
	if strings.Contains(log.String(), "s3cr3t-token") {
		t.Errorf("the NATS token reached the log:\n%s", log)
	}
}

// A NATS URL that cannot be used at all stops the edge with an error
// naming it.
func TestEdgeRefusesUnusableNATSURL(t *testing.T) {
	_, ns := testenv.Redis(t)
	env := baseEnv(t, ns)
	env["STREAMING_NATS_URL"] = "nats://user:pw@127.0.0.1:4222:bad"
	err := Edge(t.Context(), []string{"edge", "-mastodon-root", t.TempDir()}, mastodonenv.MapEnv(env), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "STREAMING_NATS_URL=nats://user:xxxxx@127.0.0.1:4222:bad") || strings.Contains(err.Error(), "pw@") {
		t.Fatalf("err = %v, want one naming the URL without its password", err)
	}
}

// An all-in-one edge whose Postgres is unreachable starts, says so naming
// the database (never the password), reports not ready with NATS and
// Redis up, answers clients as Mastodon does (500), and recovers by itself.
func TestEdgeStartsWithoutPostgres(t *testing.T) {
	_, ns := testenv.Redis(t)
	env := baseEnv(t, ns)
	pg, err := url.Parse(env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(env["DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, net.JoinHostPort(cfg.ConnConfig.Host, fmt.Sprint(cfg.ConnConfig.Port)))
	proxy.Cut()
	pg.Host = proxy.Addr()
	pg.User = url.UserPassword(cfg.ConnConfig.User, "hunter2-password")
	env["DATABASE_URL"] = pg.String()

	log := command(t, Edge, []string{"edge", "-all-in-one", "-mastodon-root", t.TempDir()}, env)
	addr := log.await(t, listeningRe)
	pgAddress := "postgres://" + cfg.ConnConfig.User + "@" + proxy.Addr() + "/" + cfg.ConnConfig.Database
	log.awaitLine(t, map[string]string{"level": "WARN", "msg": "postgres unreachable", "dependency": "postgres", "address": pgAddress})
	awaitReadyz(t, "http://"+addr+"/readyz", 503, map[string]string{"nats": "up", "postgres": "down", "redis": "up"})
	if p := get(t, "http://"+addr+"/api/v1/streaming/health"); p.code != 200 || p.body != "OK" {
		t.Errorf("health %d %q: it follows NATS only, as documented", p.code, p.body)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/streaming/user", nil)
	req.Header.Set("Authorization", "Bearer "+testenv.AliceReadToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 500 {
		t.Errorf("client without Postgres: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	proxy.Restore()
	log.awaitLine(t, map[string]string{"level": "INFO", "msg": "postgres back", "address": pgAddress})
	awaitReadyz(t, "http://"+addr+"/readyz", 200, map[string]string{"nats": "up", "postgres": "up", "redis": "up"})
	openSSE(t, addr, "/api/v1/streaming/user", testenv.AliceReadToken)
	if strings.Contains(log.String(), "hunter2") {
		t.Errorf("the database password reached the log:\n%s", log)
	}
}

// The broker serves its own health, readiness and metrics, and logs its
// Redis subscription's every change with the address, from a Redis
// unreachable at start to one lost and back.
func TestBrokerReportsRedis(t *testing.T) {
	_, ns := testenv.Redis(t)
	env := baseEnv(t, ns)
	opts, err := redis.ParseURL(env["REDIS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, opts.Addr)
	proxy.Cut()
	env["REDIS_URL"] = "redis://" + proxy.Addr() + "/0"
	env["STREAMING_NATS_LISTEN"] = "127.0.0.1:-1"
	env["STREAMING_BROKER_HTTP_LISTEN"] = "127.0.0.1:0"
	log := command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir()}, env)
	base := "http://" + log.await(t, brokerHTTPRe)
	redisAddr := "redis://" + proxy.Addr() + "/0"
	line := func(level, msg string) map[string]string {
		return map[string]string{"level": level, "msg": msg, "dependency": "redis", "address": redisAddr}
	}

	log.awaitLine(t, line("WARN", "redis unreachable"))
	awaitReadyz(t, base+"/readyz", 503, map[string]string{"nats": "up", "redis": "down"})
	if p := get(t, base+"/healthz"); p.code != 200 || p.body != "OK" {
		t.Errorf("/healthz %d %q", p.code, p.body)
	}
	if p := get(t, base+"/metrics"); p.code != 200 || !strings.Contains(p.body, "spillway_redis_connected 0") {
		t.Errorf("/metrics %d without spillway_redis_connected 0", p.code)
	}

	proxy.Restore()
	log.awaitLine(t, line("INFO", "redis back"))
	awaitReadyz(t, base+"/readyz", 200, map[string]string{"nats": "up", "redis": "up"})
	proxy.Cut()
	log.awaitLine(t, line("WARN", "redis lost"))
	awaitReadyz(t, base+"/readyz", 503, map[string]string{"nats": "up", "redis": "down"})
	proxy.Restore()
	testenv.Eventually(t, 20*time.Second, func() error {
		if n := log.countLines(line("INFO", "redis back")); n != 2 {
			return fmt.Errorf("%d lines saying Redis is back, want 2", n)
		}
		return nil
	})
	if n := log.countLines(map[string]string{"dependency": "redis"}); n != 4 {
		t.Errorf("%d Redis state lines for 4 changes:\n%s", n, log)
	}
}

// -metrics-listen keeps working and serves the same endpoints.
func TestBrokerMetricsListenFlag(t *testing.T) {
	_, ns := testenv.Redis(t)
	env := baseEnv(t, ns)
	env["STREAMING_NATS_LISTEN"] = "127.0.0.1:-1"
	log := command(t, Broker, []string{"broker", "-mastodon-root", t.TempDir(), "-metrics-listen", "127.0.0.1:0"}, env)
	base := "http://" + log.await(t, brokerHTTPRe)
	awaitReadyz(t, base+"/readyz", 200, map[string]string{"nats": "up", "redis": "up"})
	if p := get(t, base+"/metrics"); p.code != 200 || !strings.Contains(p.body, "spillway_redis_connected 1") {
		t.Errorf("/metrics %d without spillway_redis_connected 1", p.code)
	}
}

func TestAddresses(t *testing.T) {
	pgTests := []struct{ env, want string }{
		{"postgres://mastodon:s3cret@db.internal:5433/mastodon_production", "postgres://mastodon@db.internal:5433/mastodon_production"},
		{"host=/var/run/postgresql dbname=mastodon user=mastodon password=s3cret", "postgres://mastodon@/mastodon?host=/var/run/postgresql&port=5432"},
	}
	for _, tc := range pgTests {
		cfg, err := mastodonenv.PostgresFromEnv(mastodonenv.MapEnv(map[string]string{"DATABASE_URL": tc.env}))
		if err != nil {
			t.Fatal(err)
		}
		if got := postgresAddress(cfg); got != tc.want {
			t.Errorf("postgresAddress(%s) = %q, want %q", tc.env, got, tc.want)
		}
	}
	redisTests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"REDIS_URL": "redis://default:s3cret@cache:6380/2"}, "redis://default@cache:6380/2"},
		{map[string]string{"REDIS_URL": "rediss://:s3cret@cache:6380"}, "rediss://cache:6380/0"},
		{map[string]string{"REDIS_HOST": "cache", "REDIS_PASSWORD": "s3cret"}, "redis://cache:6379/0"},
		{map[string]string{"REDIS_SENTINELS": "s1,s2:26380", "REDIS_SENTINEL_MASTER": "mymaster", "REDIS_PASSWORD": "s3cret"},
			"sentinels s1:26379,s2:26380, master mymaster, db 0"},
	}
	for _, tc := range redisTests {
		r, err := mastodonenv.RedisFromEnv(mastodonenv.MapEnv(tc.env))
		if err != nil {
			t.Fatal(err)
		}
		if got := redisAddress(r); got != tc.want {
			t.Errorf("redisAddress(%v) = %q, want %q", tc.env, got, tc.want)
		}
	}
}

// Bad readiness variables stop the process naming the variable.
func TestReadinessVariables(t *testing.T) {
	s, err := Load(mastodonenv.MapEnv(nil), t.TempDir(), true)
	if err != nil || s.shedAfter() != defaultNATSShedAfter {
		t.Fatalf("default shed after: %v %v", s.shedAfter(), err)
	}
	s, err = Load(mastodonenv.MapEnv(map[string]string{"STREAMING_NATS_SHED_AFTER": "0"}), t.TempDir(), true)
	if err != nil || s.shedAfter() >= 0 {
		t.Fatalf("0 must never shed: %v %v", s.shedAfter(), err)
	}
	if _, err := Load(mastodonenv.MapEnv(map[string]string{"STREAMING_NATS_SHED_AFTER": "soon"}), t.TempDir(), true); err == nil || !strings.Contains(err.Error(), "STREAMING_NATS_SHED_AFTER") {
		t.Fatalf("bad value: %v", err)
	}
}
