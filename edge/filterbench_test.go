package edge

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/spillway/spillway/edge/store"
	"github.com/spillway/spillway/shared/benchdata/fixtures"
	"github.com/spillway/spillway/shared/benchdata/payload"
	"github.com/spillway/spillway/shared/bus"
	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/testenv"
)

// BenchmarkPublicFiltering runs one real edge (real Postgres with the load
// tool's 1,000-account data set, in-process NATS) whose clients all watch
// the public stream, half SSE and half WebSocket, and publishes 3.5 KB
// statuses from rotating authors at 50 events/s, as the broker would. Each
// iteration is one event, so ns/op is the pacing (20 ms); the figures are the
// reported metrics:
//
//	queries/event   Postgres queries the filtering ran per event
//	cpu-µs/event    process CPU (user+system) per event: edge, NATS, publisher
//	pg-cpu-µs/event CPU of every local "postgres" process per event (when
//	                Postgres runs on this machine)
//	deliveries/event frames written per event
//	p50-ms, p99-ms  publish → write to the client's socket
//
// Sockets are stand-ins that accept every write, so the figures are
// Spillway's own work without the kernel's ~10 µs per loopback write. Run:
//
//	go test -run xxx -bench PublicFiltering -benchtime 500x ./edge/
func BenchmarkPublicFiltering(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) { benchPublicFiltering(b, n) })
	}
}

const (
	benchAccounts = 1000
	benchRate     = 50 // events per second
)

func benchPublicFiltering(b *testing.B, clients int) {
	ctx := b.Context()
	pool := testenv.Postgres(b)
	set, err := fixtures.New(fixtures.Config{Accounts: benchAccounts, TokensPerAccount: 1, Seed: 1, EmptyLanguages: fixtures.DefaultEmptyLanguages})
	if err != nil {
		b.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	err = fixtures.Load(ctx, conn.Conn(), set)
	conn.Release()
	if err != nil {
		b.Fatal(err)
	}

	_, nc := testenv.NATS(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(Config{Listener: ln, NATS: nc, Store: store.New(pool), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Run(runCtx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	defer stop()

	lat := newLatencies(clients * (b.N + 2*benchRate))
	ids := make([]store.Identity, benchAccounts)
	for i := range ids {
		if ids[i], err = e.cfg.Store.Authenticate(ctx, fixtures.Token(i+1, 1)); err != nil {
			b.Fatal(err)
		}
	}
	for i := range clients {
		t := transport(i % 2)
		s := e.newSession("", ids[i%benchAccounts], t)
		o := newOutbox(discardConn{}, &e.limits, s.closed)
		o.write = lat.record
		s.attach(o)
		r, apiErr := e.resolve(ctx, s.id, "public", nil, nil)
		if apiErr != nil {
			b.Fatal(apiErr)
		}
		if _, err := s.subscribe(r); err != nil {
			b.Fatal(err)
		}
	}

	gen := payload.NewRotatingGenerator(payload.DefaultAuthor(), set.Authors(), 3500)
	subject := e.cfg.Subjects.Of(channel.Public(channel.ScopeAll, false))
	var seq uint64
	publish := func() {
		seq++
		now := time.Now()
		m := nats.NewMsg(subject)
		m.Data = gen.Append(nil, seq, now.UnixNano(), false)
		m.Header.Set(bus.HeaderReceived, now.UTC().Format(time.RFC3339Nano))
		if err := nc.PublishMsg(m); err != nil {
			b.Fatal(err)
		}
	}
	tick := time.NewTicker(time.Second / benchRate)
	defer tick.Stop()

	// Warm-up: every session loads its keyword filters once.
	for range benchRate {
		<-tick.C
		publish()
	}
	time.Sleep(500 * time.Millisecond)
	lat.reset()
	queries := func() float64 {
		return testutil.ToFloat64(e.metrics.filterQueries.WithLabelValues("relationships")) +
			testutil.ToFloat64(e.metrics.filterQueries.WithLabelValues("keyword_filters"))
	}
	q0, cpu0, pg0 := queries(), cpuTime(), postgresCPU()

	b.ResetTimer()
	for range b.N {
		<-tick.C
		publish()
	}
	time.Sleep(500 * time.Millisecond)
	q1, cpu1, pg1 := queries(), cpuTime(), postgresCPU()
	stop() // every write has happened before the samples are read

	events := float64(b.N)
	samples := lat.sorted()
	b.ReportMetric((q1-q0)/events, "queries/event")
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/events, "cpu-µs/event")
	if pg0 >= 0 && pg1 >= 0 {
		b.ReportMetric(float64((pg1-pg0).Microseconds())/events, "pg-cpu-µs/event")
	}
	b.ReportMetric(float64(len(samples))/events, "deliveries/event")
	b.ReportMetric(percentileMS(samples, 0.50), "p50-ms")
	b.ReportMetric(percentileMS(samples, 0.99), "p99-ms")
}

// latencies records publish → write times from the markers in each frame.
type latencies struct {
	n       atomic.Int64
	samples []int64
}

func newLatencies(capacity int) *latencies { return &latencies{samples: make([]int64, capacity)} }

func (l *latencies) record(fr frame) (int, error) {
	if info, ok := payload.Decode(fr.body); ok {
		if i := l.n.Add(1) - 1; int(i) < len(l.samples) {
			l.samples[i] = time.Now().UnixNano() - info.SentNS
		}
	}
	return fr.len(), nil
}

func (l *latencies) reset() { l.n.Store(0) }

func (l *latencies) sorted() []int64 {
	s := l.samples[:min(int(l.n.Load()), len(l.samples))]
	slices.Sort(s)
	return s
}

func percentileMS(sorted []int64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(q*float64(len(sorted)-1))]) / 1e6
}

// postgresCPU sums the CPU time of every process named "postgres" on this
// machine, or returns -1 when there is none (a remote server).
func postgresCPU() time.Duration {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	var ticks int64
	found := false
	for _, d := range dirs {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid … utime stime are fields 14 and 15; comm
		// may hold spaces, so count from the closing parenthesis.
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open || string(b[open+1:end]) != "postgres" {
			continue
		}
		f := strings.Fields(string(b[end+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
		found = true
	}
	if !found {
		return -1
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ
}
