package store

import (
	"testing"

	"github.com/spillway/spillway/shared/testenv"
)

// TestParseBigintMatchesPostgres compares parseBigint with the cast that
// Mastodon's list query makes Postgres perform.
func TestParseBigintMatchesPostgres(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	var version int
	if err := pool.QueryRow(t.Context(), "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		t.Fatal(err)
	}
	for _, s := range bigintSeeds {
		if version >= 160000 && (s == "0x1389" || s == "5_001") {
			continue // PostgreSQL 16 syntax, rejected on purpose
		}
		if len(s) > 0 && s[len(s)-1] == 0 {
			continue // Postgres text cannot carry NUL at all
		}
		var v int64
		err := pool.QueryRow(t.Context(), "SELECT $1::text::bigint", s).Scan(&v)
		pgOK := err == nil
		got, ok := parseBigint(s)
		if ok != pgOK || (ok && got != v) {
			t.Errorf("%q: parseBigint = %d, %v; Postgres = %d, %v (%v)", s, got, ok, v, pgOK, err)
		}
	}
}
