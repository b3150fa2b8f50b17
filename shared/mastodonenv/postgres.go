package mastodonenv

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pool settings fixed by streaming/database.js.
const (
	defaultDBPool  = 10
	defaultDBPort  = 5432
	connectTimeout = 15 * time.Second
)

// PostgresFromEnv builds the connection pool configuration the way
// streaming/database.js does (without connecting):
//
//   - DB_PORT (5432) is validated first and always, even when DATABASE_URL
//     makes it irrelevant, because Node builds both default configurations
//     before looking at DATABASE_URL.
//   - DATABASE_URL, if non-empty, wins. Its password, else DB_PASS, else
//     PGPASSWORD is used. A non-numeric port is "Invalid port specified in
//     DATABASE_URL environment variable"; an empty one means the default.
//   - Else NODE_ENV development (DB_NAME mastodon_development, DB_USER
//     $USER) or production (mastodon_production, user mastodon), DB_HOST
//     localhost, DB_PASS, DB_SSLMODE. Any other NODE_ENV is "Unable to
//     resolve postgresql database configuration.".
//   - DB_POOL (10) becomes MaxConns; the connect timeout is 15 s and
//     application_name is sent empty (Mastodon does this for PgBouncer).
//
// TLS follows node-postgres, not libpq, because a replacement must not
// verify less than Mastodon did: DB_SSLMODE "disable" means no TLS,
// "no-verify" TLS without certificate checks (pgx "require"), and any other
// non-empty value TLS with full verification (pgx "verify-full"), even
// "prefer" or "require". In DATABASE_URL, sslmode prefer/require/verify-ca
// become verify-full, no-verify becomes require, and ssl=true/1 (ssl=0/false)
// means verify-full (disable) unless an sslmode is also given. When neither
// says anything, PGSSLMODE is read from env the node-postgres way (default:
// no TLS, where pgx's own default would be "prefer").
//
// The libpq variables node-postgres falls back to (PGHOST, PGUSER,
// PGPASSWORD, PGSSLMODE) are read from env, so values from a .env file count
// as they do in Node. pgx itself additionally reads PG* variables (PGPORT,
// PGDATABASE, PGSSLROOTCERT, PGOPTIONS, PGSERVICE, ...) and ~/.pgpass from
// the real process environment for anything the connection string leaves
// out; that cannot be switched off and is accepted.
//
// As an extension, DATABASE_URL may also be a libpq keyword/value string
// ("host=db dbname=mastodon"), which pgx understands and Node does not; it
// is then used as pgx reads it, with only the DB_PASS fallback applied.
func PostgresFromEnv(env Env) (*pgxpool.Config, error) {
	environment := NodeEnv(env)
	port, err := intFromEnv(env, "DB_PORT", defaultDBPort, 1, 65535)
	if err != nil {
		return nil, err
	}

	var cfg *pgxpool.Config
	switch {
	case env.Get("DATABASE_URL") != "":
		cfg, err = postgresFromURL(env, env.Get("DATABASE_URL"))
	case environment == Development || environment == Production:
		cfg, err = postgresFromParts(env, environment, port)
	default:
		return nil, upstreamErrorf("Unable to resolve postgresql database configuration. (NODE_ENV=%q without DATABASE_URL; only %q and %q have defaults)", environment, Development, Production)
	}
	if err != nil {
		return nil, err
	}

	pool, err := intFromEnv(env, "DB_POOL", defaultDBPool, 1, math.MaxInt32)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(pool)
	cfg.ConnConfig.ConnectTimeout = connectTimeout
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = make(map[string]string)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = ""
	return cfg, nil
}

// postgresFromParts builds the NODE_ENV development/production configuration.
func postgresFromParts(env Env, environment string, port int64) (*pgxpool.Config, error) {
	user, database := env.Get("DB_USER"), env.Get("DB_NAME")
	if environment == Production {
		user = firstNonEmpty(user, "mastodon")
		database = firstNonEmpty(database, "mastodon_production")
	} else {
		// pg.defaults.user is $USER; node-postgres then falls back to PGUSER.
		user = firstNonEmpty(user, env.Get("USER"), env.Get("PGUSER"))
		database = firstNonEmpty(database, "mastodon_development")
	}
	sslmode := ""
	if v := env.Get("DB_SSLMODE"); v != "" {
		sslmode = dbSSLMode(v)
	} else {
		sslmode = pgSSLModeFromEnv(env.Get("PGSSLMODE"))
	}

	var dsn strings.Builder
	kv := func(k, v string) {
		if v == "" {
			return
		}
		if dsn.Len() > 0 {
			dsn.WriteByte(' ')
		}
		dsn.WriteString(k)
		dsn.WriteByte('=')
		dsn.WriteString(quoteDSNValue(v))
	}
	kv("host", firstNonEmpty(env.Get("DB_HOST"), "localhost"))
	kv("port", strconv.FormatInt(port, 10))
	kv("dbname", database)
	kv("user", user)
	kv("password", firstNonEmpty(env.Get("DB_PASS"), env.Get("PGPASSWORD")))
	kv("sslmode", sslmode)

	cfg, err := pgxpool.ParseConfig(dsn.String())
	if err != nil {
		return nil, upstreamErrorf("Invalid PostgreSQL configuration from DB_HOST/DB_PORT/DB_USER/DB_PASS/DB_NAME/DB_SSLMODE (or PG* variables): %w", redactParseError(err, "DB_* settings"))
	}
	return cfg, nil
}

// postgresFromURL parses DATABASE_URL after adjusting it to node-postgres
// semantics (see PostgresFromEnv).
func postgresFromURL(env Env, raw string) (*pgxpool.Config, error) {
	connString := raw
	u, isURL := parsePGURL(raw)
	if isURL {
		for _, p := range u.ports {
			if _, ok := parseJSInt(p); p != "" && !ok {
				return nil, upstreamErrorf("Invalid port specified in DATABASE_URL environment variable")
			}
		}
		connString = u.adjust(env)
	}
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, upstreamErrorf("Invalid DATABASE_URL environment variable: %w", redactParseError(err, "DATABASE_URL"))
	}
	if !isURL && cfg.ConnConfig.Password == "" {
		cfg.ConnConfig.Password = env.Get("DB_PASS")
	}
	return cfg, nil
}

// dbSSLMode maps a non-empty DB_SSLMODE the way streaming/database.js does.
func dbSSLMode(v string) string {
	switch v {
	case "disable":
		return "disable"
	case "no-verify":
		return "require"
	default:
		return "verify-full"
	}
}

// pgSSLModeFromEnv maps PGSSLMODE like node-postgres'
// readSSLConfigFromEnvironment: unknown or empty means no TLS.
func pgSSLModeFromEnv(v string) string {
	switch v {
	case "prefer", "require", "verify-ca", "verify-full":
		return "verify-full"
	case "no-verify":
		return "require"
	default:
		return "disable"
	}
}

// urlSSLMode maps an sslmode from DATABASE_URL like pg-connection-string:
// every TLS mode verifies, "no-verify" does not. Other values are left for
// pgx to accept ("allow") or reject.
func urlSSLMode(v string) string {
	switch v {
	case "prefer", "require", "verify-ca":
		return "verify-full"
	case "no-verify":
		return "require"
	default:
		return v
	}
}

// firstNonEmpty returns the first non-empty value (like JavaScript's
// a || b).
func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// quoteDSNValue quotes v for a libpq keyword/value connection string.
func quoteDSNValue(v string) string {
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(v); i++ {
		if v[i] == '\'' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('\'')
	return b.String()
}

// redactParseError removes the connection string from a pgx parse error:
// pgx masks passwords only on a best-effort basis.
func redactParseError(err error, name string) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		pe.ConnString = name
	}
	return err
}

// pgURL is a postgres:// URL split just enough to apply node-postgres'
// fallbacks without re-encoding the parts pgx should see unchanged. The
// split follows pgx's (libpq's) URI parser.
type pgURL struct {
	base        string   // everything before the query, scheme normalised
	params      []string // raw "key=value" query segments, in order
	hasUser     bool
	hasPassword bool
	hasHost     bool
	ports       []string // raw port of each host in the netloc list
}

// parsePGURL splits s if it is a URL (any scheme, as pg-connection-string
// accepts e.g. postgis://); ok is false for keyword/value strings.
func parsePGURL(s string) (u pgURL, ok bool) {
	scheme, rest, found := strings.Cut(s, "://")
	if !found || !isURLScheme(scheme) {
		return pgURL{}, false
	}
	p := rest
	if i := strings.IndexAny(p, "@/"); i >= 0 && p[i] == '@' {
		user, password, hasPassword := strings.Cut(p[:i], ":")
		u.hasUser = user != ""
		u.hasPassword = hasPassword && password != ""
		p = p[i+1:]
	}
	for {
		if strings.HasPrefix(p, "[") {
			end := strings.IndexByte(p, ']')
			if end < 0 {
				break // malformed; pgx reports it
			}
			u.hasHost = u.hasHost || end > 1
			p = p[end+1:]
		} else {
			i := strings.IndexAny(p, ":/?,")
			if i < 0 {
				i = len(p)
			}
			u.hasHost = u.hasHost || i > 0
			p = p[i:]
		}
		port := ""
		if strings.HasPrefix(p, ":") {
			p = p[1:]
			i := strings.IndexAny(p, "/?,")
			if i < 0 {
				i = len(p)
			}
			port, p = p[:i], p[i:]
		}
		u.ports = append(u.ports, port)
		if !strings.HasPrefix(p, ",") {
			break
		}
		p = p[1:]
	}
	u.base = "postgres://" + rest
	if i := strings.IndexByte(p, '?'); i >= 0 {
		qi := len(rest) - len(p) + i
		u.base = "postgres://" + rest[:qi]
		if query := rest[qi+1:]; query != "" {
			u.params = strings.Split(query, "&")
		}
	}
	return u, true
}

// isURLScheme reports whether s is an RFC 3986 scheme.
func isURLScheme(s string) bool {
	if s == "" || !isASCIILetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isASCIILetter(c) && (c < '0' || c > '9') && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// adjust returns the URL with node-postgres semantics applied: sslmode
// mapped (or taken from PGSSLMODE, default disable), and host, user and
// password taken from PGHOST (default localhost), PGUSER/$USER and
// DB_PASS/PGPASSWORD when the URL has none.
func (u pgURL) adjust(env Env) string {
	hasSSLMode := false
	for _, seg := range u.params {
		rawKey, _, _ := strings.Cut(seg, "=")
		hasSSLMode = hasSSLMode || percentDecode(rawKey) == "sslmode"
	}
	params := make([]string, 0, len(u.params)+4)
	var hasSSL, hasHost, hasUser, hasPassword bool
	for _, seg := range u.params {
		rawKey, rawValue, _ := strings.Cut(seg, "=")
		value := percentDecode(rawValue)
		switch percentDecode(rawKey) {
		case "sslmode":
			if m := urlSSLMode(value); m != value {
				seg = rawKey + "=" + m
			}
		case "ssl":
			// pg-connection-string: ssl=true/1 is TLS with verification,
			// ssl=0 none, and any sslmode overrides it. pgx would read
			// ssl=true as sslmode=require and pass other values to the
			// server as a run-time parameter.
			if hasSSLMode {
				continue
			}
			switch value {
			case "true", "1":
				seg, hasSSL = "sslmode=verify-full", true
			case "0", "false":
				seg, hasSSL = "sslmode=disable", true
			}
		case "host":
			hasHost = hasHost || rawValue != ""
		case "user":
			hasUser = hasUser || rawValue != ""
		case "password":
			hasPassword = hasPassword || rawValue != ""
		}
		params = append(params, seg)
	}
	add := func(k, v string) {
		if v != "" {
			params = append(params, k+"="+percentEncode(v))
		}
	}
	if !hasSSLMode && !hasSSL {
		add("sslmode", pgSSLModeFromEnv(env.Get("PGSSLMODE")))
	}
	if !u.hasHost && !hasHost {
		add("host", firstNonEmpty(env.Get("PGHOST"), "localhost"))
	}
	if !u.hasUser && !hasUser {
		add("user", firstNonEmpty(env.Get("PGUSER"), env.Get("USER")))
	}
	if !u.hasPassword && !hasPassword {
		add("password", firstNonEmpty(env.Get("DB_PASS"), env.Get("PGPASSWORD")))
	}
	if len(params) == 0 {
		return u.base
	}
	return u.base + "?" + strings.Join(params, "&")
}

// percentDecode decodes %XX escapes leniently (invalid ones stay as is).
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// percentEncode escapes everything but RFC 3986 unreserved characters, the
// only encoding libpq's URI decoder needs ('+' is not a space there).
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isASCIILetter(c) || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f'
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return (c | 0x20) - 'a' + 10
}
