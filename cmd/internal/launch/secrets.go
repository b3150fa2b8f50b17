package launch

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// masked replaces a secret wherever configuration is printed.
const masked = "*****"

// secretWords mark a variable whose whole value is a secret (DB_PASS,
// REDIS_PASSWORD, PGPASSWORD, STREAMING_*_TOKEN, *_CREDS, *_NKEY, *_KEY,
// ...). The rule is by name, so variables added later are covered without
// being listed; a file path caught by it (a key or credentials file) is
// masked too, which costs nothing.
var secretWords = []string{"PASS", "TOKEN", "SECRET", "CREDS", "KEY", "SEED", "JWT"}

// secretName reports whether the value of the variable name is a secret.
func secretName(name string) bool {
	name = strings.ToUpper(name)
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// secretParam reports whether a URL query or key/value parameter carries a
// secret (password=, sslpassword=, token=, ...).
func secretParam(key string) bool {
	return secretName(strings.ReplaceAll(key, "-", "_"))
}

// kvSecret finds secret parameters in a libpq key/value string
// ("host=db password='x y'"), which DATABASE_URL may also be.
var kvSecret = regexp.MustCompile(`(?i)\b([a-z_]*(?:pass|token|secret|key)[a-z_]*\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']+)`)

// tokenSchemes are the URL schemes in which a user name without a password
// is a token (NATS: nats://TOKEN@host).
var tokenSchemes = []string{"nats", "tls", "ws", "wss"}

// secrets collects every secret that configuration output might contain,
// so that the output can be scrubbed of them whatever printed it (a library
// error message, a URL re-encoded differently, ...).
type secrets struct{ values []string }

// add records v as secret, with its URL-encoded and decoded forms, in
// which it may show up too.
func (s *secrets) add(v string) {
	if v == "" {
		return
	}
	s.values = append(s.values, v, url.PathEscape(v), url.QueryEscape(v))
	if d, err := url.PathUnescape(v); err == nil {
		s.values = append(s.values, d)
	}
	if d, err := url.QueryUnescape(v); err == nil {
		s.values = append(s.values, d)
	}
}

// scrub replaces every recorded secret in text, longest first so that a
// secret containing another is replaced whole.
func (s *secrets) scrub(text string) string {
	if len(s.values) == 0 {
		return text
	}
	vals := slices.Clone(s.values)
	slices.SortFunc(vals, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(vals))
	for _, v := range slices.Compact(vals) {
		if v == "" {
			continue
		}
		pairs = append(pairs, v, masked)
	}
	return strings.NewReplacer(pairs...).Replace(text)
}

// maskValue returns the value of variable name fit to print, and records
// its secrets in s: the whole value for a secret name; otherwise the
// passwords, tokens and secret parameters inside URLs (a comma-separated
// list of them, as STREAMING_NATS_URL may be) or inside a key/value string.
func maskValue(name, value string, s *secrets) string {
	if value == "" {
		return value
	}
	if secretName(name) {
		s.add(value)
		return masked
	}
	if strings.Contains(value, "://") {
		parts := strings.Split(value, ",")
		for i, p := range parts {
			parts[i] = maskURL(p, s)
		}
		return strings.Join(parts, ",")
	}
	return kvSecret.ReplaceAllStringFunc(value, func(m string) string {
		sub := kvSecret.FindStringSubmatch(m)
		s.add(strings.Trim(sub[2], "'"))
		return sub[1] + masked
	})
}

// maskURL masks the password (or token) and secret query parameters of one
// URL. A URL that does not parse has everything between the scheme and the
// last '@' masked, since that is where credentials would be.
func maskURL(raw string, s *secrets) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		scheme, rest, ok := strings.Cut(raw, "://")
		at := strings.LastIndexByte(rest, '@')
		if !ok || at < 0 {
			return raw
		}
		s.add(rest[:at])
		return scheme + "://" + masked + rest[at:]
	}
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			s.add(p)
			u.User = url.UserPassword(u.User.Username(), masked)
		} else if slices.Contains(tokenSchemes, strings.ToLower(u.Scheme)) {
			s.add(u.User.Username())
			u.User = url.User(masked)
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k, vs := range q {
			if secretParam(k) {
				for _, v := range vs {
					s.add(v)
				}
				q[k] = []string{masked}
			}
		}
		u.RawQuery = q.Encode()
	}
	// url.URL.String percent-encodes the mask; show it plainly.
	return strings.ReplaceAll(u.String(), url.QueryEscape(masked), masked)
}
