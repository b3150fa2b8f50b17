package mastodonenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// isolatePG keeps pgx from picking up PG* variables or a ~/.pgpass from the
// machine running the tests (pgx reads them from the process environment).
func isolatePG(t testing.TB) {
	t.Helper()
	for _, k := range []string{
		"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGAPPNAME", "PGCONNECT_TIMEOUT",
		"PGSSLMODE", "PGSSLKEY", "PGSSLCERT", "PGSSLCERTMODE", "PGSSLSNI", "PGSSLROOTCERT", "PGSSLPASSWORD",
		"PGSSLNEGOTIATION", "PGTARGETSESSIONATTRS", "PGSERVICE", "PGSERVICEFILE", "PGTZ", "PGOPTIONS",
		"PGMINPROTOCOLVERSION", "PGMAXPROTOCOLVERSION", "PGCHANNELBINDING", "PGREQUIREAUTH",
	} {
		t.Setenv(k, "") // registers restoring the original value
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "no-pgpass"))
}

// tlsMode summarises a pgx TLS configuration.
func tlsMode(c *pgxpool.Config) string {
	tc := c.ConnConfig.TLSConfig
	switch {
	case tc == nil:
		return "none"
	case tc.InsecureSkipVerify:
		return "no-verify"
	case tc.ServerName != "":
		return "verify-full"
	default:
		return "other"
	}
}

func TestPostgresFromEnv(t *testing.T) {
	type want struct {
		host, database, user, password, tls string
		port                                uint16
		maxConns                            int32
	}
	dev := func(w want) *want {
		if w.host == "" {
			w.host = "localhost"
		}
		if w.database == "" {
			w.database = "mastodon_development"
		}
		if w.port == 0 {
			w.port = 5432
		}
		if w.tls == "" {
			w.tls = "none"
		}
		if w.maxConns == 0 {
			w.maxConns = 10
		}
		return &w
	}
	prod := func(w want) *want {
		if w.database == "" {
			w.database = "mastodon_production"
		}
		if w.user == "" {
			w.user = "mastodon"
		}
		return dev(w)
	}
	tests := []struct {
		name   string
		env    map[string]string
		osEnv  map[string]string // set in the real process environment (pgx reads it)
		want   *want
		err    string
		secret string // must not appear in the error
	}{
		{name: "development defaults", env: map[string]string{"USER": "alice"}, want: dev(want{user: "alice"})},
		{name: "empty NODE_ENV is development", env: map[string]string{"NODE_ENV": "", "USER": "alice"}, want: dev(want{user: "alice"})},
		{name: "development PGUSER fallback", env: map[string]string{"PGUSER": "bob"}, want: dev(want{user: "bob"})},
		{name: "development PGPASSWORD fallback", env: map[string]string{"USER": "a", "PGPASSWORD": "pgpw"}, want: dev(want{user: "a", password: "pgpw"})},
		{name: "PGHOST ignored without DATABASE_URL", env: map[string]string{"USER": "a", "PGHOST": "elsewhere"}, want: dev(want{user: "a"})},
		{name: "production defaults", env: map[string]string{"NODE_ENV": "production", "USER": "alice"}, want: prod(want{})},
		{
			name: "production everything",
			env: map[string]string{
				"NODE_ENV": "production", "DB_HOST": "db.internal", "DB_PORT": "6432", "DB_USER": "masto",
				"DB_PASS": `it's a \ pass`, "DB_NAME": "social", "DB_POOL": "25",
			},
			want: prod(want{host: "db.internal", port: 6432, user: "masto", password: `it's a \ pass`, database: "social", maxConns: 25}),
		},
		{name: "DB_PORT parseInt prefix", env: map[string]string{"USER": "a", "DB_PORT": "6432abc"}, want: dev(want{user: "a", port: 6432})},
		{name: "DB_PORT invalid", env: map[string]string{"DB_PORT": "abc"}, err: "Invalid DB_PORT environment variable: abc"},
		{name: "DB_PORT out of range", env: map[string]string{"DB_PORT": "70000"}, err: "Invalid DB_PORT environment variable: 70000"},
		{name: "DB_PORT invalid with DATABASE_URL", env: map[string]string{"DB_PORT": "abc", "DATABASE_URL": "postgres://h/db"}, err: "Invalid DB_PORT environment variable: abc"},
		{name: "DB_PORT invalid with bad NODE_ENV", env: map[string]string{"DB_PORT": "x", "NODE_ENV": "test"}, err: "Invalid DB_PORT environment variable: x"},
		{name: "DB_POOL invalid", env: map[string]string{"DB_POOL": "many"}, err: "Invalid DB_POOL environment variable: many"},
		{name: "DB_POOL zero", env: map[string]string{"DB_POOL": "0"}, err: "Invalid DB_POOL environment variable: 0"},
		{name: "DB_POOL invalid with DATABASE_URL", env: map[string]string{"DB_POOL": "x", "DATABASE_URL": "postgres://h/db"}, err: "Invalid DB_POOL environment variable: x"},
		{name: "unknown NODE_ENV", env: map[string]string{"NODE_ENV": "test"}, err: "Unable to resolve postgresql database configuration."},
		{name: "unknown NODE_ENV before DB_POOL", env: map[string]string{"NODE_ENV": "staging", "DB_POOL": "x"}, err: "Unable to resolve postgresql database configuration."},
		{name: "unknown NODE_ENV with DATABASE_URL", env: map[string]string{"NODE_ENV": "test", "DATABASE_URL": "postgres://u@h/db"}, want: &want{host: "h", port: 5432, user: "u", database: "db", tls: "none", maxConns: 10}},
		{name: "DB_SSLMODE disable", env: map[string]string{"USER": "a", "DB_SSLMODE": "disable"}, want: dev(want{user: "a", tls: "none"})},
		{name: "DB_SSLMODE no-verify", env: map[string]string{"USER": "a", "DB_SSLMODE": "no-verify"}, want: dev(want{user: "a", tls: "no-verify"})},
		{name: "DB_SSLMODE require verifies", env: map[string]string{"USER": "a", "DB_SSLMODE": "require"}, want: dev(want{user: "a", tls: "verify-full"})},
		{name: "DB_SSLMODE prefer verifies", env: map[string]string{"USER": "a", "DB_SSLMODE": "prefer"}, want: dev(want{user: "a", tls: "verify-full"})},
		{name: "DB_SSLMODE anything verifies", env: map[string]string{"USER": "a", "DB_SSLMODE": "yes please"}, want: dev(want{user: "a", tls: "verify-full"})},
		{name: "PGSSLMODE require", env: map[string]string{"USER": "a", "PGSSLMODE": "require"}, want: dev(want{user: "a", tls: "verify-full"})},
		{name: "PGSSLMODE no-verify", env: map[string]string{"USER": "a", "PGSSLMODE": "no-verify"}, want: dev(want{user: "a", tls: "no-verify"})},
		{name: "PGSSLMODE unknown", env: map[string]string{"USER": "a", "PGSSLMODE": "bogus"}, want: dev(want{user: "a", tls: "none"})},
		{name: "DB_SSLMODE beats PGSSLMODE", env: map[string]string{"USER": "a", "DB_SSLMODE": "disable", "PGSSLMODE": "require"}, want: dev(want{user: "a", tls: "none"})},
		{name: "real-env PGSSLMODE does not leak in", env: map[string]string{"USER": "a"}, osEnv: map[string]string{"PGSSLMODE": "require"}, want: dev(want{user: "a", tls: "none"})},
		{
			name:   "pgx error from process env is redacted",
			env:    map[string]string{"USER": "a", "DB_PASS": "hunter2's"},
			osEnv:  map[string]string{"PGCONNECT_TIMEOUT": "soon"},
			err:    "Invalid PostgreSQL configuration from DB_HOST",
			secret: "hunter2",
		},
		{
			name: "DATABASE_URL",
			env:  map[string]string{"DATABASE_URL": "postgresql://u:pw@db:5433/social", "DB_HOST": "ignored", "DB_USER": "ignored", "DB_NAME": "ignored", "DB_SSLMODE": "require", "DB_PASS": "ignored"},
			want: &want{host: "db", port: 5433, user: "u", password: "pw", database: "social", tls: "none", maxConns: 10},
		},
		{name: "DATABASE_URL DB_PASS fallback", env: map[string]string{"DATABASE_URL": "postgres://u@db/social", "DB_PASS": "p&w=%/ +"}, want: &want{host: "db", port: 5432, user: "u", password: "p&w=%/ +", database: "social", tls: "none", maxConns: 10}},
		{name: "DATABASE_URL empty password uses DB_PASS", env: map[string]string{"DATABASE_URL": "postgres://u:@db/social", "DB_PASS": "dbp"}, want: &want{host: "db", port: 5432, user: "u", password: "dbp", database: "social", tls: "none", maxConns: 10}},
		{name: "DATABASE_URL query password wins", env: map[string]string{"DATABASE_URL": "postgres://u@db/social?password=q", "DB_PASS": "dbp"}, want: &want{host: "db", port: 5432, user: "u", password: "q", database: "social", tls: "none", maxConns: 10}},
		{name: "DATABASE_URL PGPASSWORD fallback", env: map[string]string{"DATABASE_URL": "postgres://u@db/social", "PGPASSWORD": "pg"}, want: &want{host: "db", port: 5432, user: "u", password: "pg", database: "social", tls: "none", maxConns: 10}},
		{name: "DATABASE_URL empty port ignored", env: map[string]string{"DATABASE_URL": "postgres://u@db:/social"}, want: &want{host: "db", port: 5432, user: "u", database: "social", tls: "none", maxConns: 10}},
		{name: "DATABASE_URL bad port", env: map[string]string{"DATABASE_URL": "postgres://u:secretpw@db:abc/social"}, err: "Invalid port specified in DATABASE_URL environment variable", secret: "secretpw"},
		{name: "DATABASE_URL bad second port", env: map[string]string{"DATABASE_URL": "postgres://db1:5432,db2:x/social"}, err: "Invalid port specified in DATABASE_URL environment variable"},
		{name: "DATABASE_URL port out of range", env: map[string]string{"DATABASE_URL": "postgres://db:99999/social"}, err: "Invalid DATABASE_URL environment variable"},
		{name: "DATABASE_URL IPv6", env: map[string]string{"DATABASE_URL": "postgres://u@[::1]:5433/social"}, want: &want{host: "::1", port: 5433, user: "u", database: "social", tls: "none", maxConns: 10}},
		{name: "DATABASE_URL other scheme", env: map[string]string{"DATABASE_URL": "postgis://u@db/social"}, want: &want{host: "db", port: 5432, user: "u", database: "social", tls: "none", maxConns: 10}},
		{name: "DATABASE_URL no host", env: map[string]string{"DATABASE_URL": "postgres:///social", "USER": "me"}, want: &want{host: "localhost", port: 5432, user: "me", database: "social", tls: "none", maxConns: 10}},
		{name: "DATABASE_URL PGHOST PGUSER", env: map[string]string{"DATABASE_URL": "postgres:///social", "PGHOST": "/run/postgresql", "PGUSER": "pu", "USER": "me"}, want: &want{host: "/run/postgresql", port: 5432, user: "pu", database: "social", tls: "none", maxConns: 10}},
		{name: "DATABASE_URL query host", env: map[string]string{"DATABASE_URL": "postgres://u@/social?host=/tmp"}, want: &want{host: "/tmp", port: 5432, user: "u", database: "social", tls: "none", maxConns: 10}},
		{name: "DATABASE_URL sslmode require verifies", env: map[string]string{"DATABASE_URL": "postgres://u@db/social?sslmode=require"}, want: &want{host: "db", port: 5432, user: "u", database: "social", tls: "verify-full", maxConns: 10}},
		{name: "DATABASE_URL sslmode no-verify", env: map[string]string{"DATABASE_URL": "postgres://u@db/social?connect_timeout=5&sslmode=no-verify"}, want: &want{host: "db", port: 5432, user: "u", database: "social", tls: "no-verify", maxConns: 10}},
		{name: "DATABASE_URL sslmode disable", env: map[string]string{"DATABASE_URL": "postgres://u@db/social?sslmode=disable", "PGSSLMODE": "require"}, want: &want{host: "db", port: 5432, user: "u", database: "social", tls: "none", maxConns: 10}},
		{name: "DATABASE_URL PGSSLMODE", env: map[string]string{"DATABASE_URL": "postgres://u@db/social", "PGSSLMODE": "prefer"}, want: &want{host: "db", port: 5432, user: "u", database: "social", tls: "verify-full", maxConns: 10}},
		{name: "DATABASE_URL ssl=true verifies", env: map[string]string{"DATABASE_URL": "postgres://u@db/social?ssl=true"}, want: &want{host: "db", port: 5432, user: "u", database: "social", tls: "verify-full", maxConns: 10}},
		{name: "DATABASE_URL ssl=0", env: map[string]string{"DATABASE_URL": "postgres://u@db/social?ssl=0", "PGSSLMODE": "require"}, want: &want{host: "db", port: 5432, user: "u", database: "social", tls: "none", maxConns: 10}},
		{name: "DATABASE_URL sslmode beats ssl", env: map[string]string{"DATABASE_URL": "postgres://u@db/social?sslmode=no-verify&ssl=true"}, want: &want{host: "db", port: 5432, user: "u", database: "social", tls: "no-verify", maxConns: 10}},
		{name: "DATABASE_URL pool size overridden", env: map[string]string{"DATABASE_URL": "postgres://u@db/social?pool_max_conns=50", "DB_POOL": "7"}, want: &want{host: "db", port: 5432, user: "u", database: "social", tls: "none", maxConns: 7}},
		{name: "DATABASE_URL keyword form", env: map[string]string{"DATABASE_URL": "host=db dbname=social user=u sslmode=disable", "DB_PASS": "dbp"}, want: &want{host: "db", port: 5432, user: "u", password: "dbp", database: "social", tls: "none", maxConns: 10}},
		{name: "DATABASE_URL unparsable", env: map[string]string{"DATABASE_URL": "postgres://u:topsecret@db/social?novalue"}, err: "Invalid DATABASE_URL environment variable", secret: "topsecret"},
		{name: "DATABASE_URL garbage", env: map[string]string{"DATABASE_URL": "not a url"}, err: "Invalid DATABASE_URL environment variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolatePG(t)
			for k, v := range tt.osEnv {
				t.Setenv(k, v)
			}
			cfg, err := PostgresFromEnv(MapEnv(tt.env))
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("err = %v, want prefix %q", err, tt.err)
				}
				if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
					t.Errorf("error leaks a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := cfg.ConnConfig
			got := want{host: c.Host, port: c.Port, database: c.Database, user: c.User, password: c.Password, tls: tlsMode(cfg), maxConns: cfg.MaxConns}
			if got != *tt.want {
				t.Errorf("got  %+v\nwant %+v", got, *tt.want)
			}
			if len(c.Fallbacks) != 0 {
				t.Errorf("unexpected fallbacks %d (sslmode prefer/allow?)", len(c.Fallbacks))
			}
			if v, ok := c.RuntimeParams["application_name"]; !ok || v != "" {
				t.Errorf("application_name = %q, %v; want empty and present", v, ok)
			}
			if c.ConnectTimeout != 15*time.Second {
				t.Errorf("ConnectTimeout = %v", c.ConnectTimeout)
			}
		})
	}
}

func TestParsePGURL(t *testing.T) {
	tests := []struct {
		in                   string
		ok                   bool
		base                 string
		params               []string
		user, password, host bool
		ports                []string
	}{
		{in: "host=db", ok: false},
		{in: "postgres://u:p@h:1/d?a=b&c=d", ok: true, base: "postgres://u:p@h:1/d", params: []string{"a=b", "c=d"}, user: true, password: true, host: true, ports: []string{"1"}},
		{in: "postgresql://h1,h2:2/d", ok: true, base: "postgres://h1,h2:2/d", host: true, ports: []string{"", "2"}},
		{in: "postgis://:p@/d?", ok: true, base: "postgres://:p@/d", password: true, ports: []string{""}},
		{in: "postgres://u:p?x@h/d", ok: true, base: "postgres://u:p?x@h/d", user: true, password: true, host: true, ports: []string{""}},
		{in: "postgres://[::1]:5/d", ok: true, base: "postgres://[::1]:5/d", host: true, ports: []string{"5"}},
		{in: "postgres://h?sslmode=require", ok: true, base: "postgres://h", params: []string{"sslmode=require"}, host: true, ports: []string{""}},
	}
	for _, tt := range tests {
		u, ok := parsePGURL(tt.in)
		if ok != tt.ok {
			t.Errorf("parsePGURL(%q) ok = %v", tt.in, ok)
			continue
		}
		if !ok {
			continue
		}
		if u.base != tt.base || strings.Join(u.params, "&") != strings.Join(tt.params, "&") ||
			u.hasUser != tt.user || u.hasPassword != tt.password || u.hasHost != tt.host ||
			strings.Join(u.ports, ",") != strings.Join(tt.ports, ",") || len(u.ports) != len(tt.ports) {
			t.Errorf("parsePGURL(%q) = %+v", tt.in, u)
		}
	}
}

func TestPercentCoding(t *testing.T) {
	for _, s := range []string{"", "plain", "p&w=%/ +?#'\"\\", "ünïcode", "\x00\xff"} {
		if got := percentDecode(percentEncode(s)); got != s {
			t.Errorf("round trip %q = %q", s, got)
		}
	}
	if got := percentDecode("%zz%4"); got != "%zz%4" {
		t.Errorf("lenient decode = %q", got)
	}
}

func FuzzPostgresDatabaseURL(f *testing.F) {
	for _, s := range []string{
		"postgres://u:pw@db:5433/social",
		"postgresql://u@db/social?sslmode=no-verify&connect_timeout=5",
		"postgres:///social",
		"postgres://u@[::1]:5433/social",
		"postgres://db1:5432,db2:x/social",
		"postgis://u@db:/social?ssl=true",
		"host=db dbname=social user=u",
		"postgres://u:p@db/social?password=&sslmode=",
		"not a url",
		"postgres://%zz@db",
	} {
		f.Add(s, "dbpass")
	}
	isolatePG(f)
	f.Fuzz(func(t *testing.T, url, dbPass string) {
		env := MapEnv(map[string]string{"DATABASE_URL": url, "DB_PASS": dbPass, "NODE_ENV": "production"})
		if u, ok := parsePGURL(url); ok {
			if got := u.adjust(env); !strings.HasPrefix(got, "postgres://") {
				t.Fatalf("adjust(%q) = %q", url, got)
			}
		}
		cfg, err := PostgresFromEnv(env)
		if err != nil {
			if !strings.Contains(err.Error(), "DATABASE_URL") && !strings.Contains(err.Error(), "DB_PASS") {
				t.Fatalf("error %q names neither DATABASE_URL nor DB_PASS", err)
			}
			return
		}
		if cfg.MaxConns != 10 || cfg.ConnConfig.ConnectTimeout != 15*time.Second {
			t.Fatalf("pool settings not applied: %d %v", cfg.MaxConns, cfg.ConnConfig.ConnectTimeout)
		}
	})
}
