package edge

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/testenv"
)

// status builds a public status payload.
func status(id, author, username, acct, lang string, mentions []string, extra string) string {
	var ms []string
	for _, m := range mentions {
		ms = append(ms, `{"id":"`+m+`"}`)
	}
	l := `null`
	if lang != "" {
		l = `"` + lang + `"`
	}
	return `{"id":"` + id + `","language":` + l + `,"content":"<p>status ` + id + `</p>","account":{"id":"` + author +
		`","username":"` + username + `","acct":"` + acct + `"},"mentions":[` + strings.Join(ms, ",") + `],"media_attachments":[]` + extra + `}`
}

func update(payload string) string { return `{"event":"update","payload":` + payload + `}` }

const (
	bob   = "109000000000000002"
	carol = "109000000000000003"
	dave  = "109000000000000004"
	erin  = "109000000000000005"
	mall  = "109000000000000008"
	ivan  = "109000000000000010"
)

// Relationship, domain and language rules, checked by
// publishing statuses that must be dropped, then one that must pass: only
// the passing ones arrive, in order.
func TestFilterRules(t *testing.T) {
	tests := []struct {
		name    string
		token   string
		payload string
		deliver bool
	}{
		{"viewer blocks author", "alice-read-token", status("1", carol, "carol", "carol", "en", nil, ""), false},
		{"viewer mutes author", "alice-read-token", status("2", dave, "dave", "dave@remote.example", "en", nil, ""), false},
		{"viewer blocks author's domain", "alice-read-token", status("3", erin, "erin", "erin@blocked.example", "en", nil, ""), false},
		{"author blocks viewer", "alice-read-token", status("4", mall, "mallory", "mallory", "en", nil, ""), false},
		{"mentions a blocked account", "alice-read-token", status("5", bob, "bob", "bob", "en", []string{carol}, ""), false},
		{"mentions a muted account", "alice-read-token", status("6", bob, "bob", "bob", "en", []string{dave}, ""), false},
		{"mentions an account that blocks the viewer", "alice-read-token", status("7", bob, "bob", "bob", "en", []string{mall}, ""), true},
		{"domain match is case-sensitive", "alice-read-token", status("8", ivan, "erin", "erin@Blocked.example", "en", nil, ""), true},
		{"plain remote author", "alice-read-token", status("9", ivan, "ivan", "ivan@remote.example", "en", nil, ""), true},
		{"chosen language matches", "bob-read-token", status("10", carol, "carol", "carol", "en", nil, ""), true},
		{"other language", "bob-read-token", status("11", carol, "carol", "carol", "de", nil, ""), false},
		{"null language with chosen languages", "bob-read-token", status("12", carol, "carol", "carol", "", nil, ""), false},
		{"missing mentions", "alice-read-token", `{"id":"14","account":{"id":"` + bob + `","username":"bob","acct":"bob"},"media_attachments":[]}`, false},
		{"missing account", "alice-read-token", `{"id":"15","mentions":[],"media_attachments":[]}`, false},
		{"mentions of the wrong type", "alice-read-token", `{"id":"16","account":{"id":"` + bob + `","username":"bob","acct":"bob"},"mentions":"x","media_attachments":[]}`, false},
		{"non-numeric account id", "alice-read-token", status("17", "abc", "bob", "bob", "en", nil, ""), false},
	}
	for _, tr := range []string{"sse", "ws"} {
		t.Run(tr, func(t *testing.T) {
			h := newHarness(t)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					recv := h.publicClient(t, tr, tc.token, "public")
					pub := channel.Public(channel.ScopeAll, false)
					h.publish(pub, update(tc.payload))
					sentinel := status("999", bob, "bob", "bob", "en", nil, "")
					h.publish(pub, update(sentinel))
					first := recv()
					want := strings.TrimSuffix(tc.payload, "}") + `,"filtered":[]}`
					if tc.deliver {
						if first != want {
							t.Fatalf("got %s\nwant %s", first, want)
						}
						first = recv()
					}
					if wantS := strings.TrimSuffix(sentinel, "}") + `,"filtered":[]}`; first != wantS {
						t.Fatalf("got %s, want the sentinel (status must be dropped: %v)", first, !tc.deliver)
					}
				})
			}
		})
	}
}

// publicClient subscribes one client to a filtered stream and returns a
// function yielding each delivered payload.
func (h *harness) publicClient(t *testing.T, transport, token, stream string) func() string {
	t.Helper()
	if transport == "sse" {
		path := "/api/v1/streaming/" + strings.ReplaceAll(stream, ":", "/")
		c := h.sse(path, token)
		return func() string {
			_, data := c.event()
			return data
		}
	}
	c, _, err := h.ws("/api/v1/streaming?access_token="+token, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := wsChannels(h, stream)
	sendJSON(t, c, `{"type":"subscribe","stream":"`+stream+`"}`)
	h.waitChannels("websocket", stream, before+1)
	t.Cleanup(func() {
		// Wait for the edge to see the close, so the next client's count
		// starts from a settled gauge.
		c.Close()
		h.waitChannels("websocket", stream, before)
	})
	return func() string {
		var f struct {
			Payload string `json:"payload"`
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := c.ReadJSON(&f); err != nil {
			t.Fatalf("read: %v", err)
		}
		return f.Payload
	}
}

func wsChannels(h *harness, stream string) float64 {
	return testutil.ToFloat64(h.edge.metrics.connectedChannels.WithLabelValues("websocket", stream))
}

// Keyword filters: results appended as "filtered", goldens
// from Mastodon's observed output.
func TestKeywordFilters(t *testing.T) {
	tests := []struct {
		name, token, content, extra, golden string
	}{
		{"warn whole word", "alice-read-token", "a spoiler here", "", "warn.golden"},
		{"whole word does not match inside a word", "alice-read-token", "spoilers ahead", "", "none.golden"},
		{"hide, not whole word, case-insensitive", "alice-read-token", "xHIDEMEx", "", "hide.golden"},
		{"expired filter ignored", "alice-read-token", "oldnews", "", "none.golden"},
		{"blur has no filter_action", "heidi-read-token", "blurme now", "", "blur.golden"},
		{"filter context is not evaluated", "ken-read-token", "foo and later", "", "ken.golden"},
	}
	for _, tr := range []string{"sse", "ws"} {
		t.Run(tr, func(t *testing.T) {
			h := newHarness(t)
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					recv := h.publicClient(t, tr, tc.token, "public:local")
					p := `{"id":"1","language":"en","spoiler_text":"","content":"<p>` + tc.content + `</p>","account":{"id":"` + bob + `","username":"bob","acct":"bob"},"mentions":[],"media_attachments":[]}`
					h.publish(channel.Public(channel.ScopeLocal, false), update(p))
					want, err := os.ReadFile("testdata/filtered/" + tc.golden)
					if err != nil {
						t.Fatal(err)
					}
					if got := recv(); got != strings.TrimSuffix(p, "}")+`,"filtered":`+strings.TrimSpace(string(want))+`}` {
						t.Fatalf("got %s\nwant filtered %s", got, want)
					}
				})
			}
		})
	}
}

// A payload that already has "filtered" is sent unchanged.
func TestPayloadWithFilteredUntouched(t *testing.T) {
	h := newHarness(t)
	c := h.sse("/api/v1/streaming/public", "alice-read-token")
	p := status("1", bob, "bob", "bob", "en", nil, `,"filtered":null`)
	h.publish(channel.Public(channel.ScopeAll, false), update(p))
	if _, data := c.event(); data != p {
		t.Fatalf("got %s, want %s", data, p)
	}
}

// filters_changed on the system channel makes the next status reload the
// connection's filters.
func TestFiltersChangedReloads(t *testing.T) {
	h := newHarness(t)
	c := h.sse("/api/v1/streaming/public", "alice-read-token")
	pub := channel.Public(channel.ScopeAll, false)
	p := status("1", bob, "bob", "bob", "en", nil, "")
	h.publish(pub, update(strings.Replace(p, "status 1", "newword", 1)))
	if _, data := c.event(); !strings.HasSuffix(data, `"filtered":[]}`) {
		t.Fatalf("got %s", data)
	}
	mustExec(t, h, `INSERT INTO custom_filters (id, account_id, phrase, context, action, created_at, updated_at) VALUES (7100, 109000000000000001, 'New', '{public}', 0, now(), now())`)
	mustExec(t, h, `INSERT INTO custom_filter_keywords (custom_filter_id, keyword, whole_word, created_at, updated_at) VALUES (7100, 'newword', true, now(), now())`)
	// Cached: still nothing until filters_changed.
	h.publish(pub, update(strings.Replace(p, "status 1", "newword", 1)))
	if _, data := c.event(); !strings.HasSuffix(data, `"filtered":[]}`) {
		t.Fatalf("cache not used: %s", data)
	}
	h.publish(channel.System(testenv.Alice), `{"event":"filters_changed"}`)
	h.publish(pub, update(strings.Replace(p, "status 1", "newword", 1)))
	if _, data := c.event(); !strings.Contains(data, `"title":"New"`) {
		t.Fatalf("filters not reloaded: %s", data)
	}
}

func mustExec(t *testing.T, h *harness, sql string) {
	t.Helper()
	if _, err := h.pool.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

// Feed-access settings: remote_live_feed_access disabled drops
// remote statuses for a normal user, not for a view_feeds user; the
// decision is taken at subscribe time.
func TestFeedAccess(t *testing.T) {
	h := newHarness(t)
	mustExec(t, h, `INSERT INTO settings (var, value, created_at, updated_at) VALUES ('remote_live_feed_access', E'--- disabled\n', now(), now()), ('local_topic_feed_access', E'--- disabled\n', now(), now())`)
	alice := h.publicClient(t, "sse", "alice-read-token", "public")
	heidi := h.publicClient(t, "ws", "heidi-read-token", "public")
	pub := channel.Public(channel.ScopeAll, false)
	remote := status("1", ivan, "ivan", "ivan@remote.example", "en", nil, "")
	local := status("2", bob, "bob", "bob", "en", nil, "")
	h.publish(pub, update(remote))
	h.publish(pub, update(local))
	if got := alice(); !strings.Contains(got, `"id":"2"`) {
		t.Fatalf("alice got %s, want only the local status", got)
	}
	if got := heidi(); !strings.Contains(got, `"id":"1"`) {
		t.Fatalf("heidi got %s, want the remote status", got)
	}
	// Topic feeds: local hashtag statuses blocked for alice.
	c := h.sse("/api/v1/streaming/hashtag?tag=go", "alice-read-token")
	tag := channel.Hashtag("go", false)
	h.publish(tag, update(local))
	h.publish(tag, update(remote))
	if _, data := c.event(); !strings.Contains(data, `"id":"1"`) {
		t.Fatalf("got %s, want only the remote status", data)
	}
}

// An empty chosen_languages array drops every status; other events pass.
func TestEmptyChosenLanguages(t *testing.T) {
	h := newHarness(t)
	c := h.sse("/api/v1/streaming/public", "judy-read-token")
	h.publish(channel.Public(channel.ScopeAll, false), update(status("1", bob, "bob", "bob", "en", nil, "")))
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := testutil.ToFloat64(h.edge.metrics.filterJobs); n != 1 {
			return fmt.Errorf("%v statuses filtered", n)
		}
		return nil
	})
	h.publish(channel.Public(channel.ScopeAll, false), `{"event":"delete","payload":"1"}`)
	if name, _ := c.event(); name != "delete" {
		t.Fatalf("got %s", name)
	}
}

// Non-status events on filtered streams pass through untouched.
func TestFilteredStreamPassThrough(t *testing.T) {
	h := newHarness(t)
	c := h.sse("/api/v1/streaming/public", "judy-read-token")
	h.publish(channel.Public(channel.ScopeAll, false), `{"event":"delete","payload":"5"}`)
	if name, data := c.event(); name != "delete" || data != "5" {
		t.Fatalf("got %s %s", name, data)
	}
}
