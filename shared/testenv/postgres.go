package testenv

import (
	"context"
	_ "embed"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultPostgresURL is used when STREAMING_TEST_DATABASE_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// schemaSQL is the Mastodon schema subset; fixturesSQL its test rows. Both are
// plain statements without BEGIN/COMMIT: they are applied in one transaction
// with search_path pointing at the per-test schema.
var (
	//go:embed testdata/schema.sql
	schemaSQL string
	//go:embed testdata/fixtures.sql
	fixturesSQL string
)

// pgSetupTimeout bounds loading the schema and fixtures, and dropping them.
const pgSetupTimeout = 30 * time.Second

// Postgres creates a fresh, uniquely named schema in the database at
// STREAMING_TEST_DATABASE_URL, loads the Mastodon schema subset and the
// fixtures into it, and returns a pool whose connections use that schema
// (search_path) and the UTC time zone. When the test ends the pool is closed
// and the schema dropped.
func Postgres(t testing.TB) *pgxpool.Pool {
	t.Helper()
	raw, schema := newSchema(t)
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		t.Fatalf("testenv: STREAMING_TEST_DATABASE_URL: %v", err)
	}
	setSession(cfg.ConnConfig.RuntimeParams, schema)
	ctx, cancel := context.WithTimeout(context.Background(), pgSetupTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("testenv: postgres pool: %v", err)
	}
	// Registered after the schema's DROP, so it runs before it.
	t.Cleanup(pool.Close)
	return pool
}

// PostgresURL is Postgres for tests that configure a server through
// DATABASE_URL: it returns a connection URL whose search_path and timezone
// query parameters (which pgx sends as run-time parameters) select the fresh
// schema and UTC. The schema is dropped when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	raw, schema := newSchema(t)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// Keyword/value connection string.
		return raw + " search_path=" + schema + " timezone=UTC"
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("timezone", "UTC")
	u.RawQuery = q.Encode()
	return u.String()
}

func setSession(params map[string]string, schema string) {
	params["search_path"] = schema
	params["timezone"] = "UTC"
}

// newSchema creates and loads a schema named "t_<random hex>" and registers
// its removal. It returns the base connection string and the schema name.
func newSchema(t testing.TB) (raw, schema string) {
	t.Helper()
	raw = envOr("STREAMING_TEST_DATABASE_URL", DefaultPostgresURL)
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		t.Fatalf("testenv: STREAMING_TEST_DATABASE_URL: %v", err)
	}
	cfg.ConnectTimeout = probeTimeout
	probeCtx, cancelProbe := context.WithTimeout(context.Background(), probeTimeout)
	conn, err := pgx.ConnectConfig(probeCtx, cfg)
	cancelProbe()
	if err != nil {
		unavailable(t, "postgres", redact(raw), "STREAMING_TEST_DATABASE_URL", err)
		return "", ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), pgSetupTimeout)
	defer cancel()
	defer conn.Close(ctx)

	schema = "t_" + randomHex(t, 8)
	ident := pgx.Identifier{schema}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+ident); err != nil {
		t.Fatalf("testenv: create schema: %v", err)
	}
	t.Cleanup(func() { dropSchema(t, cfg, ident) })

	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Exec without arguments uses the simple protocol, which accepts
		// many statements at once.
		setup := "SET LOCAL search_path TO " + ident + "; SET LOCAL timezone TO 'UTC';"
		for _, step := range []struct{ name, sql string }{
			{"session", setup}, {"schema.sql", schemaSQL}, {"fixtures.sql", fixturesSQL},
		} {
			if _, err := tx.Exec(ctx, step.sql); err != nil {
				return fmt.Errorf("%s: %w", step.name, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testenv: loading test schema: %v", err)
	}
	return raw, schema
}

func dropSchema(t testing.TB, cfg *pgx.ConnConfig, ident string) {
	// t.Context is already cancelled while cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), pgSetupTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Errorf("testenv: drop schema %s: %v", ident, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+ident+" CASCADE"); err != nil {
		t.Errorf("testenv: drop schema %s: %v", ident, err)
	}
}

// SchemaSQL returns the project's test schema (Mastodon's tables and columns
// the server reads), for tests that prepare a database of their own.
func SchemaSQL() string { return schemaSQL }
