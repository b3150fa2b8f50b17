package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/time/rate"
)

// Limits of a soak.
const (
	maxSoakSamples = 100_000
	maxMetricsBody = 8 << 20
	// Absolute slack of the flatness test for counts (goroutines, open
	// files): small populations move by a few without leaking.
	countSlack = 8
	// rssSlackKB is the same for RSS: one heap arena step.
	rssSlackKB = 4096
)

// Soak describes a soak: the window's steady clients are measured as usual
// while churn clients connect and leave around them, and the server's
// resources are sampled.
type Soak struct {
	// ChurnRate is new churn connections per second (0 = none).
	ChurnRate float64
	// ChurnLifetime is a churn connection's mean lifetime; each one lives
	// uniformly between half and one and a half of it.
	ChurnLifetime time.Duration
	// Resubscribe is how often a churn WebSocket unsubscribes its stream
	// and subscribes to the next one of the mix (0 = never).
	Resubscribe time.Duration
	// SampleInterval is the pause between resource samples.
	SampleInterval time.Duration
	// MetricsURL serves the server's Prometheus metrics (go_goroutines);
	// nil or unanswered = goroutines are not sampled.
	MetricsURL *url.URL
	// Tolerance is the largest relative growth from the first quarter's
	// mean to the last quarter's that still counts as flat.
	Tolerance float64
	// Seed drives lifetimes and how churn clients leave.
	Seed uint64
	// MinSamples, when positive, keeps the window open (publishing) past
	// its duration until that many samples are taken (deterministic tests).
	MinSamples int
}

func (s *Soak) validate(c *Config) error {
	switch {
	case c.ServerPID <= 0:
		return errors.New("a soak needs -server-pid (RSS and open files come from /proc)")
	case !(s.ChurnRate >= 0 && s.ChurnRate <= 10_000):
		return errors.New("-churn-rate must be in 0..10000")
	case s.ChurnLifetime <= 0 || s.Resubscribe < 0 || s.SampleInterval <= 0:
		return errors.New("-churn-lifetime and -sample-interval must be positive, -resubscribe not negative")
	case !(s.Tolerance >= 0 && s.Tolerance <= 10):
		return errors.New("-flat-tolerance must be in 0..10")
	case c.Duration/s.SampleInterval > maxSoakSamples:
		return fmt.Errorf("at most %d samples: raise -sample-interval", maxSoakSamples)
	}
	if u := s.MetricsURL; u != nil {
		if u.Scheme != "http" || u.Host == "" {
			return errors.New("-metrics-url must be an http:// URL")
		}
		if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("-metrics-url: refusing non-loopback host %q", u.Hostname())
		}
	}
	return nil
}

// MaxLive bounds churn connections at once: twice the expected population,
// so a server that stops closing them cannot run the tool out of files.
func (s *Soak) MaxLive() int {
	return int(2*s.ChurnRate*s.ChurnLifetime.Seconds()) + 16
}

// SoakSample is one reading of the server's resources.
type SoakSample struct {
	// Seconds since the measured window opened (negative before it).
	Seconds float64 `json:"t"`
	RSSKB   uint64  `json:"rss_kb"`
	// Goroutines is -1 when the metrics endpoint does not say.
	Goroutines int `json:"goroutines"`
	FDs        int `json:"open_files"`
	ChurnLive  int `json:"churn_live"`
}

// Trend compares the first and last quarters of a series of samples.
type Trend struct {
	FirstQuarterMean float64 `json:"first_quarter_mean"`
	LastQuarterMean  float64 `json:"last_quarter_mean"`
	GrowthPct        float64 `json:"growth_pct"`
	// SlopePerHour is the least-squares slope over every sample.
	SlopePerHour float64 `json:"slope_per_hour"`
	Flat         bool    `json:"flat"`
}

// trendOf computes the trend of v over t (seconds). It is flat when the
// last quarter's mean exceeds the first's by at most tol (relative) or
// slack (absolute), whichever is larger. ok is false with fewer than four
// samples.
func trendOf(t, v []float64, tol, slack float64) (tr Trend, ok bool) {
	n := len(v)
	if n < 4 || len(t) != n {
		return Trend{}, false
	}
	q := n / 4
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	tr.FirstQuarterMean, tr.LastQuarterMean = mean(v[:q]), mean(v[n-q:])
	if tr.FirstQuarterMean != 0 {
		tr.GrowthPct = 100 * (tr.LastQuarterMean - tr.FirstQuarterMean) / tr.FirstQuarterMean
	}
	mt, mv := mean(t), mean(v)
	var sxy, sxx float64
	for i := range n {
		sxy += (t[i] - mt) * (v[i] - mv)
		sxx += (t[i] - mt) * (t[i] - mt)
	}
	if sxx > 0 {
		tr.SlopePerHour = sxy / sxx * 3600
	}
	tr.Flat = tr.LastQuarterMean-tr.FirstQuarterMean <= math.Max(tol*tr.FirstQuarterMean, slack)
	return tr, true
}

// ChurnStats counts what the churn clients did.
type ChurnStats struct {
	Started     uint64         `json:"started"`
	Connected   uint64         `json:"connected"`
	Failed      uint64         `json:"failed"`
	FailReasons map[string]int `json:"fail_reasons,omitempty"`
	// Dropped connections were ended by the server before their time.
	Dropped     uint64         `json:"dropped"`
	DropReasons map[string]int `json:"drop_reasons,omitempty"`
	// Graceful leaves sent a WebSocket close frame first; abrupt ones just
	// closed the socket (every SSE leave is abrupt). Stopped connections
	// were still open when the soak ended.
	Graceful     uint64 `json:"graceful_leaves"`
	Abrupt       uint64 `json:"abrupt_leaves"`
	Stopped      uint64 `json:"stopped"`
	Subscribes   uint64 `json:"subscribes"`
	Unsubscribes uint64 `json:"unsubscribes"`
	// Events are deliveries of any kind the churn clients received.
	Events uint64 `json:"events"`
	// Skipped connections were not started because maxLive were open.
	Skipped uint64 `json:"skipped"`
}

// SoakReport is the soak's part of the report; the steady clients' window
// is the report's step.
type SoakReport struct {
	ChurnRate         float64    `json:"churn_rate"`
	ChurnLifetimeSec  float64    `json:"churn_lifetime_seconds"`
	ResubscribeSec    float64    `json:"resubscribe_seconds"`
	SampleIntervalSec float64    `json:"sample_interval_seconds"`
	Tolerance         float64    `json:"flat_tolerance"`
	Churn             ChurnStats `json:"churn"`
	// Before is sampled with the steady clients connected, before churn
	// starts; After once churn has stopped and its connections are gone.
	Before     SoakSample   `json:"before"`
	After      SoakSample   `json:"after"`
	Samples    []SoakSample `json:"samples"`
	RSS        *Trend       `json:"rss_kb,omitempty"`
	Goroutines *Trend       `json:"goroutines,omitempty"`
	FDs        *Trend       `json:"open_files,omitempty"`
	Flat       bool         `json:"flat"`
	Verdict    string       `json:"verdict"`
}

// churnStats is ChurnStats while churn runs.
type churnStats struct {
	started, connected, failed, dropped atomic.Uint64
	graceful, abrupt, stopped           atomic.Uint64
	subscribes, unsubs                  atomic.Uint64
	events, skipped                     atomic.Uint64
	live                                atomic.Int64

	mu                       sync.Mutex
	failReasons, dropReasons map[string]int
}

func (s *churnStats) note(m *map[string]int, n *atomic.Uint64, reason string) {
	n.Add(1)
	s.mu.Lock()
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[reason]++
	s.mu.Unlock()
}

func (s *churnStats) snapshot() ChurnStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := func(m map[string]int) map[string]int {
		if m == nil {
			return nil
		}
		out := make(map[string]int, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	return ChurnStats{
		Started: s.started.Load(), Connected: s.connected.Load(),
		Failed: s.failed.Load(), FailReasons: cp(s.failReasons),
		Dropped: s.dropped.Load(), DropReasons: cp(s.dropReasons),
		Graceful: s.graceful.Load(), Abrupt: s.abrupt.Load(), Stopped: s.stopped.Load(),
		Subscribes: s.subscribes.Load(), Unsubscribes: s.unsubs.Load(),
		Events: s.events.Load(), Skipped: s.skipped.Load(),
	}
}

// soakRun is a soak in progress, owned by runStep.
type soakRun struct {
	r       *runState
	cfg     *Soak
	stats   churnStats
	metrics *metricsReader // nil when goroutines are not sampled
	rep     SoakReport

	cancelChurn context.CancelFunc
	churnDone   chan struct{}

	windowStart time.Time
	stopSampler chan struct{}
	samplerDone chan struct{}
	mu          sync.Mutex // guards rep.Samples while the sampler runs
}

// startSoak samples the server with only the steady clients connected and
// starts the churn.
func (r *runState) startSoak(ctx context.Context) *soakRun {
	sk := &soakRun{r: r, cfg: r.cfg.Soak, churnDone: make(chan struct{})}
	sk.rep = SoakReport{
		ChurnRate: sk.cfg.ChurnRate, ChurnLifetimeSec: sk.cfg.ChurnLifetime.Seconds(),
		ResubscribeSec: sk.cfg.Resubscribe.Seconds(), SampleIntervalSec: sk.cfg.SampleInterval.Seconds(),
		Tolerance: sk.cfg.Tolerance,
	}
	if u := sk.cfg.MetricsURL; u != nil {
		sk.metrics = newMetricsReader(u.String(), r.cfg.ConnectTimeout)
		if _, err := sk.metrics.goroutines(ctx); err != nil {
			if r.cfg.Progress != nil {
				_, _ = fmt.Fprintf(r.cfg.Progress, "soak: goroutines not sampled: %v\n", err)
			}
			sk.metrics = nil
		}
	}
	sk.windowStart = time.Now() // until the window opens, samples count back from here
	sk.rep.Before = sk.sample(ctx)
	churnCtx, cancel := context.WithCancel(ctx)
	sk.cancelChurn = cancel
	// The churn goroutine is stopped by stop (or the run's end) and waits
	// for every churn client it started.
	go func() {
		defer close(sk.churnDone)
		r.churn(churnCtx, sk.cfg, &sk.stats)
	}()
	return sk
}

// openWindow starts sampling with the measured window.
func (sk *soakRun) openWindow(ctx context.Context) {
	sk.windowStart = time.Now()
	sk.stopSampler = make(chan struct{})
	sk.samplerDone = make(chan struct{})
	// The sampler runs until closeWindow stops it.
	go func() {
		defer close(sk.samplerDone)
		t := time.NewTicker(sk.cfg.SampleInterval)
		defer t.Stop()
		for {
			select {
			case <-sk.stopSampler:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			s := sk.sample(ctx)
			sk.mu.Lock()
			sk.rep.Samples = append(sk.rep.Samples, s)
			sk.mu.Unlock()
			if p := sk.r.cfg.Progress; p != nil {
				_, _ = fmt.Fprintf(p, "soak sample t=%.0fs: rss %d KB, goroutines %d, open files %d, churn live %d\n",
					s.Seconds, s.RSSKB, s.Goroutines, s.FDs, s.ChurnLive)
			}
		}
	}()
}

// samples is how many samples the window has so far.
func (sk *soakRun) samples() int {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return len(sk.rep.Samples)
}

// stop ends sampling and churn. It is safe to call more than once.
func (sk *soakRun) stop() {
	if sk.stopSampler != nil {
		select {
		case <-sk.stopSampler:
		default:
			close(sk.stopSampler)
		}
		<-sk.samplerDone
	}
	sk.cancelChurn()
	<-sk.churnDone
}

// finish stops the soak, waits (up to settle) for the server to let go of
// the churn connections, and writes the soak's report.
func (sk *soakRun) finish(ctx context.Context, settle time.Duration) *SoakReport {
	sk.stop()
	deadline := time.Now().Add(settle)
	for {
		sk.rep.After = sk.sample(ctx)
		if sk.rep.After.FDs <= sk.rep.Before.FDs || !time.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	sk.rep.Churn = sk.stats.snapshot()
	sk.rep.analyse(sk.metrics != nil)
	return &sk.rep
}

// analyse sets the trends and the verdict.
func (rep *SoakReport) analyse(goroutines bool) {
	n := len(rep.Samples)
	t := make([]float64, n)
	rss, gor, fds := make([]float64, n), make([]float64, n), make([]float64, n)
	for i, s := range rep.Samples {
		t[i], rss[i], gor[i], fds[i] = s.Seconds, float64(s.RSSKB), float64(s.Goroutines), float64(s.FDs)
	}
	var bad []string
	check := func(name string, v []float64, slack float64) *Trend {
		tr, ok := trendOf(t, v, rep.Tolerance, slack)
		if !ok {
			return nil
		}
		if !tr.Flat {
			bad = append(bad, fmt.Sprintf("%s grew %.1f%% (%.0f -> %.0f)", name, tr.GrowthPct, tr.FirstQuarterMean, tr.LastQuarterMean))
		}
		return &tr
	}
	rep.RSS = check("RSS KB", rss, rssSlackKB)
	rep.FDs = check("open files", fds, countSlack)
	if goroutines {
		rep.Goroutines = check("goroutines", gor, countSlack)
		if rep.After.Goroutines > rep.Before.Goroutines+countSlack {
			bad = append(bad, fmt.Sprintf("goroutines %d after churn, %d before", rep.After.Goroutines, rep.Before.Goroutines))
		}
	}
	if rep.After.FDs > rep.Before.FDs+countSlack {
		bad = append(bad, fmt.Sprintf("open files %d after churn, %d before", rep.After.FDs, rep.Before.FDs))
	}
	switch {
	case rep.RSS == nil:
		rep.Verdict = fmt.Sprintf("too few samples (%d) to judge; lower -sample-interval", n)
	case len(bad) > 0:
		rep.Verdict = "not flat: " + strings.Join(bad, "; ")
	default:
		rep.Flat = true
		rep.Verdict = "flat"
	}
}

func (sk *soakRun) sample(ctx context.Context) SoakSample {
	s := SoakSample{
		Seconds:    time.Since(sk.windowStart).Seconds(),
		Goroutines: -1,
		ChurnLive:  int(sk.stats.live.Load()),
	}
	if p, err := readProc(sk.r.cfg.ServerPID); err == nil {
		s.RSSKB = p.RSSKB
	}
	s.FDs = countFDs(sk.r.cfg.ServerPID)
	if sk.metrics != nil {
		if n, err := sk.metrics.goroutines(ctx); err == nil {
			s.Goroutines = n
		}
	}
	return s
}

// countFDs counts the process's open files (-1 if /proc does not say).
func countFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}

// metricsReader reads go_goroutines from a Prometheus text endpoint.
type metricsReader struct {
	url    string
	client *http.Client
}

func newMetricsReader(u string, timeout time.Duration) *metricsReader {
	return &metricsReader{url: u, client: &http.Client{Timeout: timeout}}
}

func (m *metricsReader) goroutines(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics: http %d", resp.StatusCode)
	}
	return parseGoroutines(io.LimitReader(resp.Body, maxMetricsBody))
}

// parseGoroutines returns the go_goroutines gauge of a Prometheus text
// exposition.
func parseGoroutines(r io.Reader) (int, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	f := fams["go_goroutines"]
	if f == nil || len(f.GetMetric()) != 1 {
		return 0, errors.New("metrics: no go_goroutines gauge")
	}
	var v float64
	switch m := f.GetMetric()[0]; {
	case m.GetGauge() != nil:
		v = m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		v = m.GetUntyped().GetValue()
	default:
		return 0, errors.New("metrics: no go_goroutines gauge")
	}
	if !(v >= 0 && v <= math.MaxInt32) || v != math.Trunc(v) {
		return 0, fmt.Errorf("metrics: go_goroutines %v is not a count", v)
	}
	return int(v), nil
}

// churn starts churn clients at cfg.ChurnRate until ctx ends, then waits
// for every one of them to leave.
func (r *runState) churn(ctx context.Context, cfg *Soak, st *churnStats) {
	if cfg.ChurnRate <= 0 {
		return
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xc4a2_0005))
	lim := rate.NewLimiter(rate.Limit(cfg.ChurnRate), 1)
	slots := make(chan struct{}, cfg.MaxLive())
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; ; i++ {
		if lim.Wait(ctx) != nil {
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			st.skipped.Add(1)
			continue
		}
		c := r.churnClient(i, st)
		life := time.Duration((0.5 + rng.Float64()) * float64(cfg.ChurnLifetime))
		graceful := rng.IntN(2) == 0
		st.started.Add(1)
		// Each churn client's goroutine ends with its connection (its
		// lifetime, a drop, or ctx).
		wg.Go(func() {
			defer func() { <-slots }()
			r.runChurner(ctx, c, i, life, graceful, cfg.Resubscribe)
		})
	}
}

// churnClient makes churn client i: streams and transports rotate as the
// steady clients' do, tokens continue after theirs.
func (r *runState) churnClient(i int, st *churnStats) *client {
	ratio := r.cfg.SSERatio
	c := &client{
		idx:    -1 - i,
		sse:    math.Floor(float64(i+1)*ratio) > math.Floor(float64(i)*ratio),
		stream: &r.cfg.Streams[r.cycle[i%len(r.cycle)]],
		dialer: i % len(r.netDialers),
		churn:  st,
	}
	if len(r.tokens) > 0 {
		c.token = r.tokens[(len(r.clients)+i)%len(r.tokens)].Value
	}
	return c
}

// runChurner connects c, lives for life (WebSockets moving to the next
// stream of the mix every resub), and leaves.
func (r *runState) runChurner(ctx context.Context, c *client, i int, life time.Duration, graceful bool, resub time.Duration) {
	st := c.churn
	connCtx, cancel := context.WithTimeout(ctx, r.cfg.ConnectTimeout)
	var s session
	var err error
	if c.sse {
		s, err = r.connectSSE(connCtx, c)
	} else {
		s, err = r.connectWS(connCtx, c, true)
	}
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			st.note(&st.failReasons, &st.failed, classify(err))
		}
		return
	}
	st.connected.Add(1)
	st.live.Add(1)
	defer st.live.Add(-1)
	readDone := make(chan error, 1)
	// The reader ends when the connection closes, which every path below
	// does before waiting for it.
	go func() { readDone <- s.read(r, c) }()

	ws, _ := s.(*wsSession)
	k := r.cycle[i%len(r.cycle)]
	send := func(msg []byte, n *atomic.Uint64) bool {
		if err := ws.conn.SetWriteDeadline(time.Now().Add(r.cfg.ConnectTimeout)); err != nil {
			return false
		}
		if err := ws.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			return false
		}
		n.Add(1)
		return true
	}
	var resubC <-chan time.Time
	if ws != nil {
		if !send(r.cfg.Streams[k].SubscribeMessage(), &st.subscribes) {
			s.close()
			st.note(&st.dropReasons, &st.dropped, classify(<-readDone))
			return
		}
		if resub > 0 && len(r.cfg.Streams) > 1 {
			t := time.NewTicker(resub)
			defer t.Stop()
			resubC = t.C
		}
	}
	leave := time.NewTimer(life)
	defer leave.Stop()
	for {
		select {
		case <-ctx.Done():
			st.stopped.Add(1)
			s.close()
			<-readDone
			return
		case err := <-readDone:
			s.close()
			st.note(&st.dropReasons, &st.dropped, classify(err))
			return
		case <-resubC:
			next := (k + 1) % len(r.cfg.Streams)
			if !send(r.cfg.Streams[k].UnsubscribeMessage(), &st.unsubs) ||
				!send(r.cfg.Streams[next].SubscribeMessage(), &st.subscribes) {
				s.close()
				st.note(&st.dropReasons, &st.dropped, classify(<-readDone))
				return
			}
			k = next
		case <-leave.C:
			if ws != nil && graceful {
				msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
				if ws.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)) == nil {
					// Give the server a moment to answer the close.
					t := time.NewTimer(time.Second)
					select {
					case <-readDone:
						readDone <- nil
					case <-t.C:
					}
					t.Stop()
				}
				st.graceful.Add(1)
			} else {
				st.abrupt.Add(1)
			}
			s.close()
			<-readDone
			return
		}
	}
}
