package launch

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spillway/spillway/edge"
	"github.com/spillway/spillway/shared/mastodonenv"
	"github.com/spillway/spillway/shared/testenv"
)

// The limits' documented defaults are edge.DefaultLimits, and unset
// variables give them.
func TestLimitDefaults(t *testing.T) {
	s, err := Load(mastodonenv.MapEnv(nil), t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	if s.Limits != edge.DefaultLimits() {
		t.Fatalf("unset: %+v, want %+v", s.Limits, edge.DefaultLimits())
	}
	if got := s.TrustedProxies.String(); got != "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7" {
		t.Fatalf("trusted proxies %s", got)
	}
	documented := map[string]string{}
	for _, v := range limitVariables {
		documented[v.Name] = v.Default
	}
	s, err = Load(mastodonenv.MapEnv(documented), t.TempDir(), true)
	if err != nil || s.Limits != edge.DefaultLimits() {
		t.Fatalf("documented defaults give %+v (%v), want %+v", s.Limits, err, edge.DefaultLimits())
	}
}

func TestLimitVariables(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want func(edge.Limits) bool
	}{
		{"zero is no limit", map[string]string{"STREAMING_MAX_CONNECTIONS_PER_IP": "0", "STREAMING_CONNECT_RATE_PER_IP": "0", "STREAMING_CONNECT_BURST_PER_IP": "0",
			"STREAMING_MAX_CONNECTIONS_PER_ACCOUNT": "0", "STREAMING_MAX_STREAMS_PER_WEBSOCKET": "0", "STREAMING_SUBSCRIBE_RATE": "0"},
			func(l edge.Limits) bool { return l == edge.Limits{SubscribeBurst: 50} }},
		{"fractional rates", map[string]string{"STREAMING_CONNECT_RATE_PER_IP": "0.5", "STREAMING_SUBSCRIBE_RATE": "2.5", "STREAMING_SUBSCRIBE_BURST": "3"},
			func(l edge.Limits) bool {
				return l.ConnectRate == 0.5 && l.SubscribeRate == 2.5 && l.SubscribeBurst == 3
			}},
		{"counts", map[string]string{"STREAMING_MAX_CONNECTIONS_PER_IP": "7", "STREAMING_MAX_CONNECTIONS_PER_ACCOUNT": "8", "STREAMING_MAX_STREAMS_PER_WEBSOCKET": "9"},
			func(l edge.Limits) bool {
				return l.ConnectionsPerIP == 7 && l.ConnectionsPerAccount == 8 && l.StreamsPerSocket == 9
			}},
	}
	for _, tc := range tests {
		s, err := Load(mastodonenv.MapEnv(tc.env), t.TempDir(), true)
		if err != nil || !tc.want(s.Limits) {
			t.Errorf("%s: %+v, %v", tc.name, s.Limits, err)
		}
	}
	s, err := Load(mastodonenv.MapEnv(map[string]string{"TRUSTED_PROXY_IP": "10.0.0.0/255.0.0.0 2001:db8::1"}), t.TempDir(), true)
	if err != nil || s.TrustedProxies.String() != "10.0.0.0/8,2001:db8::1/128" {
		t.Errorf("TRUSTED_PROXY_IP: %v, %v", s.TrustedProxies, err)
	}
}

// A bad value stops the edge at start with an error naming the variable.
func TestBadLimitVariables(t *testing.T) {
	tests := []struct{ name, value, want string }{
		{"TRUSTED_PROXY_IP", "nope", `"nope"`},
		{"TRUSTED_PROXY_IP", "0.0.0.0/0", "invalid range"},
		{"TRUSTED_PROXY_IP", ",", "lists no address"},
		{"STREAMING_MAX_CONNECTIONS_PER_IP", "-1", "non-negative integer"},
		{"STREAMING_MAX_CONNECTIONS_PER_ACCOUNT", "many", "non-negative integer"},
		{"STREAMING_MAX_STREAMS_PER_WEBSOCKET", "1.5", "non-negative integer"},
		{"STREAMING_CONNECT_RATE_PER_IP", "fast", "non-negative number"},
		{"STREAMING_CONNECT_RATE_PER_IP", "-2", "non-negative number"},
		{"STREAMING_SUBSCRIBE_RATE", "Inf", "non-negative number"},
		{"STREAMING_SUBSCRIBE_RATE", "NaN", "non-negative number"},
		{"STREAMING_CONNECT_BURST_PER_IP", "0", "at least 1"},
		{"STREAMING_SUBSCRIBE_BURST", "0", "at least 1"},
	}
	for _, tc := range tests {
		err := Edge(context.Background(), []string{"edge", "-mastodon-root", t.TempDir()}, mastodonenv.MapEnv(map[string]string{tc.name: tc.value}), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.name) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: %v, want an error naming it and saying %q", tc.name, tc.value, err, tc.want)
		}
	}
	// The broker reads none of them.
	_, err := Load(mastodonenv.MapEnv(map[string]string{"TRUSTED_PROXY_IP": "nope"}), t.TempDir(), false)
	if err != nil {
		t.Errorf("broker settings: %v", err)
	}
}

func TestHelpListsLimitVariables(t *testing.T) {
	var out strings.Builder
	_ = Edge(context.Background(), []string{"edge", "-help"}, mastodonenv.MapEnv(nil), &out, &out)
	for _, v := range limitVariables {
		if !strings.Contains(out.String(), v.Name) {
			t.Errorf("help lacks %s", v.Name)
		}
	}
	if !strings.Contains(out.String(), "TRUSTED_PROXY_IP") {
		t.Error("help lacks TRUSTED_PROXY_IP")
	}
}

// The edge command applies TRUSTED_PROXY_IP and the limits: through the
// default trust, X-Forwarded-For from loopback names the client, whose
// connections STREAMING_MAX_CONNECTIONS_PER_IP counts; the connection log
// names it; without trust in loopback the header is ignored.
func TestEdgeAppliesClientLimits(t *testing.T) {
	_, ns := testenv.Redis(t)
	get := func(addr, xff string) (*http.Response, error) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/streaming/public/local", nil)
		req.Header.Set("Authorization", "Bearer "+testenv.AliceReadToken)
		req.Header.Set("X-Forwarded-For", xff)
		return http.DefaultClient.Do(req)
	}
	for _, tc := range []struct {
		trust  string
		remote string // the address the log names
		second int    // status of a second connection with another X-Forwarded-For
	}{
		{"", "203.0.113.7", 200},
		{"192.0.2.1", "127.0.0.1", 429},
	} {
		t.Run("trust="+tc.trust, func(t *testing.T) {
			env := baseEnv(t, ns)
			env["STREAMING_MAX_CONNECTIONS_PER_IP"] = "1"
			if tc.trust != "" {
				env["TRUSTED_PROXY_IP"] = tc.trust
			}
			log := command(t, Edge, []string{"edge", "-all-in-one", "-mastodon-root", t.TempDir()}, env)
			addr := log.await(t, listeningRe)
			first, err := get(addr, "203.0.113.7")
			if err != nil {
				t.Fatal(err)
			}
			defer first.Body.Close()
			if first.StatusCode != 200 {
				t.Fatalf("first: %d", first.StatusCode)
			}
			again, err := get(addr, "203.0.113.7")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(again.Body)
			again.Body.Close()
			if again.StatusCode != 429 || string(body) != `{"error":"Too many connections from this address"}` {
				t.Fatalf("same client again: %d %s", again.StatusCode, body)
			}
			other, err := get(addr, "198.51.100.8")
			if err != nil {
				t.Fatal(err)
			}
			other.Body.Close()
			if other.StatusCode != tc.second {
				t.Fatalf("another client: %d, want %d", other.StatusCode, tc.second)
			}
			testenv.Eventually(t, 10*time.Second, func() error {
				for line := range strings.SplitSeq(log.String(), "\n") {
					var m map[string]any
					if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "connection opened" && m["remote_addr"] == tc.remote {
						return nil
					}
				}
				return io.ErrUnexpectedEOF
			})
		})
	}
}
