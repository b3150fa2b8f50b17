package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spillway/spillway/edge/store"
	"github.com/spillway/spillway/shared/testenv"
)

// deadPoolSize is how many pooled connections the dead-connection tests
// open and have Postgres terminate.
const deadPoolSize = 3

// newDeadablePool opens a pool of deadPoolSize connections on a fresh
// schema. pgxpool pings a connection only when it has been idle for more
// than a second; ShouldPing is turned off so every test sees what a busy
// edge sees: connections used a moment ago, handed out without a ping.
func newDeadablePool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = deadPoolSize
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// killPooled opens every connection of pool, then has Postgres terminate
// them from another connection (pg_terminate_backend, as an admin or a
// restart does), and waits until they are gone server-side. The pool still
// holds them as idle.
func killPooled(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := t.Context()
	conns := make([]*pgxpool.Conn, 0, deadPoolSize)
	pids := make([]uint32, 0, deadPoolSize)
	for range deadPoolSize {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		pids = append(pids, c.Conn().PgConn().PID())
	}
	for _, c := range conns {
		c.Release()
	}
	admin, err := pgx.Connect(ctx, pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", pids); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%d of the terminated backends still listed", n)
		}
		return nil
	})
	if idle := pool.Stat().IdleConns(); idle != deadPoolSize {
		t.Fatalf("pool holds %d idle connections, want its %d dead ones", idle, deadPoolSize)
	}
}

// Every statement is a read-only SELECT, so one that failed because its
// pooled connection was dead is run again on another: after Postgres
// terminated every pooled connection, each query answers as if nothing
// happened, however many dead connections the pool still held.
func TestDeadPooledConnectionsAreRetried(t *testing.T) {
	t.Parallel()
	ops := []struct {
		name string
		run  func(ctx context.Context, s *store.PG) error
	}{
		{"authenticate", func(ctx context.Context, s *store.PG) error {
			id, err := s.Authenticate(ctx, testenv.AliceReadToken)
			if err == nil && id.AccountID != testenv.Alice {
				err = fmt.Errorf("account %d, want %d", id.AccountID, testenv.Alice)
			}
			return err
		}},
		{"unknown token", func(ctx context.Context, s *store.PG) error {
			if _, err := s.Authenticate(ctx, "no-such-token"); !errors.Is(err, store.ErrInvalidToken) {
				return fmt.Errorf("err = %v, want ErrInvalidToken", err)
			}
			return nil
		}},
		{"list ownership", func(ctx context.Context, s *store.PG) error {
			owns, err := s.OwnsList(ctx, "5001", testenv.Alice)
			if err == nil && !owns {
				err = errors.New("alice does not own list 5001")
			}
			return err
		}},
		{"feed access", func(ctx context.Context, s *store.PG) error {
			_, _, err := s.FeedAccess(ctx, store.FeedLive)
			return err
		}},
		{"relationships", func(ctx context.Context, s *store.PG) error {
			_, err := s.Excluded(ctx, []int64{testenv.Alice, testenv.Bob}, store.StatusRef{AuthorID: testenv.Mallory, Targets: []int64{testenv.Mallory}})
			return err
		}},
		{"keyword filters", func(ctx context.Context, s *store.PG) error {
			_, err := s.KeywordFilters(ctx, []int64{testenv.Alice, testenv.Judy})
			return err
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			t.Parallel()
			pool := newDeadablePool(t)
			s := store.New(pool)
			killPooled(t, pool)
			for i := range deadPoolSize + 1 {
				if err := op.run(t.Context(), s); err != nil {
					t.Fatalf("call %d after the pool's connections were terminated: %v", i+1, err)
				}
			}
			// The retry weeded out every dead connection at once.
			if n := s.Retries(); n != 1 {
				t.Errorf("Retries() = %d, want 1", n)
			}
		})
	}
}

// observed records what a store reports to its observer.
type observed struct {
	mu   sync.Mutex
	errs []error
}

func (o *observed) observe(err error) {
	o.mu.Lock()
	o.errs = append(o.errs, err)
	o.mu.Unlock()
}

func (o *observed) take() []error {
	o.mu.Lock()
	defer o.mu.Unlock()
	errs := o.errs
	o.errs = nil
	return errs
}

// Errors about the statement itself are answers: never retried, and
// reported as Postgres answering. A call whose context ended is neither
// retried nor reported, even on a dead connection.
func TestNoRetryWithoutDeadConnection(t *testing.T) {
	t.Parallel()
	pool := newDeadablePool(t)
	var obs observed
	s := store.NewObserved(pool, obs.observe)
	ctx := t.Context()

	// Postgres refuses NUL in text: Mastodon answers 500, so must we.
	if _, err := s.Authenticate(ctx, "alice\x00"); err == nil || errors.Is(err, store.ErrInvalidToken) {
		t.Fatalf("NUL token: err = %v, want the database's error", err)
	}
	if _, err := s.Authenticate(ctx, "no-such-token"); !errors.Is(err, store.ErrInvalidToken) {
		t.Fatalf("unknown token: err = %v", err)
	}
	if got := obs.take(); len(got) != 2 || got[0] != nil || got[1] != nil {
		t.Errorf("observed %v, want Postgres answering twice", got)
	}
	if n := s.Retries(); n != 0 {
		t.Errorf("Retries() = %d after statement errors, want 0", n)
	}

	killPooled(t, pool)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Authenticate(cancelled, testenv.AliceReadToken); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
	if n := s.Retries(); n != 0 {
		t.Errorf("Retries() = %d with a cancelled context, want 0", n)
	}
	if got := obs.take(); len(got) != 0 {
		t.Errorf("observed %v for an abandoned call, want nothing", got)
	}
	// A retry that worked is Postgres answering.
	if _, err := s.Authenticate(ctx, testenv.AliceReadToken); err != nil {
		t.Fatal(err)
	}
	if got := obs.take(); len(got) != 1 || got[0] != nil {
		t.Errorf("observed %v after a successful retry, want one nil", got)
	}
}

// A Postgres nobody listens for is reported unreachable, by statements and
// by Ping, and nothing is retried: a new connection failing is not a dead
// pooled one.
func TestUnreachableIsObserved(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	pool, err := pgxpool.New(t.Context(), "postgres://postgres@"+addr+"/postgres?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var obs observed
	s := store.NewObserved(pool, obs.observe)
	if _, err := s.Authenticate(t.Context(), testenv.AliceReadToken); err == nil {
		t.Fatal("authenticated against nothing")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err == nil {
		t.Fatal("ping answered by nothing")
	}
	got := obs.take()
	if len(got) != 2 || got[0] == nil || got[1] == nil {
		t.Errorf("observed %v, want two errors", got)
	}
	if n := s.Retries(); n != 0 {
		t.Errorf("Retries() = %d, want 0", n)
	}
}

// Ping goes through the retry too, and reports Postgres answering.
func TestPingAfterDeadConnections(t *testing.T) {
	t.Parallel()
	pool := newDeadablePool(t)
	var obs observed
	s := store.NewObserved(pool, obs.observe)
	killPooled(t, pool)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := obs.take(); len(got) != 1 || got[0] != nil {
		t.Errorf("observed %v, want one nil", got)
	}
	if n := s.Retries(); n != 1 {
		t.Errorf("Retries() = %d, want 1", n)
	}
}
