package store_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spillway/spillway/edge/keyword"
	"github.com/spillway/spillway/edge/store"
	"github.com/spillway/spillway/shared/testenv"
)

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	s := store.New(testenv.Postgres(t))
	tests := []struct {
		name    string
		token   string
		want    store.Identity
		wantErr error
	}{
		{name: "read write follow push", token: "alice-read-token",
			want: store.Identity{TokenID: 1, AccountID: testenv.Alice, Scopes: []string{"read", "write", "follow", "push"}}},
		{name: "read:statuses", token: "alice-statuses-token",
			want: store.Identity{TokenID: 2, AccountID: testenv.Alice, Scopes: []string{"read:statuses"}}},
		{name: "read:notifications", token: "alice-notifications-token",
			want: store.Identity{TokenID: 3, AccountID: testenv.Alice, Scopes: []string{"read:notifications"}}},
		{name: "write only still authenticates", token: "alice-write-token",
			want: store.Identity{TokenID: 4, AccountID: testenv.Alice, Scopes: []string{"write"}}},
		{name: "profile only still authenticates", token: "alice-profile-token",
			want: store.Identity{TokenID: 12, AccountID: testenv.Alice, Scopes: []string{"profile"}}},
		{name: "chosen languages", token: "bob-read-token",
			want: store.Identity{TokenID: 6, AccountID: testenv.Bob, Scopes: []string{"read"}, ChosenLanguages: []string{"en"}}},
		{name: "empty chosen languages", token: "judy-read-token",
			want: store.Identity{TokenID: 13, AccountID: testenv.Judy, Scopes: []string{"read"}, ChosenLanguages: []string{}}},
		{name: "carol", token: "carol-read-token",
			want: store.Identity{TokenID: 7, AccountID: testenv.Carol, Scopes: []string{"read"}}},
		{name: "mallory", token: "mallory-read-token",
			want: store.Identity{TokenID: 10, AccountID: testenv.Mallory, Scopes: []string{"read"}}},
		{name: "view_feeds role", token: "heidi-read-token",
			want: store.Identity{TokenID: 11, AccountID: testenv.Heidi, Scopes: []string{"read"}, Permissions: 1 << 20}},
		{name: "admin role without view_feeds", token: "ken-read-token",
			want: store.Identity{TokenID: 16, AccountID: testenv.Ken, Scopes: []string{"read"}, Permissions: 1}},
		{name: "split on single spaces", token: "alice-spaced-token",
			want: store.Identity{TokenID: 17, AccountID: testenv.Alice, Scopes: []string{"read:statuses", "", "write", ""}}},
		{name: "expiry not checked", token: "alice-expired-token",
			want: store.Identity{TokenID: 18, AccountID: testenv.Alice, Scopes: []string{"read"}}},
		{name: "revoked", token: "alice-revoked-token", wantErr: store.ErrInvalidToken},
		{name: "disabled user", token: "frank-read-token", wantErr: store.ErrInvalidToken},
		{name: "suspended account", token: "grace-read-token", wantErr: store.ErrInvalidToken},
		{name: "application only", token: "app-only-token", wantErr: store.ErrInvalidToken},
		{name: "unknown", token: "no-such-token", wantErr: store.ErrInvalidToken},
		{name: "empty", token: "", wantErr: store.ErrInvalidToken},
		{name: "case sensitive", token: "ALICE-READ-TOKEN", wantErr: store.ErrInvalidToken},
		{name: "bearer prefix kept", token: "Bearer alice-read-token", wantErr: store.ErrInvalidToken},
		{name: "invalid utf-8", token: "alice-read-token\xff", wantErr: store.ErrInvalidToken},
		{name: "null scopes", token: "alice-nullscopes-token", wantErr: store.ErrNullScopes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.Authenticate(t.Context(), tc.token)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			// nil versus empty languages are different rules.
			if (got.ChosenLanguages == nil) != (tc.want.ChosenLanguages == nil) {
				t.Errorf("ChosenLanguages nil = %v, want %v", got.ChosenLanguages == nil, tc.want.ChosenLanguages == nil)
			}
		})
	}
}

func TestAuthenticateErrors(t *testing.T) {
	t.Parallel()
	s := store.New(testenv.Postgres(t))

	// Postgres rejects NUL in text; Mastodon answers 500 for the same query
	// error, so it must not look like an unknown token.
	if _, err := s.Authenticate(t.Context(), "alice\x00"); err == nil || errors.Is(err, store.ErrInvalidToken) {
		t.Errorf("NUL token: err = %v, want a database error", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Authenticate(ctx, "alice-read-token"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v, want context.Canceled", err)
	}
}

func TestOwnsList(t *testing.T) {
	t.Parallel()
	s := store.New(testenv.Postgres(t))
	tests := []struct {
		name    string
		list    string
		account int64
		want    bool
	}{
		{"own list", "5001", testenv.Alice, true},
		{"foreign list", "5002", testenv.Alice, false},
		{"bob's own list", "5002", testenv.Bob, true},
		{"unknown list", "6001", testenv.Alice, false},
		{"leading zeros cast like Postgres", "05001", testenv.Alice, true},
		{"surrounding spaces cast like Postgres", " 5001 ", testenv.Alice, true},
		{"plus sign cast like Postgres", "+5001", testenv.Alice, true},
		{"negative", "-5001", testenv.Alice, false},
		{"non-numeric", "friends", testenv.Alice, false},
		{"trailing garbage", "5001x", testenv.Alice, false},
		{"decimal", "5001.0", testenv.Alice, false},
		{"exponent", "5e3", testenv.Alice, false},
		{"empty", "", testenv.Alice, false},
		{"max int64", "9223372036854775807", testenv.Alice, false},
		{"beyond int64", "9223372036854775808", testenv.Alice, false},
		{"huge", "123456789012345678901234567890", testenv.Alice, false},
		{"hex (PostgreSQL 16 syntax)", "0x1389", testenv.Alice, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.OwnsList(t.Context(), tc.list, tc.account)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("OwnsList(%q, %d) = %v, want %v", tc.list, tc.account, got, tc.want)
			}
		})
	}
}

func TestFeedAccess(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	s := store.New(pool)
	type row struct{ name, value string } // value "NULL" inserts NULL
	tests := []struct {
		name                  string
		rows                  []row
		kind                  store.FeedKind
		wantLocal, wantRemote bool
	}{
		{"no rows live", nil, store.FeedLive, false, false},
		{"no rows topic", nil, store.FeedTopic, false, false},
		{"remote live disabled", []row{{"remote_live_feed_access", "--- disabled\n"}}, store.FeedLive, false, true},
		{"local live disabled", []row{{"local_live_feed_access", "--- disabled\n"}}, store.FeedLive, true, false},
		{"both live disabled", []row{{"local_live_feed_access", "--- disabled\n"}, {"remote_live_feed_access", "--- disabled\n"}}, store.FeedLive, true, true},
		{"live settings do not touch topics", []row{{"local_live_feed_access", "--- disabled\n"}, {"remote_live_feed_access", "--- disabled\n"}}, store.FeedTopic, false, false},
		{"topic settings", []row{{"local_topic_feed_access", "--- disabled\n"}, {"remote_topic_feed_access", "--- public\n"}}, store.FeedTopic, true, false},
		{"authenticated allows", []row{{"local_live_feed_access", "--- authenticated\n"}}, store.FeedLive, false, false},
		{"no trailing newline allows", []row{{"local_live_feed_access", "--- disabled"}}, store.FeedLive, false, false},
		{"bare word allows", []row{{"remote_live_feed_access", "disabled"}}, store.FeedLive, false, false},
		{"quoted allows", []row{{"remote_live_feed_access", "--- 'disabled'\n"}}, store.FeedLive, false, false},
		{"null allows", []row{{"remote_live_feed_access", "NULL"}}, store.FeedLive, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			if _, err := pool.Exec(ctx, "DELETE FROM settings"); err != nil {
				t.Fatal(err)
			}
			for _, r := range tc.rows {
				var value *string
				if r.value != "NULL" {
					value = &r.value
				}
				if _, err := pool.Exec(ctx, `INSERT INTO settings (var, value, created_at, updated_at)
					VALUES ($1, $2, '2024-01-01', '2024-01-01')`, r.name, value); err != nil {
					t.Fatal(err)
				}
			}
			local, remote, err := s.FeedAccess(ctx, tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			if local != tc.wantLocal || remote != tc.wantRemote {
				t.Errorf("got local %v remote %v, want %v %v", local, remote, tc.wantLocal, tc.wantRemote)
			}
		})
	}
	if _, _, err := s.FeedAccess(t.Context(), store.FeedKind(9)); err == nil {
		t.Error("unknown feed kind: no error")
	}
}

func TestExcluded(t *testing.T) {
	t.Parallel()
	s := store.New(testenv.Postgres(t))
	const stranger int64 = 42 // no account row at all
	viewers := []int64{testenv.Alice, testenv.Bob, testenv.Carol, testenv.Mallory, testenv.Heidi,
		testenv.Judy, testenv.Ken, stranger, testenv.Alice /* duplicates are harmless */}
	mentioning := func(author int64, domain string, mentions ...int64) store.StatusRef {
		return store.StatusRef{AuthorID: author, Targets: append([]int64{author}, mentions...), Domain: domain}
	}
	tests := []struct {
		name   string
		status store.StatusRef
		want   []int64
	}{
		{"viewer blocks author", mentioning(testenv.Carol, ""), []int64{testenv.Alice}},
		{"author blocks viewer", mentioning(testenv.Mallory, ""), []int64{testenv.Alice}},
		{"viewer blocks mentioned account", mentioning(testenv.Bob, "", testenv.Carol), []int64{testenv.Alice}},
		{"mentioned account blocking the viewer is not a reason", mentioning(testenv.Bob, "", testenv.Mallory), nil},
		{"viewer mutes author", mentioning(testenv.Dave, testenv.RemoteDomain), []int64{testenv.Alice}},
		{"viewer mutes mentioned account", mentioning(testenv.Bob, "", testenv.Dave), []int64{testenv.Alice}},
		{"viewer blocks domain", mentioning(testenv.Erin, testenv.BlockedDomain), []int64{testenv.Alice}},
		{"domain match is case-sensitive", mentioning(testenv.Erin, "Blocked.example"), nil},
		{"unrelated remote author", mentioning(testenv.Ivan, testenv.RemoteDomain), nil},
		{"mentioning a blocked-domain account is no domain block", mentioning(testenv.Bob, "", testenv.Erin), nil},
		{"viewers blocking or blocked by the author", mentioning(testenv.Alice, ""), []int64{testenv.Carol, testenv.Mallory}},
		{"author's own block of a mention excludes the author as viewer", mentioning(testenv.Alice, "", testenv.Carol),
			[]int64{testenv.Alice, testenv.Carol, testenv.Mallory}},
		{"no relationships", mentioning(testenv.Bob, ""), nil},
		{"no targets still checks the reverse block", store.StatusRef{AuthorID: testenv.Mallory}, []int64{testenv.Alice}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.Excluded(t.Context(), viewers, tc.status)
			if err != nil {
				t.Fatal(err)
			}
			if ids := keys(got); !slices.Equal(ids, sorted(tc.want)) {
				t.Errorf("excluded %v, want %v", ids, sorted(tc.want))
			}
		})
	}

	got, err := s.Excluded(t.Context(), nil, mentioning(testenv.Carol, ""))
	if err != nil || len(got) != 0 {
		t.Errorf("no viewers: got %v, %v", got, err)
	}
}

func keys(m map[int64]bool) []int64 {
	var out []int64
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func sorted(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func TestKeywordFilters(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	s := store.New(pool)
	ctx := t.Context()

	far := time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)
	want := map[int64][]keyword.Filter{
		testenv.Alice: {
			{ID: "7001", Title: "Spoilers", Context: []string{"home", "public"}, Action: "warn",
				Keywords: []keyword.Keyword{{Keyword: "spoiler", WholeWord: true}}},
			{ID: "7002", Title: "Hidden", Context: []string{"public"}, Action: "hide",
				Keywords: []keyword.Keyword{{Keyword: "hideme", WholeWord: false}}},
		},
		testenv.Heidi: {
			{ID: "7004", Title: "Blurry", Context: []string{"public"}, Action: "",
				Keywords: []keyword.Keyword{{Keyword: "blurme", WholeWord: true}}},
		},
		testenv.Ken: {
			{ID: "7005", Title: "Multi", Context: []string{"home", "notifications"}, Action: "hide",
				Keywords: []keyword.Keyword{{Keyword: "foo", WholeWord: true}, {Keyword: "bar baz", WholeWord: false}}},
			{ID: "7006", Title: "Future", Context: []string{"public"}, ExpiresAt: &far, Action: "warn",
				Keywords: []keyword.Keyword{{Keyword: "later", WholeWord: true}}},
		},
	}
	got, err := s.KeywordFilters(ctx, []int64{testenv.Alice, testenv.Bob, testenv.Heidi, testenv.Judy, testenv.Ken})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %s\nwant %s", dump(got), dump(want))
	}
	if exp := got[testenv.Ken][1].ExpiresAt; exp == nil || exp.Location() != time.UTC {
		t.Errorf("ExpiresAt %v is not UTC", exp)
	}

	got, err = s.KeywordFilters(ctx, nil)
	if err != nil || len(got) != 0 {
		t.Errorf("no accounts: got %v, %v", got, err)
	}
}

// TestKeywordFiltersEdgeRows covers rows the fixtures lack: empty context,
// infinite expiry, a filter without keywords, and expiry relative to now.
func TestKeywordFiltersEdgeRows(t *testing.T) {
	t.Parallel()
	u := testenv.PostgresURL(t)
	ctx := t.Context()
	setup, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	_, err = setup.Exec(ctx, `
		INSERT INTO custom_filters (id, account_id, expires_at, phrase, context, action, created_at, updated_at) VALUES
		  (9001, $1, NULL, 'No context', '{}', 0, '2024-01-01', '2024-01-01'),
		  (9002, $1, 'infinity', 'Forever', '{public}', 1, '2024-01-01', '2024-01-01'),
		  (9003, $1, '-infinity', 'Never', '{public}', 1, '2024-01-01', '2024-01-01'),
		  (9004, $1, NULL, 'No keywords', '{public}', 1, '2024-01-01', '2024-01-01'),
		  (9005, $1, (now() AT TIME ZONE 'UTC') + interval '1 hour', 'Soon', '{public}', 0, '2024-01-01', '2024-01-01'),
		  (9006, $1, (now() AT TIME ZONE 'UTC') - interval '1 hour', 'Just expired', '{public}', 0, '2024-01-01', '2024-01-01'),
		  (9007, $1, NULL, 'Other action', '{public}', 7, '2024-01-01', '2024-01-01')`, testenv.Judy)
	if err != nil {
		t.Fatal(err)
	}
	_, err = setup.Exec(ctx, `
		INSERT INTO custom_filter_keywords (custom_filter_id, keyword, whole_word, created_at, updated_at) VALUES
		  (9001, 'a', true, '2024-01-01', '2024-01-01'),
		  (9002, 'b', true, '2024-01-01', '2024-01-01'),
		  (9003, 'c', true, '2024-01-01', '2024-01-01'),
		  (9005, 'd', true, '2024-01-01', '2024-01-01'),
		  (9006, 'e', true, '2024-01-01', '2024-01-01'),
		  (9007, 'f', true, '2024-01-01', '2024-01-01')`)
	if err != nil {
		t.Fatal(err)
	}

	// Expiry is judged in UTC whatever the session time zone: far east and
	// far west of UTC both see "Soon" as unexpired and "Just expired" as
	// expired.
	for _, tz := range []string{"UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"} {
		t.Run(tz, func(t *testing.T) {
			pu, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			q := pu.Query()
			q.Set("timezone", tz)
			pu.RawQuery = q.Encode()
			pool, err := pgxpool.New(ctx, pu.String())
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			got, err := store.New(pool).KeywordFilters(ctx, []int64{testenv.Judy})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, f := range got[testenv.Judy] {
				ids = append(ids, f.ID)
				switch f.ID {
				case "9001":
					if f.Context == nil || len(f.Context) != 0 {
						t.Errorf("empty context = %#v, want non-nil empty", f.Context)
					}
				case "9002":
					if f.ExpiresAt == nil || f.ExpiresAt.Year() < 275761 {
						t.Errorf("infinite expiry = %v, want beyond the JavaScript Date range", f.ExpiresAt)
					}
				case "9005":
					if f.ExpiresAt == nil || time.Until(*f.ExpiresAt) <= 0 || time.Until(*f.ExpiresAt) > 2*time.Hour {
						t.Errorf("expiry %v is not about an hour from now (read as UTC)", f.ExpiresAt)
					}
				case "9007":
					if f.Action != "" {
						t.Errorf("action 7 = %q, want empty", f.Action)
					}
				}
			}
			if want := []string{"9001", "9002", "9005", "9007"}; !slices.Equal(ids, want) {
				t.Errorf("filters %v, want %v", ids, want)
			}
		})
	}
}

func dump(m map[int64][]keyword.Filter) string {
	var out string
	for _, k := range slices.Sorted(func(yield func(int64) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}) {
		out += fmt.Sprintf("%d:%+v ", k, m[k])
	}
	return out
}

func TestStat(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	s := store.New(pool)
	if _, err := s.Authenticate(t.Context(), "alice-read-token"); err != nil {
		t.Fatal(err)
	}
	st := s.Stat()
	if st.TotalConns < 1 || st.IdleConns < 1 || st.IdleConns > st.TotalConns || st.WaitingQueries != 0 {
		t.Errorf("Stat() = %+v after one query", st)
	}
	total, idle, waiting := s.PoolStats()
	if total != st.TotalConns || idle != st.IdleConns || waiting != 0 {
		t.Errorf("PoolStats() = %d %d %d, want %+v", total, idle, waiting, st)
	}
}

func TestStatCountsWaiters(t *testing.T) {
	t.Parallel()
	u := testenv.PostgresURL(t)
	ctx := t.Context()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := pu.Query()
	q.Set("pool_max_conns", "1")
	pu.RawQuery = q.Encode()
	pool, err := pgxpool.New(ctx, pu.String())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := store.New(pool)

	held, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Authenticate(ctx, "alice-read-token")
		done <- err
	}()
	testenv.Eventually(t, 10*time.Second, func() error {
		if w := s.Stat().WaitingQueries; w != 1 {
			return fmt.Errorf("waiting = %d, want 1", w)
		}
		return nil
	})
	held.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if w := s.Stat().WaitingQueries; w != 0 {
		t.Errorf("waiting = %d after the query, want 0", w)
	}
}

// BenchmarkExcluded checks one status against 1,000 viewers who have a few
// blocks and mutes each.
func BenchmarkExcluded(b *testing.B) {
	pool := testenv.Postgres(b)
	ctx := b.Context()
	const base int64 = 200000000000000000
	for _, stmt := range []string{
		`INSERT INTO accounts (id, username, created_at, updated_at)
		  SELECT $1::bigint + g, 'bench' || g, '2024-01-01', '2024-01-01' FROM generate_series(0, 1999) g`,
		`INSERT INTO blocks (account_id, target_account_id, created_at, updated_at)
		  SELECT $1::bigint + g, $1::bigint + 1000 + (g * 7 + k) % 1000, '2024-01-01', '2024-01-01'
		  FROM generate_series(0, 999) g, generate_series(0, 2) k`,
		`INSERT INTO mutes (account_id, target_account_id, created_at, updated_at)
		  SELECT $1::bigint + g, $1::bigint + 1000 + (g * 13 + k) % 1000, '2024-01-01', '2024-01-01'
		  FROM generate_series(0, 999) g, generate_series(0, 2) k`,
		`INSERT INTO account_domain_blocks (account_id, domain, created_at, updated_at)
		  SELECT $1::bigint + g, 'spam' || g || '.example', '2024-01-01', '2024-01-01' FROM generate_series(0, 999) g`,
	} {
		if _, err := pool.Exec(ctx, stmt, base); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, "ANALYZE accounts, blocks, mutes, account_domain_blocks"); err != nil {
		b.Fatal(err)
	}
	viewers := make([]int64, 1000)
	for i := range viewers {
		viewers[i] = base + int64(i)
	}
	s := store.New(pool)
	st := store.StatusRef{AuthorID: base + 1500, Targets: []int64{base + 1500, base + 1001, base + 1002}, Domain: "spam7.example"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got, err := s.Excluded(ctx, viewers, st)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) == 0 {
			b.Fatal("nobody excluded")
		}
	}
}
