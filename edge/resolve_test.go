package edge

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spillway/spillway/edge/jsjson"
	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/testenv"
)

func jsonValue(t *testing.T, s string) *jsjson.Value {
	t.Helper()
	v, err := jsjson.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestHashtagChannel(t *testing.T) {
	str := func(s string) string { return string(jsjson.AppendString(nil, s)) }
	// 163 three-byte letters fill a local hashtag channel exactly; U+FDFA
	// is 3 bytes that NFKC turns into 15 letters (30 bytes).
	tests := []struct {
		tag   string // JSON; "" means absent
		local bool
		want  channel.Name
		err   *apiError
	}{
		{``, false, "", errMissingTag},
		{`""`, false, "", errMissingTag},
		{`0`, false, "", errMissingTag},
		{`5`, false, "", errUnexpected},
		{`["a","b"]`, false, "", errUnexpected},
		{`"Café"`, true, "timeline:hashtag:cafe:local", nil},
		{`"😀"`, false, "timeline:hashtag:", nil},
		{str(strings.Repeat("日", 163)), true, channel.Hashtag(strings.Repeat("日", 163), true), nil},
		{str(strings.Repeat("日", 164)), true, "", errTagTooLong},
		{str(strings.Repeat("a", 5000)), false, "", errTagTooLong},
		{str(strings.Repeat("#", channel.MaxNameLen) + "a"), false, "", errTagTooLong}, // raw bound, before normalising
		{str(strings.Repeat("\uFDFA", 20)), false, "", errTagTooLong},                  // 60 bytes raw, 600 normalised
		{str(strings.Repeat("\uFDFA", 16)), false, channel.Hashtag(strings.Repeat("\uFDFA", 16), false), nil},
	}
	for _, tc := range tests {
		var v *jsjson.Value
		if tc.tag != "" {
			v = jsonValue(t, tc.tag)
		}
		got, err := hashtagChannel(v, tc.local)
		if got != tc.want || err != tc.err {
			t.Errorf("hashtagChannel(%.40s, %v) = %.60q, %v; want %.60q, %v", tc.tag, tc.local, got, err, tc.want, tc.err)
		}
		if err == nil && channel.CheckName(got) != nil {
			t.Errorf("hashtagChannel(%.40s) accepted %d bytes", tc.tag, len(got))
		}
	}
}

func TestListChannel(t *testing.T) {
	longest := strings.Repeat("0", channel.MaxNameLen-len("timeline:list:")-4) + "5001"
	tests := []struct {
		list string // JSON; "" means absent
		id   string
		err  *apiError
	}{
		{``, "", errMissingList},
		{`""`, "", errMissingList},
		{`[]`, "", errMissingList},
		{`"5001"`, "5001", nil},
		{`5001`, "5001", nil},
		{`1e21`, "1e+21", nil},
		{`{"a":1}`, "", errListForbidden},
		{`["5001"]`, "", errListForbidden},
		{`"` + longest + `"`, longest, nil},
		{`"0` + longest + `"`, "", errListForbidden},
		{`"` + strings.Repeat("0", 5000) + `5001"`, "", errListForbidden},
	}
	for _, tc := range tests {
		var v *jsjson.Value
		if tc.list != "" {
			v = jsonValue(t, tc.list)
		}
		id, name, err := listChannel(v)
		if id != tc.id || err != tc.err || err == nil && name != channel.List(tc.id) {
			t.Errorf("listChannel(%.40s) = %.40q, %.40q, %v; want %.40q, %v", tc.list, id, name, err, tc.id, tc.err)
		}
	}
}

// listCountingStore counts list ownership queries reaching Postgres.
type listCountingStore struct {
	Store
	lists atomic.Int64
}

func (s *listCountingStore) OwnsList(ctx context.Context, list string, accountID int64) (bool, error) {
	s.lists.Add(1)
	return s.Store.OwnsList(ctx, list, accountID)
}

// Over-long tags and list ids get Mastodon-style errors on SSE, in a
// WebSocket upgrade's query and in subscribe messages, a long list id
// without a Postgres query; the edge's NATS connection is never touched,
// and the longest accepted tag streams normally.
func TestOversizedChannelParams(t *testing.T) {
	var cs *listCountingStore
	h := newHarness(t, func(c *Config) { cs = &listCountingStore{Store: c.Store}; c.Store = cs })
	longTag := strings.Repeat("a", 5000)
	longList := strings.Repeat("0", 5000) + "5001"
	const tagErr = `{"error":"Tag name parameter is too long"}`
	const listErr = `{"error":"Not authorized to stream this list"}`
	token := http.Header{"Authorization": {"Bearer " + testenv.AliceReadToken}}
	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/api/v1/streaming/hashtag?tag=" + longTag, tagErr, 400},
		{"/api/v1/streaming/hashtag/local?tag=" + url.QueryEscape(strings.Repeat("\uFDFA", 20)), tagErr, 400},
		{"/api/v1/streaming/list?list=" + longList, listErr, 401},
	} {
		resp, body := h.get("GET", tc.path, token)
		if resp.StatusCode != tc.status || body != tc.body || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %.50s…: %d %q %q, want %d %q", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status, tc.body)
		}
	}

	q := url.Values{"stream": {"hashtag"}, "tag": {longTag}, "access_token": {testenv.AliceReadToken}}
	c, _, err := h.ws("/api/v1/streaming?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	expect := func(what, want string) {
		t.Helper()
		_, m, err := c.ReadMessage()
		if err != nil || string(m) != want {
			t.Fatalf("%s: %q %v, want %q", what, m, err, want)
		}
	}
	expect("upgrade with a long tag", `{"error":"Tag name parameter is too long","status":400}`)
	for _, tc := range []struct{ msg, want string }{
		{`{"type":"subscribe","stream":"hashtag:local","tag":"` + longTag + `"}`, `{"error":"Tag name parameter is too long","status":400}`},
		{`{"type":"subscribe","stream":["list"],"list":"` + longList + `"}`, `{"error":"Not authorized to stream this list","status":401}`},
		{`{"type":"unsubscribe","stream":"hashtag","tag":"` + longTag + `"}`, `{"error":"Error unsubscribing from channel"}`},
	} {
		if err := c.WriteMessage(1, []byte(tc.msg)); err != nil {
			t.Fatal(err)
		}
		expect(tc.msg[:40], tc.want)
	}
	if n := cs.lists.Load(); n != 0 {
		t.Errorf("%d list ownership queries for over-long ids", n)
	}
	if got := h.edge.Subscriptions(); got != 2 {
		t.Errorf("%d NATS subscriptions, want the 2 system wildcards", got)
	}
	if !h.nc.IsConnected() {
		t.Fatal("the edge's NATS connection was closed")
	}

	// The longest tag accepted streams like any other.
	tag := strings.Repeat("日", 163)
	sse := h.sse("/api/v1/streaming/hashtag/local?tag="+url.QueryEscape(tag), testenv.AliceReadToken)
	h.publish(channel.Hashtag(tag, true), `{"event":"delete","payload":"1"}`)
	if ev, data := sse.event(); ev != "delete" || data != "1" {
		t.Fatalf("got %q %q", ev, data)
	}
}

// The hub refuses a name too long for a subject whatever resolved it,
// with an error rather than a subscription NATS would close the
// connection over.
func TestHubRefusesNamesTooLong(t *testing.T) {
	h := newHarness(t)
	name := channel.Name("timeline:hashtag:" + strings.Repeat("a", channel.MaxNameLen))
	created, err := h.edge.hub.subscribe(name, &subscription{})
	if created || !errors.Is(err, channel.ErrNameTooLong) {
		t.Fatalf("subscribe = %v, %v; want ErrNameTooLong", created, err)
	}
	if err := h.nc.Flush(); err != nil || !h.nc.IsConnected() {
		t.Fatalf("NATS connection: %v", err)
	}
	if got := h.edge.Subscriptions(); got != 2 {
		t.Errorf("%d NATS subscriptions, want the 2 system wildcards", got)
	}
}
