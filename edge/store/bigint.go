package store

// parseBigint converts text to int64 the way PostgreSQL's bigint input
// (int8in, PostgreSQL 15) does, which is what Mastodon relies on when it
// compares lists.id with the raw list parameter: optional ASCII whitespace
// around, an optional sign, at least one decimal digit, nothing else; out of
// range fails. PostgreSQL 16 also accepts "0x"/"0o"/"0b" prefixes and "_"
// between digits; those are rejected here (such ids name channels nobody
// publishes to anyway).
func parseBigint(s string) (int64, bool) {
	i, n := 0, len(s)
	for i < n && isSpace(s[i]) {
		i++
	}
	neg := false
	if i < n && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	// Accumulate negatively so that math.MinInt64 parses without overflow.
	var v int64
	for ; i < n && '0' <= s[i] && s[i] <= '9'; i++ {
		d := int64(s[i] - '0')
		if v < (minInt64+d)/10 {
			return 0, false
		}
		v = v*10 - d
	}
	if i == start {
		return 0, false
	}
	for i < n && isSpace(s[i]) {
		i++
	}
	if i != n {
		return 0, false
	}
	if !neg {
		if v == minInt64 {
			return 0, false
		}
		v = -v
	}
	return v, true
}

const minInt64 = -1 << 63

// isSpace is C's isspace in the "C" locale, which PostgreSQL uses here.
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}
