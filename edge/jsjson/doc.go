// Package jsjson parses and serialises JSON with exactly the semantics of
// JavaScript's JSON.parse and JSON.stringify as run by Mastodon's Node
// streaming server, because clients see the bytes that server re-serialises.
//
// It owns the byte-level JSON behaviour of the streaming API:
//
//   - Input bytes are decoded as UTF-8 the way Node/ioredis do (WHATWG decoder:
//     every maximal invalid subpart becomes one U+FFFD) before parsing.
//   - Parsing is strict RFC 8259 as JSON.parse accepts it. Numbers become
//     float64 (1e400 is +Inf). Objects keep JavaScript property order:
//     array-index keys ("0".."4294967294", canonical form) first in ascending
//     numeric order, then the other keys in insertion order; a duplicate key
//     keeps the position of its first occurrence and the value of its last.
//   - Serialisation is JSON.stringify without arguments: compact, escaping
//     only '"', '\\', control characters and lone surrogates; numbers use
//     ECMAScript Number::toString (shortest round-trip digits).
//
// # String representation
//
// JavaScript strings are sequences of UTF-16 code units and may contain lone
// surrogates (JSON.parse(`"\ud800"`) is legal). Go strings returned by this
// package are WTF-8: ordinary UTF-8, except that a lone surrogate code point
// U+D800..U+DFFF is encoded as the 3-byte sequence ED A0..BF 80..BF (which is
// invalid UTF-8). A surrogate pair is always combined into one supplementary
// code point, so byte equality of two strings equals JavaScript string
// equality. Strings without lone surrogates are plain valid UTF-8.
//
// # Fast path
//
// Canonical produces JSON.stringify(JSON.parse(text)) straight from the
// text in one pass, and DecodeEnvelope does the same for the members of a
// Rails streaming message, without building a tree. Both report ok=false
// for input they leave to Parse (duplicate keys, keys JavaScript would
// reorder, very large or deep objects, invalid JSON); callers then take the
// tree path, which gives the same bytes.
//
// Parsed values are immutable and safe for concurrent use. Accessors are
// nil-safe, so v.Get("account").Get("id").Str() never panics on hostile input.
package jsjson
