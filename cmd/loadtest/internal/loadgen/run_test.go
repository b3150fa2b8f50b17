package loadgen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spillway/spillway/cmd/loadtest/internal/fakestream"
	"github.com/spillway/spillway/cmd/loadtest/internal/loadgen"
)

// hub feeds published messages straight into the fake server, standing in
// for Redis.
type hub struct{ s *fakestream.Server }

func (h hub) Publish(_ context.Context, msgs []loadgen.Message) error {
	for _, m := range msgs {
		h.s.Publish(m.Channel, m.Data)
	}
	return nil
}

const ticks = 20

func baseConfig(t *testing.T, srv *fakestream.Server) loadgen.Config {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return loadgen.Config{
		BaseURL: u, Clients: 12, SSERatio: 0.5,
		Streams:     []loadgen.Stream{{Name: "public", Weight: 1}},
		ConnectRate: 1000, ConnectTimeout: 10 * time.Second,
		Rate: 500, PayloadSize: 3500,
		Duration: 30 * time.Second, MaxTicks: ticks,
		ProbeTimeout: 20 * time.Second, ProbeInterval: 10 * time.Millisecond,
		Drain: 2 * time.Second, // generous: faults make every window wait it out
	}
}

// mangle drops every 5th event for SSE clients, and for WebSocket clients
// duplicates every 7th and swaps events 10 and 11.
func mangle(c fakestream.Conn, seq uint64) fakestream.Action {
	switch {
	case c.SSE && seq%5 == 0:
		return fakestream.Drop
	case !c.SSE && seq%7 == 0:
		return fakestream.Duplicate
	case !c.SSE && seq == 10:
		return fakestream.Hold
	}
	return fakestream.Deliver
}

func TestRunDetectsInjectedFaults(t *testing.T) {
	accounts := map[string]string{"good-a": "101", "good-b": "102"}
	tests := []struct {
		name   string
		mutate func(*loadgen.Config)
		// wantFailed is the number of clients the fake refuses.
		wantFailed int
		failReason string
	}{
		{
			name:   "public, stream in URL",
			mutate: func(*loadgen.Config) {},
		},
		{
			name: "bad tokens refused with 401",
			mutate: func(c *loadgen.Config) {
				c.Tokens = []loadgen.Token{{Value: "good-a"}, {Value: "good-b"}, {Value: "bad"}}
			},
			wantFailed: 4, failReason: "http 401",
		},
		{
			name: "user and hashtag streams, subscribe messages, source addresses",
			mutate: func(c *loadgen.Config) {
				c.Clients = 16
				c.Streams = []loadgen.Stream{{Name: "user", Weight: 1}, {Name: "hashtag", Tag: "Cats", Weight: 1}}
				c.Tokens = []loadgen.Token{{Value: "good-a", AccountID: "101"}, {Value: "good-b", AccountID: "102"}}
				c.WSSubscribe = true
				c.SourceIPs = []net.IP{net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 3)}
			},
		},
		{
			name: "refused WebSocket subscription is a failure",
			mutate: func(c *loadgen.Config) {
				c.Streams = []loadgen.Stream{{Name: "public", Weight: 1}, {Name: "hashtag", Tag: "forbidden", Weight: 1}}
				c.WSSubscribe = true
			},
			// Half the clients use the forbidden tag; SSE gets 401, WS an error frame.
			wantFailed: 6,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakestream.New(fakestream.Options{Tokens: accounts, Inject: mangle})
			defer srv.Close()
			cfg := baseConfig(t, srv)
			cfg.Tokens = []loadgen.Token{{Value: "good-a"}, {Value: "good-b"}}
			var progress bytes.Buffer
			cfg.Progress, cfg.ProgressInterval = &progress, 10*time.Millisecond
			tt.mutate(&cfg)

			rep, err := loadgen.Run(t.Context(), cfg, hub{srv})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Steps) != 1 {
				t.Fatalf("%d steps", len(rep.Steps))
			}
			st := rep.Steps[0]
			sseOK, wsOK, rejected, ips := srv.Stats()
			if st.Failed != tt.wantFailed || rejected != tt.wantFailed {
				t.Fatalf("failed %d (fake rejected %d), want %d: %v", st.Failed, rejected, tt.wantFailed, st.FailReasons)
			}
			if tt.failReason != "" && st.FailReasons[tt.failReason] != tt.wantFailed {
				t.Fatalf("fail reasons %v", st.FailReasons)
			}
			if st.Connected+st.Failed != cfg.Clients || st.Counted != st.Connected || st.Unconfirmed != 0 || st.Dropped != 0 {
				t.Fatalf("clients: %+v", st)
			}
			if st.Connected != sseOK+wsOK {
				t.Fatalf("connected %d, fake holds %d sse + %d ws", st.Connected, sseOK, wsOK)
			}
			d := st.Deliveries
			n := uint64(st.Connected)
			want := loadgen.DeliveryStats{
				Expected:   n * ticks,
				Lost:       uint64(sseOK) * 4, // seqs 5, 10, 15, 20
				Duplicates: uint64(wsOK) * 2,  // seqs 7, 14
				Reordered:  uint64(wsOK),      // 10 after 11
			}
			want.Unique = want.Expected - want.Lost
			want.Received = want.Unique + want.Duplicates
			if d.Expected != want.Expected || d.Lost != want.Lost || d.Duplicates != want.Duplicates ||
				d.Reordered != want.Reordered || d.Unique != want.Unique || d.Received != want.Received ||
				d.Unexpected != 0 || d.Foreign != 0 || d.Late != 0 {
				t.Fatalf("deliveries\n got %+v\nwant %+v", d, want)
			}
			if d.Other < n {
				t.Fatalf("other events %d: the fake sends one delete per connection", d.Other)
			}
			if st.LatencyMS.Count != d.Unique || st.LatencyMS.P50 <= 0 || st.LatencyMS.Max < st.LatencyMS.P99 {
				t.Fatalf("latency %+v", st.LatencyMS)
			}
			// WebSockets whose subscription is refused did complete a handshake.
			if c := st.ConnectLatencyMS.Count; c < uint64(st.Connected) || c > uint64(st.Connected+st.Failed) {
				t.Fatalf("connect latency %+v", st.ConnectLatencyMS)
			}
			if st.Publish.Ticks != ticks {
				t.Fatalf("publish %+v", st.Publish)
			}
			if len(cfg.SourceIPs) > 0 {
				if len(ips) != 2 || ips["127.0.0.2"] == 0 || ips["127.0.0.3"] == 0 {
					t.Fatalf("source addresses %v", ips)
				}
			}
			var table bytes.Buffer
			if err := rep.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"latency ms", "deliveries", "connect ms"} {
				if !strings.Contains(table.String(), s) {
					t.Fatalf("table lacks %q:\n%s", s, table.String())
				}
			}
			if _, err := json.Marshal(rep); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(progress.String(), "deliv/s") {
				t.Fatalf("no progress lines: %q", progress.String())
			}
		})
	}
}
