package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/spillway/spillway/shared/testenv"
)

func TestPostgresIsolatedSchemas(t *testing.T) {
	t.Parallel()
	a := testenv.Postgres(t)
	b := testenv.Postgres(t)
	ctx := t.Context()

	schemaOf := func(p *pgxpool.Pool) string {
		var s string
		if err := p.QueryRow(ctx, "SELECT current_schema()").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	sa, sb := schemaOf(a), schemaOf(b)
	if sa == sb || !strings.HasPrefix(sa, "t_") || !strings.HasPrefix(sb, "t_") {
		t.Fatalf("schemas not isolated: %q %q", sa, sb)
	}

	// A change in one schema is invisible in the other.
	if _, err := a.Exec(ctx, "DELETE FROM oauth_access_tokens"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pool *pgxpool.Pool
		want int
	}{
		{"modified", a, 0},
		{"untouched", b, len(testenv.Tokens())},
	} {
		var n int
		if err := tc.pool.QueryRow(ctx, "SELECT count(*) FROM oauth_access_tokens").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != tc.want {
			t.Errorf("%s: %d tokens, want %d", tc.name, n, tc.want)
		}
	}
}

func TestPostgresFixtures(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := t.Context()

	var tz string
	if err := pool.QueryRow(ctx, "SHOW timezone").Scan(&tz); err != nil {
		t.Fatal(err)
	}
	if tz != "UTC" {
		t.Errorf("timezone = %q, want UTC", tz)
	}

	for _, tok := range testenv.Tokens() {
		var id int64
		var owner *int64
		var scopes *string
		err := pool.QueryRow(ctx, `SELECT t.id, u.account_id, t.scopes FROM oauth_access_tokens t
			LEFT JOIN users u ON u.id = t.resource_owner_id WHERE t.token = $1`, tok.Token).Scan(&id, &owner, &scopes)
		if err != nil {
			t.Fatalf("%s: %v", tok.Token, err)
		}
		var gotOwner int64
		if owner != nil {
			gotOwner = *owner
		}
		gotScopes := ""
		if scopes != nil {
			gotScopes = *scopes
		}
		if id != tok.ID || gotOwner != tok.AccountID || gotScopes != tok.Scopes {
			t.Errorf("%s: got id %d owner %d scopes %q, want %+v", tok.Token, id, gotOwner, gotScopes, tok)
		}
	}

	var created time.Time
	if err := pool.QueryRow(ctx, "SELECT created_at FROM accounts WHERE id = $1", testenv.Alice).Scan(&created); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC); !created.Equal(want) {
		t.Errorf("alice created_at = %v, want %v", created, want)
	}

	// Sequences are ahead of the explicit ids, so tests can insert rows.
	var listID int64
	if err := pool.QueryRow(ctx, `INSERT INTO lists (account_id, title, created_at, updated_at)
		VALUES ($1, 'new', now(), now()) RETURNING id`, testenv.Alice).Scan(&listID); err != nil {
		t.Fatal(err)
	}
	if listID <= testenv.BobList {
		t.Errorf("new list id %d collides with fixtures", listID)
	}
}

func TestPostgresURL(t *testing.T) {
	t.Parallel()
	u := testenv.PostgresURL(t)
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var schema, tz string
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT current_schema(), current_setting('timezone'), (SELECT count(*) FROM lists)").Scan(&schema, &tz, &n); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(schema, "t_") || tz != "UTC" || n != 2 {
		t.Errorf("got schema %q tz %q lists %d", schema, tz, n)
	}
}

func TestPostgresSchemaDropped(t *testing.T) {
	t.Parallel()
	var schema string
	t.Run("inner", func(t *testing.T) {
		pool := testenv.Postgres(t)
		if err := pool.QueryRow(t.Context(), "SELECT current_schema()").Scan(&schema); err != nil {
			t.Fatal(err)
		}
	})
	pool := testenv.Postgres(t)
	var exists bool
	if err := pool.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("schema %s survived its test", schema)
	}
}

func TestRedisNamespaceCleanup(t *testing.T) {
	t.Parallel()
	outer, _ := testenv.Redis(t)
	var ns string
	t.Run("inner", func(t *testing.T) {
		rdb, n := testenv.Redis(t)
		ns = n
		ctx := t.Context()
		for i := range 1200 { // more than one SCAN page and one DEL batch
			if err := rdb.Set(ctx, fmt.Sprintf("%s:key:%d", ns, i), "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if !strings.HasPrefix(ns, "spillwaytest") {
		t.Fatalf("namespace %q", ns)
	}
	n, err := outer.Exists(t.Context(), ns+":key:0", ns+":key:1199").Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d keys survived the namespace cleanup", n)
	}
}

func TestRedisNamespacesDiffer(t *testing.T) {
	t.Parallel()
	_, a := testenv.Redis(t)
	_, b := testenv.Redis(t)
	if a == b {
		t.Fatalf("same namespace %q twice", a)
	}
	if testenv.RedisURL(t) == "" {
		t.Fatal("empty Redis URL")
	}
}

func TestNATS(t *testing.T) {
	t.Parallel()
	_, nc := testenv.NATS(t)
	checkEcho(t, nc)
}

func TestNATSServer(t *testing.T) {
	t.Parallel()
	url := testenv.NATSServer(t)
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("url %q", url)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	checkEcho(t, nc)
}

func checkEcho(t *testing.T, nc *nats.Conn) {
	t.Helper()
	sub, err := nc.SubscribeSync("echo")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("echo", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Data) != "hi" {
		t.Fatalf("got %q", msg.Data)
	}
}

func TestEventuallySucceeds(t *testing.T) {
	t.Parallel()
	calls := 0
	testenv.Eventually(t, time.Minute, func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Errorf("calls = %d, want 3", calls)
	}
}

// fatalRecorder captures Fatalf instead of failing the real test.
type fatalRecorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func TestEventuallyFailsWithLastError(t *testing.T) {
	t.Parallel()
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		n := 0
		testenv.Eventually(rec, 0, func() error {
			n++
			return fmt.Errorf("attempt %d", n)
		})
	}()
	<-done
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if !strings.Contains(rec.msg, "attempt 1") {
		t.Errorf("Fatalf message %q does not carry the last error", rec.msg)
	}
}
