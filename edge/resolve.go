package edge

import (
	"context"
	"strings"

	"github.com/spillway/spillway/edge/jsjson"
	"github.com/spillway/spillway/edge/store"
	"github.com/spillway/spillway/shared/channel"
)

// resolved is a stream request turned into channels: what to subscribe
// to, how to label frames, and how to filter.
type resolved struct {
	stream   string // canonical stream name, e.g. "public:local:media"
	channels []channel.Name
	rule     *feedRule // non-nil on public and hashtag streams
	label    string    // WebSocket stream label, JSON
	key      string    // channel names joined by ';': WebSocket de-duplication key
}

// feedRule is decided once per subscription: whether local or
// remote statuses are blocked by the instance's feed-access settings, and the
// viewer's languages.
type feedRule struct {
	blockLocal, blockRemote bool
}

// viewFeedsPermission is UserRole's view_feeds bit: it bypasses the feed-access
// settings.
const viewFeedsPermission = 1 << 20

// resolve maps a stream name and its parameters to channels, running the
// same checks as Mastodon in the same order: parameters, list ownership,
// feed access. tag and list are the parameters as received (nil when
// absent), since their JSON form becomes part of the WebSocket label.
func (e *Edge) resolve(ctx context.Context, id store.Identity, stream string, tag, list *jsjson.Value) (*resolved, *apiError) {
	r := &resolved{stream: stream}
	switch stream {
	case "user":
		r.channels = []channel.Name{channel.Home(id.AccountID)}
		if readsNotifications(id) {
			r.channels = append(r.channels, channel.Notifications(id.AccountID))
		}
	case "user:notification":
		r.channels = []channel.Name{channel.Notifications(id.AccountID)}
	case "direct":
		r.channels = []channel.Name{channel.Direct(id.AccountID)}
	case "public", "public:media", "public:local", "public:local:media", "public:remote", "public:remote:media":
		scope := channel.ScopeAll
		switch {
		case strings.HasPrefix(stream, "public:local"):
			scope = channel.ScopeLocal
		case strings.HasPrefix(stream, "public:remote"):
			scope = channel.ScopeRemote
		}
		r.channels = []channel.Name{channel.Public(scope, strings.HasSuffix(stream, ":media"))}
		rule, err := e.feedRule(ctx, id, store.FeedLive)
		if err != nil {
			return nil, err
		}
		r.rule = rule
	case "hashtag", "hashtag:local":
		name, aerr := hashtagChannel(tag, stream == "hashtag:local")
		if aerr != nil {
			return nil, aerr
		}
		r.channels = []channel.Name{name}
		r.label = "[" + string(jsjson.AppendString(nil, stream)) + "," + string(tag.AppendJSON(nil)) + "]"
		rule, err := e.feedRule(ctx, id, store.FeedTopic)
		if err != nil {
			return nil, err
		}
		r.rule = rule
	case "list":
		listID, name, aerr := listChannel(list)
		if aerr != nil {
			return nil, aerr
		}
		owns, err := e.store.OwnsList(ctx, listID, id.AccountID)
		if err != nil {
			e.logger.Warn("list ownership query failed", "err", err)
			return nil, errListForbidden
		}
		if !owns {
			return nil, errListForbidden
		}
		r.channels = []channel.Name{name}
		r.label = `["list",` + string(list.AppendJSON(nil)) + "]"
	default:
		return nil, errUnknownStream
	}
	if r.label == "" {
		r.label = "[" + string(jsjson.AppendString(nil, stream)) + "]"
	}
	names := make([]string, len(r.channels))
	for i, c := range r.channels {
		names[i] = string(c)
	}
	r.key = strings.Join(names, ";")
	return r, nil
}

// errTagTooLong refuses a tag whose channel name would be too long to be a
// NATS subject, which could cut the edge off NATS. Mastodon's server
// accepts such a tag and, in practice, streams nothing: no tag in use is
// that long.
var errTagTooLong = &apiError{400, "Tag name parameter is too long"}

// hashtagChannel checks the tag parameter and returns its channel. The raw
// tag is bounded before it is normalised, so a huge one costs nothing, and
// the normalised channel name is checked too (NFKC can lengthen a tag).
func hashtagChannel(tag *jsjson.Value, local bool) (channel.Name, *apiError) {
	if missing(tag) {
		return "", errMissingTag
	}
	s, ok := tag.Str()
	if !ok {
		// Mastodon's normaliser throws on a non-string tag.
		return "", errUnexpected
	}
	if len(s) > channel.MaxNameLen {
		return "", errTagTooLong
	}
	name := channel.Hashtag(s, local)
	if channel.CheckName(name) != nil {
		return "", errTagTooLong
	}
	return name, nil
}

// listChannel checks the list parameter and returns the id text to look
// up and the channel. An id too long for a channel name is refused as not
// authorised without asking Postgres: only padding (" +000…5001") could
// make one match a list, and Rails never publishes on such a channel.
func listChannel(list *jsjson.Value) (string, channel.Name, *apiError) {
	if missing(list) {
		return "", "", errMissingList
	}
	id, ok := listParam(list)
	if !ok {
		return "", "", errListForbidden
	}
	name := channel.List(id)
	if channel.CheckName(name) != nil {
		return "", "", errListForbidden
	}
	return id, name, nil
}

// missing applies Mastodon's `!param || param.length === 0`.
func missing(v *jsjson.Value) bool {
	if !v.Truthy() {
		return true
	}
	switch v.Kind() {
	case jsjson.String, jsjson.Array:
		if v.Kind() == jsjson.Array {
			return v.Len() == 0
		}
		s, _ := v.Str()
		return s == ""
	}
	return false
}

// listParam returns the list id text Mastodon would put in the channel name
// and the query: a string as given, or a number in JavaScript's form. Other
// types make Mastodon's query fail, which it reports as not authorised.
func listParam(v *jsjson.Value) (string, bool) {
	switch v.Kind() {
	case jsjson.String:
		s, _ := v.Str()
		return s, true
	case jsjson.Number:
		return string(v.AppendText(nil)), true
	}
	return "", false
}

// feedRule loads the feed-access settings for public or hashtag streams,
// unless the user's role may view every feed.
func (e *Edge) feedRule(ctx context.Context, id store.Identity, kind store.FeedKind) (*feedRule, *apiError) {
	if id.Permissions&viewFeedsPermission != 0 {
		return &feedRule{}, nil
	}
	local, remote, err := e.store.FeedAccess(ctx, kind)
	if err != nil {
		e.logger.Error("feed access settings query failed", "err", err)
		return nil, errUnexpected
	}
	return &feedRule{blockLocal: local, blockRemote: remote}, nil
}

// queryParam turns query values into the value Mastodon's query parser
// yields: absent, a string, or an array for a repeated key.
func queryParam(q query, key string) *jsjson.Value {
	vals, ok := q[key]
	if !ok || len(vals) == 0 {
		return nil
	}
	var b []byte
	if len(vals) == 1 {
		b = jsjson.AppendString(nil, vals[0])
	} else {
		b = append(b, '[')
		for i, v := range vals {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsjson.AppendString(b, v)
		}
		b = append(b, ']')
	}
	v, err := jsjson.Parse(b)
	if err != nil {
		return nil
	}
	return v
}
