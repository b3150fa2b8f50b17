package mastodonenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/joho/godotenv"
)

// Env looks up one environment variable; ok reports whether it is set at all
// (possibly to ""), exactly like os.LookupEnv, which can be passed directly.
type Env func(key string) (value string, ok bool)

// Get returns the value of key, or "" when it is unset.
func (e Env) Get(key string) string {
	v, _ := e(key)
	return v
}

// MapEnv returns an Env backed by m (a key present with "" counts as set).
// The map is not copied; callers must not modify it afterwards.
func MapEnv(m map[string]string) Env {
	return func(key string) (string, bool) {
		v, ok := m[key]
		return v, ok
	}
}

// Environment names recognised by Mastodon.
const (
	Development = "development"
	Production  = "production"
)

// NodeEnv returns NODE_ENV, or "development" when it is unset or empty
// (Mastodon uses `process.env.NODE_ENV || 'development'`).
func NodeEnv(env Env) string {
	if v := env.Get("NODE_ENV"); v != "" {
		return v
	}
	return Development
}

// DotenvFile returns the file Mastodon's streaming server loads for env:
// <root>/.env.production when NODE_ENV is "production", else <root>/.env.
func DotenvFile(env Env, root string) string {
	if NodeEnv(env) == Production {
		return filepath.Join(root, ".env.production")
	}
	return filepath.Join(root, ".env")
}

// LoadDotenv applies Mastodon's .env rule without touching the process
// environment: it parses DotenvFile(env, root) and returns an Env that looks
// a variable up in env first and in the file second, so variables already
// set (even to "") win. A missing file is not an error and returns env.
//
// NODE_ENV is never taken from the file: Node computes its environment before
// loading the file, so a NODE_ENV line there changes neither the file choice
// nor the database and log-level defaults.
//
// Differences from Node's dotenv, deliberately accepted: godotenv expands
// $VAR / ${VAR} references to earlier lines of the same file in unquoted and
// double-quoted values (like Ruby's dotenv, which Rails applies to the same
// file; Node's dotenv does not expand), and an unreadable or malformed file
// is an error here, where Node's dotenv would silently ignore it and start
// with defaults.
func LoadDotenv(env Env, root string) (Env, error) {
	path := DotenvFile(env, root)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return env, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mastodonenv: reading dotenv file for NODE_ENV=%s: %w", NodeEnv(env), err)
	}
	defer f.Close()
	vars, err := godotenv.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("mastodonenv: parsing dotenv file %s (selected by NODE_ENV=%s): %w", path, NodeEnv(env), err)
	}
	return func(key string) (string, bool) {
		if v, ok := env(key); ok {
			return v, true
		}
		if key == "NODE_ENV" {
			return "", false
		}
		v, ok := vars[key]
		return v, ok
	}, nil
}

// upstreamErrorf builds an error whose text starts with Mastodon's own
// capitalised wording, which operators and scripts match on (hence not the
// usual lower-case Go style).
func upstreamErrorf(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// invalidEnv is Mastodon's parseIntFromEnvValue error text.
func invalidEnv(name, value string) error {
	return upstreamErrorf("Invalid %s environment variable: %s", name, value)
}

// intFromEnv mirrors Mastodon's parseIntFromEnvValue: an unset or empty
// variable gives def, otherwise JavaScript parseInt(value, 10) must yield a
// number. Unlike Node, values outside [lo, hi] are rejected with the same
// message instead of failing later at connect time.
func intFromEnv(env Env, name string, def, lo, hi int64) (int64, error) {
	v := env.Get(name)
	if v == "" {
		return def, nil
	}
	n, ok := parseJSInt(v)
	if !ok || n < lo || n > hi {
		return 0, invalidEnv(name, v)
	}
	return n, nil
}

// parseJSInt implements JavaScript's parseInt(s, 10): leading white space is
// skipped, an optional sign and then the longest run of decimal digits is
// read, and anything after it is ignored ("12abc" is 12). ok is false where
// JavaScript returns NaN, and also when the value does not fit an int64
// (JavaScript would return an imprecise float).
func parseJSInt(s string) (n int64, ok bool) {
	s = strings.TrimLeftFunc(s, isJSSpace)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		d := int64(s[i] - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
		i++
	}
	if i == 0 {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// isJSSpace reports whether r is white space or a line terminator for
// ECMAScript's StrWhiteSpaceChar.
func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', 0xFEFF, 0x2028, 0x2029:
		return true
	}
	return unicode.Is(unicode.Zs, r)
}
