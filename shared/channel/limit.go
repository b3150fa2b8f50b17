package channel

import (
	"errors"
	"fmt"
)

// Bounds on what becomes a NATS subject. nats-server refuses any protocol
// line longer than its max_control_line (4096 bytes by default) by closing
// the connection that sent it, and a client library re-sends its
// subscriptions on every reconnect; so one over-long subject would cut an
// edge (or the broker) off NATS for every client it serves. Every Name is
// therefore checked with [CheckName] before it is subscribed to or
// published on.
//
// A control line carries more than the subject: SUB adds a subscription id,
// HPUB and HMSG a reply subject and two sizes, and inside a cluster RMSG and
// RS+ add the account name and a queue group. The bounds keep the worst-case
// subject under half of the default limit, leaving that room, and still
// allow hashtag channels far longer than any tag in use.
const (
	// MaxNameLen is the longest Name, in bytes, that CheckName accepts.
	// Rails' own names are short (ids have at most 19 digits); the longest
	// legitimate ones are hashtag channels, and 512 bytes leave a
	// normalised tag of up to 489 bytes (at least 122 characters in any
	// script) next to "timeline:hashtag:" and ":local".
	MaxNameLen = 512

	// MaxPrefixLen is the longest subject prefix [ValidPrefix] accepts.
	MaxPrefixLen = 128

	// MaxSubjectLen is the longest subject [Subjects.Of] returns for a Name
	// CheckName accepts under a prefix ValidPrefix accepts: each byte of a
	// Name becomes at most three (%XX, or "%." for ':' after an empty
	// token), after the prefix and ".ch.", plus one "%" for an empty last
	// token. It is 1669 bytes, well under nats-server's default
	// max_control_line of 4096; an external NATS server must not be
	// configured below about 2 KiB.
	MaxSubjectLen = MaxPrefixLen + len(".ch.") + 3*MaxNameLen + 1
)

// ErrNameTooLong is returned (wrapped) by [CheckName].
var ErrNameTooLong = errors.New("channel name too long")

// CheckName reports whether n may become a NATS subject: it is an error
// wrapping [ErrNameTooLong] when n is longer than [MaxNameLen]. [Subjects.Of]
// gives a valid literal subject for any bytes; length is the only thing
// that can make one unusable.
func CheckName(n Name) error {
	if len(n) > MaxNameLen {
		return fmt.Errorf("channel: name of %d bytes exceeds %d: %w", len(n), MaxNameLen, ErrNameTooLong)
	}
	return nil
}
