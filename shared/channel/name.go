package channel

import (
	"strconv"
	"strings"
)

// Name is a Mastodon channel as Rails publishes it, without REDIS_NAMESPACE,
// e.g. "timeline:public:local".
type Name string

// Scope selects which origin of statuses a public timeline carries.
type Scope uint8

// Scopes of the public timelines. The zero value is ScopeAll.
const (
	ScopeAll    Scope = iota // timeline:public
	ScopeLocal               // timeline:public:local
	ScopeRemote              // timeline:public:remote
)

// String returns the stream-name suffix spelling of the scope ("", "local",
// "remote"); unknown values spell like ScopeAll, matching [Public].
func (s Scope) String() string {
	switch s {
	case ScopeLocal:
		return "local"
	case ScopeRemote:
		return "remote"
	default:
		return ""
	}
}

const (
	timelinePrefix    = "timeline:"
	accessTokenPrefix = "timeline:access_token:"
	systemPrefix      = "timeline:system:"
)

// Public returns the public timeline channel:
// timeline:public[:local|:remote][:media]. Scope values other than
// ScopeLocal and ScopeRemote are treated as ScopeAll rather than rejected,
// because a constructor must not fail on a value Rails never produces.
func Public(scope Scope, onlyMedia bool) Name {
	n := "timeline:public"
	switch scope {
	case ScopeLocal:
		n += ":local"
	case ScopeRemote:
		n += ":remote"
	}
	if onlyMedia {
		n += ":media"
	}
	return Name(n)
}

// Home returns the home timeline channel of an account: timeline:<id>.
func Home(accountID int64) Name {
	return Name(timelinePrefix + strconv.FormatInt(accountID, 10))
}

// Notifications returns the notification channel of an account:
// timeline:<id>:notifications.
func Notifications(accountID int64) Name {
	return Name(timelinePrefix + strconv.FormatInt(accountID, 10) + ":notifications")
}

// Direct returns the direct-message (conversation) channel of an account:
// timeline:direct:<id>.
func Direct(accountID int64) Name {
	return Name("timeline:direct:" + strconv.FormatInt(accountID, 10))
}

// List returns the channel of a list: timeline:list:<list>. The list id is
// used exactly as the client sent it (the Node server does not parse it, and
// the ownership check has already matched it against the database), so
// "007" stays "007".
func List(list string) Name {
	return Name("timeline:list:" + list)
}

// Hashtag returns the hashtag channel: timeline:hashtag:<NormalizeHashtag(tag)>
// with a ":local" suffix for the local-only stream. A tag that normalises to
// the empty string still yields a channel ("timeline:hashtag:"), as in Node.
func Hashtag(tag string, local bool) Name {
	n := "timeline:hashtag:" + NormalizeHashtag(tag)
	if local {
		n += ":local"
	}
	return Name(n)
}

// AccessToken returns the system channel of one OAuth access token:
// timeline:access_token:<id>. Its kill event ends only connections made with
// that token.
func AccessToken(tokenID int64) Name {
	return Name(accessTokenPrefix + strconv.FormatInt(tokenID, 10))
}

// System returns the system channel of an account: timeline:system:<id>.
func System(accountID int64) Name {
	return Name(systemPrefix + strconv.FormatInt(accountID, 10))
}

// AccessTokenID returns the token id of an access-token channel.
func AccessTokenID(n Name) (int64, bool) { return idAfter(n, accessTokenPrefix) }

// SystemAccountID returns the account id of an account's system channel.
func SystemAccountID(n Name) (int64, bool) { return idAfter(n, systemPrefix) }

// idAfter parses the decimal id that follows prefix, accepting only the
// form AccessToken and System produce.
func idAfter(n Name, prefix string) (int64, bool) {
	rest, ok := strings.CutPrefix(string(n), prefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || strconv.FormatInt(id, 10) != rest {
		return 0, false
	}
	return id, true
}

// Tracked reports whether Mastodon keeps a "subscribed:<name>" key for the
// channel while someone listens to it. The Node server sets that key for
// every channel of a client-requested stream and never for the two system
// channels (timeline:access_token:* and timeline:system:*). Rails only reads
// the keys of home, notifications, list and direct channels, but setting the
// others is what Node does and is harmless.
func (n Name) Tracked() bool {
	s := string(n)
	return !strings.HasPrefix(s, accessTokenPrefix) && !strings.HasPrefix(s, systemPrefix)
}
