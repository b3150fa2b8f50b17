// Package store holds every SQL statement Spillway runs against Mastodon's
// database, so the dependency on Mastodon's schema can be audited in one
// place. Each query reproduces one that Mastodon's Node streaming server runs
// (token lookup, list ownership, feed-access settings, relationship checks,
// keyword filters); the relationship and filter queries are batched over many
// accounts so one status costs one query however many viewers it has.
//
// Callers bound every call with their context. Columns of type
// "timestamp without time zone" hold UTC and are read as UTC.
//
// Every statement is a read-only SELECT, so one that fails because its
// pooled connection was dead (Postgres restarted, an admin or a timeout
// terminated the backend, the socket broke) is run once more on a live
// connection instead of failing the client's request.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spillway/spillway/edge/keyword"
)

// ErrInvalidToken means no usable token row exists: unknown, revoked, owned
// by a disabled user or a suspended account, or an application-only token.
// Mastodon answers 401 "Invalid access token".
var ErrInvalidToken = errors.New("store: invalid access token")

// ErrNullScopes means the token exists but its scopes column is NULL.
// Mastodon's split of the scopes throws there, so it answers 500.
var ErrNullScopes = errors.New("store: token has NULL scopes")

// Identity is what a valid access token grants, fixed for the lifetime of a
// connection (Mastodon does not re-validate; revocation arrives as "kill").
type Identity struct {
	TokenID   int64
	AccountID int64
	// Scopes is oauth_access_tokens.scopes split on single spaces exactly
	// like JavaScript's split(' '): "" gives [""], doubled spaces give
	// empty items.
	Scopes []string
	// ChosenLanguages is users.chosen_languages: nil when NULL (no language
	// filter), a non-nil empty slice for '{}' (every status is dropped).
	// NULL elements, which Rails never writes, are left out.
	ChosenLanguages []string
	// Permissions is the user's role bitmask, 0 without a role.
	Permissions int64
}

// FeedKind selects which feed-access settings apply to a stream.
type FeedKind uint8

const (
	// FeedLive is for the public* streams (local_/remote_live_feed_access).
	FeedLive FeedKind = iota
	// FeedTopic is for the hashtag* streams (local_/remote_topic_feed_access).
	FeedTopic
)

// StatusRef is what the relationship checks need from a status payload.
type StatusRef struct {
	// AuthorID is payload.account.id (for a reblog, the booster).
	AuthorID int64
	// Targets is the author followed by every mentioned account id.
	Targets []int64
	// Domain is the author's domain (the acct text after the first '@' up to
	// the next one); "" for a local author, which skips the domain check.
	Domain string
}

// PoolStat is a snapshot of the connection pool for Mastodon's pg_pool_*
// gauges.
type PoolStat struct {
	// TotalConns counts open connections, idle or checked out
	// (pg_pool_total_connections).
	TotalConns int
	// IdleConns counts open connections not checked out
	// (pg_pool_idle_connections).
	IdleConns int
	// WaitingQueries counts calls of this store currently waiting to check
	// out a connection (pg_pool_waiting_queries). pgxpool keeps no such
	// gauge, so PG counts its own acquisitions; queries that other code runs
	// on the same pool are not included.
	WaitingQueries int
}

// PG runs the queries on a pgx pool. It is safe for concurrent use.
type PG struct {
	pool    *pgxpool.Pool
	observe func(error)
	waiting atomic.Int64
	retries atomic.Uint64
}

// New returns a store over pool. The caller keeps ownership of the pool and
// closes it after the store's last use.
func New(pool *pgxpool.Pool) *PG {
	return NewObserved(pool, nil)
}

// NewObserved is New with observe told what every statement (and Ping)
// learnt about the database: nil when Postgres answered, with rows, without
// or with an error about the statement itself; the error when Postgres could
// not be reached or the connection died even after the retry. Statements
// abandoned because their context ended teach nothing and are not reported.
// observe runs on the caller's goroutine: it must be cheap and safe for
// concurrent use. A nil observe is allowed.
func NewObserved(pool *pgxpool.Pool, observe func(error)) *PG {
	return &PG{pool: pool, observe: observe}
}

// Retries counts statements run a second time because their pooled
// connection was dead.
func (s *PG) Retries() uint64 { return s.retries.Load() }

// Ping checks that Postgres answers, through the same retry as the
// statements, and reports the outcome to the observer; running out of time
// counts as unreachable here, since answering is all a ping asks for.
func (s *PG) Ping(ctx context.Context) error {
	err := s.run(ctx, func(c *pgxpool.Conn) error { return c.Ping(ctx) })
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && s.observe != nil {
		s.observe(err)
	}
	if err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Stat reports the pool's connection counts.
func (s *PG) Stat() PoolStat {
	st := s.pool.Stat()
	return PoolStat{
		TotalConns:     int(st.TotalConns()),
		IdleConns:      int(st.IdleConns()),
		WaitingQueries: int(s.waiting.Load()),
	}
}

// PoolStats is Stat as three numbers (total, idle, waiting), the shape the
// edge's metrics ask for.
func (s *PG) PoolStats() (total, idle, waiting int) {
	st := s.Stat()
	return st.TotalConns, st.IdleConns, st.WaitingQueries
}

// acquire checks out a connection, counting the caller as waiting meanwhile.
func (s *PG) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	s.waiting.Add(1)
	conn, err := s.pool.Acquire(ctx)
	s.waiting.Add(-1)
	if err != nil {
		return nil, fmt.Errorf("acquire connection: %w", err)
	}
	return conn, nil
}

// run runs one statement through fn on a pooled connection. When fn fails
// because that connection was dead, it is dropped and fn runs once more on
// a connection that answers a ping; harmless, as every statement is a
// SELECT. Errors about the statement itself (a cast error, no rows) and a
// context that ended are returned as they are. fn must start from scratch
// each time: it may run twice.
func (s *PG) run(ctx context.Context, fn func(*pgxpool.Conn) error) error {
	conn, err := s.acquire(ctx)
	if err == nil {
		err = fn(conn)
		dead := err != nil && conn.Conn().IsClosed()
		conn.Release()
		if err != nil && ctx.Err() == nil && (dead || connectionLost(err)) {
			s.retries.Add(1)
			if conn, err = s.acquireLive(ctx); err == nil {
				err = fn(conn)
				conn.Release()
			}
		}
	}
	s.report(ctx, err)
	return err
}

// acquireLive checks out a connection that answers a ping. The pool may
// still hold other dead connections (a restart kills them all), which the
// pings weed out so the retry cannot land on one; bounded by the pool size.
func (s *PG) acquireLive(ctx context.Context) (*pgxpool.Conn, error) {
	var err error
	for range s.pool.Stat().MaxConns() + 1 {
		var conn *pgxpool.Conn
		if conn, err = s.acquire(ctx); err != nil {
			return nil, err
		}
		if err = conn.Ping(ctx); err == nil {
			return conn, nil
		}
		closed := conn.Conn().IsClosed()
		conn.Release() // a closed connection is destroyed, not pooled again
		if !closed || ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

// report tells the observer whether Postgres answered.
func (s *PG) report(ctx context.Context, err error) {
	switch {
	case s.observe == nil:
	case err == nil || errors.Is(err, pgx.ErrNoRows):
		s.observe(nil)
	case ctx.Err() != nil:
		// Abandoned: says nothing about the database.
	case unreachable(err):
		s.observe(err)
	default:
		s.observe(nil) // Postgres answered, with an error about the statement
	}
}

// connectionLost reports an error meaning the connection, not the
// statement, failed: the server is shutting down or terminated the backend
// (SQLSTATE 57P0x), a connection exception (class 08), a connection pgconn
// had already closed, or a broken socket.
func connectionLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "57P0") || strings.HasPrefix(pgErr.Code, "08")
	}
	return pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// unreachable reports an error meaning Postgres could not be reached: no
// new connection could be made, or connections kept dying.
func unreachable(err error) bool {
	var connectErr *pgconn.ConnectError
	return errors.As(err, &connectErr) || connectionLost(err)
}

// authenticateSQL is Mastodon's token lookup, unchanged.
const authenticateSQL = `
SELECT oauth_access_tokens.id, oauth_access_tokens.resource_owner_id, users.account_id,
       users.chosen_languages, oauth_access_tokens.scopes,
       COALESCE(user_roles.permissions, 0) AS permissions
FROM oauth_access_tokens
INNER JOIN users ON oauth_access_tokens.resource_owner_id = users.id
INNER JOIN accounts ON accounts.id = users.account_id
LEFT OUTER JOIN user_roles ON user_roles.id = users.role_id
WHERE oauth_access_tokens.token = $1::text
  AND oauth_access_tokens.revoked_at IS NULL
  AND users.disabled IS FALSE
  AND accounts.suspended_at IS NULL
LIMIT 1`

// Authenticate looks up an access token. It returns ErrInvalidToken when no
// row matches and ErrNullScopes when the row has NULL scopes; any other
// error is a database failure (Mastodon answers 500 for both of the latter).
// Token expiry, users.approved and confirmation are not checked, as in
// Mastodon.
func (s *PG) Authenticate(ctx context.Context, token string) (Identity, error) {
	// Node decodes header and query bytes to characters before querying,
	// so Postgres only sees valid UTF-8, and generated tokens are ASCII: an
	// invalid UTF-8 token has no row. Sent raw, it would make Postgres fail
	// with an encoding error instead.
	if !utf8.ValidString(token) {
		return Identity{}, ErrInvalidToken
	}
	var (
		id        Identity
		owner     int64
		languages pgtype.FlatArray[pgtype.Text]
		scopes    pgtype.Text
	)
	err := s.run(ctx, func(conn *pgxpool.Conn) error {
		return conn.QueryRow(ctx, authenticateSQL, token).Scan(&id.TokenID, &owner, &id.AccountID, &languages, &scopes, &id.Permissions)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Identity{}, ErrInvalidToken
	case err != nil:
		return Identity{}, fmt.Errorf("store: authenticate: %w", err)
	case !scopes.Valid:
		return Identity{}, ErrNullScopes
	}
	id.Scopes = strings.Split(scopes.String, " ")
	if languages != nil {
		id.ChosenLanguages = make([]string, 0, len(languages))
		for _, l := range languages {
			if l.Valid {
				id.ChosenLanguages = append(id.ChosenLanguages, l.String)
			}
		}
	}
	return id, nil
}

// ownsListSQL is Mastodon's list ownership check with the id already
// converted to bigint.
const ownsListSQL = `SELECT id, account_id FROM lists WHERE id = $1::bigint AND account_id = $2::bigint LIMIT 1`

// OwnsList reports whether accountID owns the list named by the raw list
// parameter. Mastodon sends the parameter to Postgres as text and any cast
// error becomes "not authorized"; list parses it the way Postgres' bigint
// input does (surrounding whitespace, sign, leading zeros: " +05001 " is
// list 5001), and anything else, including ids beyond int64, is simply not
// owned without a query.
func (s *PG) OwnsList(ctx context.Context, list string, accountID int64) (bool, error) {
	listID, ok := parseBigint(list)
	if !ok {
		return false, nil
	}
	var id, owner int64
	err := s.run(ctx, func(conn *pgxpool.Conn) error {
		return conn.QueryRow(ctx, ownsListSQL, listID, accountID).Scan(&id, &owner)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("store: list ownership: %w", err)
	}
	return true, nil
}

// feedAccessSQL is Mastodon's settings query.
const feedAccessSQL = `SELECT var, value FROM settings WHERE var IN ($1::text, $2::text)`

// feedDisabled is the YAML serialisation of the "disabled" setting; any
// other value, or no row, allows the feed.
const feedDisabled = "--- disabled\n"

// FeedAccess reports which side of a public (FeedLive) or hashtag
// (FeedTopic) stream is disabled for users without the view_feeds
// permission. The caller skips the query for users who have it.
func (s *PG) FeedAccess(ctx context.Context, kind FeedKind) (blockLocal, blockRemote bool, err error) {
	var localVar, remoteVar string
	switch kind {
	case FeedLive:
		localVar, remoteVar = "local_live_feed_access", "remote_live_feed_access"
	case FeedTopic:
		localVar, remoteVar = "local_topic_feed_access", "remote_topic_feed_access"
	default:
		return false, false, fmt.Errorf("store: feed access: unknown feed kind %d", kind)
	}
	var name string
	var value pgtype.Text
	err = s.run(ctx, func(conn *pgxpool.Conn) error {
		blockLocal, blockRemote = false, false
		rows, err := conn.Query(ctx, feedAccessSQL, localVar, remoteVar)
		if err != nil {
			return err
		}
		_, err = pgx.ForEachRow(rows, []any{&name, &value}, func() error {
			disabled := value.Valid && value.String == feedDisabled
			switch name {
			case localVar:
				blockLocal = disabled
			case remoteVar:
				blockRemote = disabled
			}
			return nil
		})
		return err
	})
	if err != nil {
		return false, false, fmt.Errorf("store: feed access: %w", err)
	}
	return blockLocal, blockRemote, nil
}

// excludedSQL is Mastodon's two relationship queries, run for every viewer
// ($1) at once: it returns the viewers who block any target ($3), whom the
// author ($2) blocks, who mute any target, or who block the author's domain
// ($4). A mentioned account blocking the viewer is deliberately not a
// reason, as in Mastodon. Joining unnest($1) rather than "= ANY($1)" keeps
// planning cheap: the planner does not estimate each of a thousand array
// elements, and still picks index probes or a hash join from statistics.
const excludedSQL = `
SELECT b.account_id FROM unnest($1::bigint[]) viewer(id) JOIN blocks b ON b.account_id = viewer.id
 WHERE b.target_account_id = ANY($3::bigint[])
UNION
SELECT b.target_account_id FROM unnest($1::bigint[]) viewer(id) JOIN blocks b ON b.target_account_id = viewer.id
 WHERE b.account_id = $2::bigint
UNION
SELECT m.account_id FROM unnest($1::bigint[]) viewer(id) JOIN mutes m ON m.account_id = viewer.id
 WHERE m.target_account_id = ANY($3::bigint[])
UNION
SELECT d.account_id FROM unnest($1::bigint[]) viewer(id) JOIN account_domain_blocks d ON d.account_id = viewer.id
 WHERE $4::text <> '' AND d.domain = $4::text`

// Excluded returns the viewers who must not receive the status, each mapped
// to true; viewers absent from the map may receive it. Mute expiry and
// hide_notifications are ignored and the domain match is exact and
// case-sensitive, as in Mastodon.
func (s *PG) Excluded(ctx context.Context, viewers []int64, st StatusRef) (map[int64]bool, error) {
	out := make(map[int64]bool)
	if len(viewers) == 0 {
		return out, nil
	}
	targets := st.Targets
	if targets == nil {
		targets = []int64{}
	}
	var viewer int64
	err := s.run(ctx, func(conn *pgxpool.Conn) error {
		clear(out)
		rows, err := conn.Query(ctx, excludedSQL, viewers, st.AuthorID, targets, st.Domain)
		if err != nil {
			return err
		}
		_, err = pgx.ForEachRow(rows, []any{&viewer}, func() error {
			out[viewer] = true
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: relationships: %w", err)
	}
	return out, nil
}

// keywordFiltersSQL is Mastodon's filter query for many accounts. Mastodon
// has no ORDER BY; ascending filter ids reproduce how it iterates its cache
// (JavaScript objects order integer keys ascending), and keyword ids stand
// in for the unspecified row order within a filter. Comparing with UTC "now"
// keeps the expiry check independent of the session time zone.
const keywordFiltersSQL = `
SELECT filter.account_id, filter.id, filter.phrase, filter.context, filter.expires_at,
       filter.action, keyword.keyword, keyword.whole_word
FROM custom_filter_keywords keyword
JOIN custom_filters filter ON keyword.custom_filter_id = filter.id
WHERE filter.account_id = ANY($1::bigint[])
  AND (filter.expires_at IS NULL OR filter.expires_at > (NOW() AT TIME ZONE 'UTC'))
ORDER BY filter.account_id, filter.id, keyword.id`

// Timestamps standing in for Postgres' infinite timestamps: beyond both the
// Postgres and the JavaScript Date range, so an infinite expiry never
// expires and renders as null, like node-postgres' Infinity.
var (
	infiniteFuture = time.Date(294277, time.January, 1, 0, 0, 0, 0, time.UTC)
	infinitePast   = time.Date(-294277, time.January, 1, 0, 0, 0, 0, time.UTC)
)

// KeywordFilters loads the unexpired keyword filters of every given account
// in one query. Accounts without filters are absent from the map. Each
// account's filters are in ascending id order with their keywords in id
// order; Action is "warn" (0), "hide" (1) or "" (anything else, e.g. blur).
func (s *PG) KeywordFilters(ctx context.Context, accountIDs []int64) (map[int64][]keyword.Filter, error) {
	out := make(map[int64][]keyword.Filter)
	if len(accountIDs) == 0 {
		return out, nil
	}
	var (
		account, filterID int64
		title, word       string
		filterContext     pgtype.FlatArray[pgtype.Text]
		expires           pgtype.Timestamp
		action            int32
		wholeWord         bool
	)
	collect := func() error {
		id := strconv.FormatInt(filterID, 10)
		filters := out[account]
		// Rows arrive ordered by filter, so a filter's keywords are adjacent.
		if n := len(filters); n == 0 || filters[n-1].ID != id {
			filters = append(filters, keyword.Filter{
				ID:        id,
				Title:     title,
				Context:   texts(filterContext),
				ExpiresAt: timestamp(expires),
				Action:    filterAction(action),
			})
		}
		last := &filters[len(filters)-1]
		last.Keywords = append(last.Keywords, keyword.Keyword{Keyword: word, WholeWord: wholeWord})
		out[account] = filters
		return nil
	}
	err := s.run(ctx, func(conn *pgxpool.Conn) error {
		clear(out)
		rows, err := conn.Query(ctx, keywordFiltersSQL, accountIDs)
		if err != nil {
			return err
		}
		_, err = pgx.ForEachRow(rows, []any{&account, &filterID, &title, &filterContext, &expires, &action, &word, &wholeWord}, collect)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: keyword filters: %w", err)
	}
	return out, nil
}

func filterAction(action int32) string {
	switch action {
	case 0:
		return "warn"
	case 1:
		return "hide"
	}
	return ""
}

// texts converts a varchar[] to strings; never nil, so an empty context
// stays an empty JSON array. NULL elements (never written by Rails) are
// left out.
func texts(a pgtype.FlatArray[pgtype.Text]) []string {
	out := make([]string, 0, len(a))
	for _, t := range a {
		if t.Valid {
			out = append(out, t.String)
		}
	}
	return out
}

// timestamp converts a UTC "timestamp without time zone"; nil for NULL.
func timestamp(ts pgtype.Timestamp) *time.Time {
	if !ts.Valid {
		return nil
	}
	var t time.Time
	switch ts.InfinityModifier {
	case pgtype.Infinity:
		t = infiniteFuture
	case pgtype.NegativeInfinity:
		t = infinitePast
	default:
		t = time.Date(ts.Time.Year(), ts.Time.Month(), ts.Time.Day(),
			ts.Time.Hour(), ts.Time.Minute(), ts.Time.Second(), ts.Time.Nanosecond(), time.UTC)
	}
	return &t
}
