package readiness_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spillway/spillway/shared/readiness"
)

// logLines collects JSON log lines.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// take returns the lines logged since the last call, decoded.
func (l *logLines) take(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	l.buf.Reset()
	return out
}

func TestObserveLogsEachChange(t *testing.T) {
	var logs logLines
	set := readiness.NewSet(slog.New(slog.NewJSONHandler(&logs, nil)))
	d := set.Add("postgres", "postgres://mastodon@db:5432/mastodon")
	if st := d.Status(); st.State != readiness.Unknown || st.Since.IsZero() {
		t.Fatalf("new dependency: %+v", st)
	}
	refused := errors.New("dial tcp 10.0.0.9:5432: connect: connection refused")
	steps := []struct {
		name    string
		err     error
		state   readiness.State
		level   string // "" = no line
		msg     string
		errText string
	}{
		{"first failure", refused, readiness.Down, "WARN", "postgres unreachable", refused.Error()},
		{"still down", errors.New("again"), readiness.Down, "", "", ""},
		{"back", nil, readiness.Up, "INFO", "postgres back", ""},
		{"still up", nil, readiness.Up, "", "", ""},
		{"lost", refused, readiness.Down, "WARN", "postgres lost", refused.Error()},
		{"back again", nil, readiness.Up, "INFO", "postgres back", ""},
	}
	for _, s := range steps {
		before := d.Status()
		d.Observe(s.err)
		st := d.Status()
		if st.State != s.state {
			t.Fatalf("%s: state %s, want %s", s.name, st.State, s.state)
		}
		changed := before.State != st.State
		if changed && st.Since.Before(before.Since) {
			t.Errorf("%s: since %v went back from %v", s.name, st.Since, before.Since)
		}
		if !changed && !st.Since.Equal(before.Since) {
			t.Errorf("%s: since moved without a change", s.name)
		}
		if d.Up() != (s.state == readiness.Up) {
			t.Errorf("%s: Up() = %v", s.name, d.Up())
		}
		lines := logs.take(t)
		if s.level == "" {
			if len(lines) != 0 {
				t.Errorf("%s: logged %v, want nothing", s.name, lines)
			}
			continue
		}
		if len(lines) != 1 {
			t.Fatalf("%s: logged %v, want one line", s.name, lines)
		}
		l := lines[0]
		if l["level"] != s.level || l["msg"] != s.msg || l["dependency"] != "postgres" || l["address"] != "postgres://mastodon@db:5432/mastodon" {
			t.Errorf("%s: line %v", s.name, l)
		}
		if s.errText != "" && l["error"] != s.errText {
			t.Errorf("%s: error %v, want %q", s.name, l["error"], s.errText)
		}
		if s.msg == "postgres back" && l["down_for"] == nil {
			t.Errorf("%s: no down_for in %v", s.name, l)
		}
	}
	if d.Observed().IsZero() || time.Since(d.Observed()) > time.Minute {
		t.Errorf("Observed() = %v", d.Observed())
	}

	fresh := set.Add("nats", "nats://broker:4222")
	fresh.Observe(nil)
	if l := logs.take(t); len(l) != 1 || l[0]["msg"] != "nats connected" || l[0]["level"] != "INFO" {
		t.Errorf("first success logged %v", l)
	}
	if set.Add("nats", "other") != fresh {
		t.Error("Add with a known name made a second dependency")
	}
}

func TestReport(t *testing.T) {
	set := readiness.NewSet(nil)
	nats := set.Add("nats", "nats://broker:4222")
	pg := set.Add("postgres", "db:5432")

	check := func(wantReady bool, wantStatus int, wantStates map[string]readiness.State) {
		t.Helper()
		rec := httptest.NewRecorder()
		set.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != wantStatus {
			t.Errorf("status %d, want %d", rec.Code, wantStatus)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var got struct {
			Ready        bool `json:"ready"`
			Dependencies map[string]struct {
				State   string `json:"state"`
				Since   string `json:"since"`
				Address string `json:"address"`
				Error   string `json:"error"`
			} `json:"dependencies"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%v: %s", err, rec.Body)
		}
		if got.Ready != wantReady || len(got.Dependencies) != len(wantStates) {
			t.Errorf("report %s", rec.Body)
		}
		for name, want := range wantStates {
			dep := got.Dependencies[name]
			if dep.State != string(want) {
				t.Errorf("%s: state %q, want %q", name, dep.State, want)
			}
			if _, err := time.Parse(time.RFC3339, dep.Since); err != nil {
				t.Errorf("%s: since %q is not RFC 3339: %v", name, dep.Since, err)
			}
			if (dep.Error != "") != (want == readiness.Down) {
				t.Errorf("%s: error %q in state %s", name, dep.Error, dep.State)
			}
		}
	}
	check(false, http.StatusServiceUnavailable, map[string]readiness.State{"nats": readiness.Unknown, "postgres": readiness.Unknown})
	nats.Observe(nil)
	check(false, http.StatusServiceUnavailable, map[string]readiness.State{"nats": readiness.Up, "postgres": readiness.Unknown})
	pg.Observe(nil)
	check(true, http.StatusOK, map[string]readiness.State{"nats": readiness.Up, "postgres": readiness.Up})
	nats.Observe(errors.New("nats: connection closed"))
	check(false, http.StatusServiceUnavailable, map[string]readiness.State{"nats": readiness.Down, "postgres": readiness.Up})
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:secret@nats-1:4222", "nats://user:xxxxx@nats-1:4222"},
		{"nats://s3cr3t-token@nats-1:4222", "nats://xxxxx@nats-1:4222"},
		{"nats://a:p1@n1:4222, nats://n2:4222", "nats://a:xxxxx@n1:4222,nats://n2:4222"},
		{"redis://:hunter2@cache:6379/0", "redis://xxxxx@cache:6379/0"},
		{"rediss://default:p%40ss@cache:6380/1?dial_timeout=3s", "rediss://default:xxxxx@cache:6380/1"},
		{"redis://cache:6379/0?password=hunter2", "redis://cache:6379/0"},
		{"user:pw@10.0.0.5:4222", "user:xxxxx@10.0.0.5:4222"},
		{"10.0.0.5:4222", "10.0.0.5:4222"},
		{"unix:///run/redis.sock", "unix:///run/redis.sock"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := readiness.RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Whatever the URL around it, a password or token in the user part never
// survives redaction, and the host does.
func FuzzRedactURL(f *testing.F) {
	f.Add("nats", "user", "secret", "host:4222", "/0", "a=b")
	f.Add("redis", "", "hunter2", "cache", "", "")
	f.Add("", "tok", "", "10.0.0.1:1", "/x/y", "password=z")
	f.Fuzz(func(t *testing.T, scheme, user, password, host, path, query string) {
		for _, s := range []string{scheme, user, password, host, path, query} {
			if strings.ContainsAny(s, "@,?#") {
				t.Skip()
			}
		}
		if strings.Contains(scheme, ":") || strings.ContainsAny(scheme+user+password+host, "/") || strings.Contains(user, ":") ||
			(path != "" && path[0] != '/') || host == "" {
			t.Skip()
		}
		secret := password
		userinfo := user + ":" + password
		if password == "" {
			secret, userinfo = user, user // a lone user part is a token
		}
		if len(secret) < 4 || strings.Contains(scheme+"://"+host+path+"xxxxx", secret) || (password != "" && strings.Contains(user, secret)) {
			t.Skip()
		}
		raw := host + path
		if scheme != "" {
			raw = scheme + "://" + userinfo + "@" + raw
		} else {
			raw = userinfo + "@" + raw
		}
		if query != "" {
			raw += "?" + query
		}
		got := readiness.RedactURL(raw)
		if strings.Contains(got, secret) {
			t.Fatalf("RedactURL(%q) = %q keeps the secret %q", raw, got, secret)
		}
		if !strings.Contains(got, host+path) {
			t.Fatalf("RedactURL(%q) = %q lost the address %q", raw, got, host+path)
		}
	})
}
