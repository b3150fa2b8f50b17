package edge

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/spillway/spillway/edge/store"
)

// maxTokenLen bounds a token before it reaches Postgres; Doorkeeper tokens
// are 43 characters.
const maxTokenLen = 1024

// tokenFrom extracts the access token as Mastodon does: the
// Authorization header (a leading "Bearer " is optional and case-sensitive),
// else the access_token query parameter, else the raw Sec-WebSocket-Protocol
// header. repeated reports an access_token given more than once, which
// Mastodon turns into an array that matches no token. Node keeps only the
// first of repeated Authorization headers and joins repeated
// Sec-WebSocket-Protocol headers with ", "; so does tokenFrom.
func tokenFrom(r *http.Request, q query) (token string, repeated, ok bool) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		return strings.TrimPrefix(auth, "Bearer "), false, true
	}
	if v := q["access_token"]; len(v) > 1 {
		return "", true, true
	} else if len(v) == 1 && v[0] != "" {
		return v[0], false, true
	}
	if p := strings.Join(r.Header.Values("Sec-WebSocket-Protocol"), ", "); p != "" {
		return p, false, true
	}
	return "", false, false
}

// requestToken returns the token of a request to look up, or the error to
// answer without a query: a token that cannot be in the database is simply
// not found, as in Mastodon.
func requestToken(r *http.Request, q query) (string, *apiError) {
	token, repeated, ok := tokenFrom(r, q)
	if !ok {
		return "", errMissingToken
	}
	if repeated || !plausibleToken(token) {
		return "", errInvalidToken
	}
	return token, nil
}

// plausibleToken reports whether a token could match a stored one:
// non-empty, at most maxTokenLen bytes, and text Postgres can hold (valid
// UTF-8 without NUL). Anything else would cost a query only to fail, or
// make Postgres reject the parameter.
func plausibleToken(token string) bool {
	return token != "" && len(token) <= maxTokenLen && utf8.ValidString(token) && strings.IndexByte(token, 0) < 0
}

// authenticate resolves a request's token to an identity, or to Mastodon's
// 401/500 errors.
func (e *Edge) authenticate(ctx context.Context, r *http.Request, q query) (store.Identity, *apiError) {
	token, aerr := requestToken(r, q)
	if aerr != nil {
		return store.Identity{}, aerr
	}
	id, err := e.tokens.lookup(ctx, token)
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, store.ErrInvalidToken):
		return store.Identity{}, errInvalidToken
	default:
		e.logger.Error("token lookup failed", "err", err)
		return store.Identity{}, errUnexpected
	}
}

// allows applies Mastodon's scope rules: read covers everything; read:notifications covers
// user:notification; read:statuses covers every other stream name.
func allows(id store.Identity, stream string) bool {
	if slices.Contains(id.Scopes, "read") {
		return true
	}
	if stream == "user:notification" {
		return slices.Contains(id.Scopes, "read:notifications")
	}
	return slices.Contains(id.Scopes, "read:statuses")
}

// readsNotifications reports whether the user stream includes
// notifications (read or read:notifications).
func readsNotifications(id store.Identity) bool {
	return slices.Contains(id.Scopes, "read") || slices.Contains(id.Scopes, "read:notifications")
}
