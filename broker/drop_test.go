package broker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway/spillway/shared/channel"
)

// lockedBuffer is a log destination safe for the broker's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A Redis message on a channel too long for a NATS subject is dropped and
// counted, logged once rather than per message, and never reaches NATS,
// whose server would close the broker's connection over it.
func TestDropsChannelsTooLongForNATS(t *testing.T) {
	reg := prometheus.NewRegistry()
	logs := &lockedBuffer{}
	h := start(t, Config{Registerer: reg, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	sub, err := h.nc.SubscribeSync(h.subj.Timelines())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, n := range []string{
		"timeline:hashtag:" + strings.Repeat("a", 5000),
		"timeline:list:" + strings.Repeat("0", channel.MaxNameLen),
		"timeline:" + strings.Repeat("日", channel.MaxNameLen),
	} {
		if err := h.rdb.Publish(ctx, h.ns+":"+n, `{"event":"delete","payload":"1"}`).Err(); err != nil {
			t.Fatal(err)
		}
	}
	longest := "timeline:hashtag:" + strings.Repeat("a", channel.MaxNameLen-len("timeline:hashtag:"))
	for _, n := range []string{longest, "timeline:public"} {
		if err := h.rdb.Publish(ctx, h.ns+":"+n, "ok").Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{longest, "timeline:public"} {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("waiting for %.30s…: %v", want, err)
		}
		if name, _ := h.subj.Parse(m.Subject); string(name) != want {
			t.Fatalf("got %.40q…, want %.40q…", name, want)
		}
	}
	if !h.nc.IsConnected() {
		t.Fatal("the broker's NATS connection was closed")
	}
	want := `
# HELP spillway_broker_messages_dropped_total Redis timeline messages not republished on NATS, by reason.
# TYPE spillway_broker_messages_dropped_total counter
spillway_broker_messages_dropped_total{reason="invalid_channel"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "spillway_broker_messages_dropped_total"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "too long for a NATS subject"); n != 1 {
		t.Fatalf("%d log lines about dropped messages, want 1:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), strings.Repeat("a", 100)) {
		t.Fatalf("the whole channel name was logged:\n%.500s", logs.String())
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "abc…"},
		{"日本", 4, "日…"},
		{"日本", 2, "…"},
	} {
		if got := truncate(tc.s, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

// Whatever channel Redis delivers, the broker publishes on a subject NATS
// accepts and edges map back to the same channel, or drops it: exactly
// the names longer than channel.MaxNameLen, and channels outside the
// namespace.
func FuzzSubject(f *testing.F) {
	for _, s := range []string{
		"ns:timeline:public", "ns:timeline:hashtag:café:local", "ns:timeline:109000000000000001:notifications",
		"ns:timeline:list:  +0005001 ", "ns:timeline:hashtag:", "ns:timeline:a.b*c>d \t\x00\xff",
		"ns:timeline:hashtag:" + strings.Repeat("a", 5000), "other:timeline:public", "timeline:public",
		"ns:timeline:" + strings.Repeat("日", 170),
	} {
		f.Add("ns", s, "")
		f.Add("", s, strings.Repeat("p", channel.MaxPrefixLen))
	}
	f.Fuzz(func(t *testing.T, ns, redisChannel, prefix string) {
		if channel.ValidPrefix(prefix) != nil {
			prefix = ""
		}
		b := &Broker{cfg: Config{Subjects: channel.Subjects{Prefix: prefix}}}
		if ns != "" {
			b.prefix = ns + ":"
		}
		name, err := b.channelName(redisChannel)
		var subject string
		if err == nil {
			subject = b.cfg.Subjects.Of(name)
		}
		rest, ours := strings.CutPrefix(redisChannel, b.prefix)
		switch {
		case !ours:
			if !errors.Is(err, errNotOurs) {
				t.Fatalf("%q outside %q: %v", redisChannel, b.prefix, err)
			}
		case len(rest) > channel.MaxNameLen:
			if !errors.Is(err, channel.ErrNameTooLong) || string(name) != rest {
				t.Fatalf("%d-byte name: %q, %v", len(rest), subject, err)
			}
		default:
			if err != nil {
				t.Fatalf("%q: %v", redisChannel, err)
			}
			if len(subject) > channel.MaxSubjectLen || !server.IsValidLiteralSubject(subject) {
				t.Fatalf("%q: subject %q", redisChannel, subject)
			}
			if back, err := b.cfg.Subjects.Parse(subject); err != nil || string(back) != rest {
				t.Fatalf("%q: subject %q parses to %q, %v", redisChannel, subject, back, err)
			}
		}
	})
}
