package edge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway/spillway/edge/keyword"
	"github.com/spillway/spillway/edge/store"
)

// statusFixture is a 3.6 KB Rails-shaped status message.
func statusFixture(b testing.TB) []byte {
	p, err := os.ReadFile("jsjson/testdata/status.json")
	if err != nil {
		b.Fatal(err)
	}
	return append(append([]byte(`{"event":"update","payload":`), p...), '}')
}

// BenchmarkDecodeAndRender is the per-event, per-edge cost: decode once,
// render the SSE frame and one WebSocket frame.
func BenchmarkDecodeAndRender(b *testing.B) {
	msg := statusFixture(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		ev := decodeEvent(msg, time.Now())
		ev.sseFrame(nil)
		ev.wsFrame(`["public"]`, []byte("[]"))
	}
}

// discardConn is a socket whose writes always succeed at once; it stands in
// for the kernel so the benchmark measures Spillway's own per-client work.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (discardConn) SetDeadline(time.Time) error      { return nil }

// memStore is a tiny in-memory Store for benchmarks: nobody is excluded
// and nobody has filters.
type memStore struct{}

func (memStore) Authenticate(context.Context, string) (store.Identity, error) {
	return store.Identity{}, store.ErrInvalidToken
}
func (memStore) OwnsList(context.Context, string, int64) (bool, error) { return false, nil }
func (memStore) FeedAccess(context.Context, store.FeedKind) (bool, bool, error) {
	return false, false, nil
}
func (memStore) Excluded(context.Context, []int64, store.StatusRef) (map[int64]bool, error) {
	return nil, nil
}
func (memStore) KeywordFilters(context.Context, []int64) (map[int64][]keyword.Filter, error) {
	return nil, nil
}

// benchEdge builds an edge (not running) whose sessions write to
// discardConn.
func benchEdge(b *testing.B) *Edge {
	e := &Edge{
		cfg:     Config{Logger: slog.New(slog.DiscardHandler)},
		logger:  slog.New(slog.DiscardHandler),
		limits:  outboxLimits{maxFrames: 512, maxBytes: 4 << 20, writeTimeout: time.Second},
		metrics: newMetrics(prometheus.NewRegistry(), nil, nil),
	}
	e.filter = newFilterer(memStore{}, 1, 1024, time.Second, e.logger, e.metrics)
	return e
}

func benchSessions(e *Edge, n int, t transport, rule *feedRule) []*subscription {
	subs := make([]*subscription, n)
	for i := range subs {
		s := e.newSession("", store.Identity{AccountID: int64(i%1000 + 1)}, t)
		o := newOutbox(discardConn{}, &e.limits, s.closed)
		o.write = func(fr frame) (int, error) { return fr.len(), nil }
		s.attach(o)
		label := ""
		if t == transportWS {
			label = `["public"]`
		}
		subs[i] = &subscription{sess: s, label: label, rule: rule}
	}
	return subs
}

// BenchmarkFanOut is one pass-through event to n local clients (half SSE,
// half WebSocket): decode once, frames rendered once, the same bytes written
// to every client. Reports ns and allocations per client.
func BenchmarkFanOut(b *testing.B) {
	msg := []byte(`{"event":"delete","payload":"109348573498573"}`)
	for _, n := range []int{1, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e := benchEdge(b)
			subs := append(benchSessions(e, n/2, transportSSE, nil), benchSessions(e, n-n/2, transportWS, nil)...)
			b.ReportAllocs()
			for b.Loop() {
				fanOut(decodeEvent(msg, time.Now()), subs, e.metrics)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/client")
		})
	}
}

// BenchmarkFilterDecision is the filtering of one status for 1,000 viewers
// with an in-memory store: status facts once, then per-viewer checks and
// shared frames.
func BenchmarkFilterDecision(b *testing.B) {
	msg := statusFixture(b)
	e := benchEdge(b)
	subs := benchSessions(e, 1000, transportSSE, &feedRule{})
	for _, s := range subs {
		s.sess.filters.Store(emptyMatcher)
	}
	var sc filterScratch
	b.ReportAllocs()
	for b.Loop() {
		ev := decodeEvent(msg, time.Now())
		e.filter.process(context.Background(), filterJob{ev, subs}, &sc)
	}
}
