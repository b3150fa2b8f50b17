// Package keyword owns Mastodon's custom keyword filter matching as the Node
// streaming server performs it for statuses on public and hashtag streams:
// the searchable text of a status ([Text], computed once
// per event) and a per-connection [Matcher] built from the user's filters that
// renders the `filtered` array for that text.
//
// Matching reproduces JavaScript's `new RegExp(k1|k2|…, 'i')` over escaped
// keywords without a regexp engine: the pattern language is only an
// alternation of literal strings with optional ASCII `\b` at either end, so a
// hand-written matcher finds the leftmost position and, there, the first
// alternative that matches, exactly as a backtracking JS engine does.
// Case-insensitivity is JS non-Unicode canonicalisation (toUpperCase of one
// code unit, never mapping non-ASCII to ASCII), so `ſ` does not match `s` and
// the Kelvin sign does not match `k`, unlike Go's (?i). V8's rewriting of
// disjunctions with three or more alternatives (common-prefix factoring under
// ICU case folding) changes results for a few such characters and is
// reproduced too (see v8Disjunction).
package keyword
