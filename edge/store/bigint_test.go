package store

import (
	"strconv"
	"strings"
	"testing"
)

var bigintSeeds = []string{
	"5001", "05001", " 5001 ", "+5001", "-5001", "\t\n5001\r\f\v", "", " ", "+", "-", "5001x", "x5001",
	"50 01", "5001.0", "5e3", "0x1389", "5_001", "9223372036854775807", "9223372036854775808",
	"-9223372036854775808", "-9223372036854775809", "00000000000000000000009223372036854775807",
	"123456789012345678901234567890", "+-5", "--5", "５００１", "5001\x00", "\xa05001",
}

// reference is parseBigint restated with strconv: trim C whitespace, then
// a base-10 int64 with an optional sign.
func reference(s string) (int64, bool) {
	t := strings.Trim(s, " \t\n\v\f\r")
	if t == "" || strings.ContainsAny(t, "_ \t\n\v\f\r") {
		return 0, false
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

func TestParseBigint(t *testing.T) {
	t.Parallel()
	for _, s := range bigintSeeds {
		gotV, gotOK := parseBigint(s)
		wantV, wantOK := reference(s)
		if gotV != wantV || gotOK != wantOK {
			t.Errorf("parseBigint(%q) = %d, %v; want %d, %v", s, gotV, gotOK, wantV, wantOK)
		}
	}
}

func FuzzParseBigint(f *testing.F) {
	for _, s := range bigintSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		gotV, gotOK := parseBigint(s)
		wantV, wantOK := reference(s)
		if gotV != wantV || gotOK != wantOK {
			t.Fatalf("parseBigint(%q) = %d, %v; want %d, %v", s, gotV, gotOK, wantV, wantOK)
		}
	})
}
