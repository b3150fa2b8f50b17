package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/spillway/spillway/cmd/loadtest/internal/hist"
	"github.com/spillway/spillway/shared/benchdata/payload"
)

// publishBatch bounds one pipeline, so send times stay close to real send
// times even with thousands of per-account channels.
const publishBatch = 256

// channel is one target Redis channel and its sequence space.
type channel struct {
	name string
	// notify marks a timeline:<id>:notifications channel, whose events are
	// notifications rather than statuses.
	notify bool
	// nextSeq and probeRound are owned by the publishing goroutine (phases
	// run one after another, so the runner may read them between phases).
	nextSeq    uint64
	probeRound int
	// lo is the first measured sequence number of the current window;
	// MaxUint64 outside windows, so nothing is counted.
	lo atomic.Uint64
	// ok counts the window's successfully published events.
	ok   atomic.Uint64
	subs uint64 // clients counted in the current window (runner-owned)
}

func newChannel(name string, notify bool) *channel {
	ch := &channel{name: name, notify: notify, nextSeq: 1}
	ch.lo.Store(math.MaxUint64)
	return ch
}

// batch is one pipeline of messages being built. Their bytes share one
// arena, reused after every flush (publishers do not retain messages), so a
// run with tens of thousands of channels keeps no buffer per channel.
type batch struct {
	msgs  []Message
	chans []*channel
	arena []byte
}

// add appends one event on ch to the batch.
func (b *batch) add(r *runState, ch *channel, seq uint64, probe bool) {
	start := len(b.arena)
	b.arena = r.appendEvent(b.arena, ch, seq, probe)
	// A full slice expression: appending to one message's bytes must never
	// reach the next one's.
	b.msgs = append(b.msgs, Message{Channel: ch.name, Data: b.arena[start:len(b.arena):len(b.arena)]})
	b.chans = append(b.chans, ch)
}

func (b *batch) reset() {
	b.msgs, b.chans, b.arena = b.msgs[:0], b.chans[:0], b.arena[:0]
}

// appendEvent appends a message for ch: a status for timelines, a
// notification wrapping a status for notification channels.
func (r *runState) appendEvent(dst []byte, ch *channel, seq uint64, probe bool) []byte {
	if !ch.notify {
		return r.gen.Append(dst, seq, r.nowNS(), probe)
	}
	r.scratch = r.gen.Append(r.scratch[:0], seq, r.nowNS(), probe)
	return appendNotification(dst, seq, r.scratch)
}

// runState is everything shared by the runner and its client goroutines.
type runState struct {
	cfg        *Config
	pub        Publisher
	gen        *payload.Generator
	addr       string // resolved ip:port to dial
	hostHeader string
	pathPrefix string // base URL path, for servers mounted below /
	wsBase     string
	netDialers []*net.Dialer
	wsDialers  []*websocket.Dialer
	cycle      []int // weighted stream order

	base     time.Time
	baseWall int64

	// tokens are the clients' tokens in rotation: Config.Tokens, or in
	// instance runs their first token of each account.
	tokens     []Token
	clients    []*client
	channels   []*channel
	chanByName map[string]*channel
	streamSeen []int // clients per stream so far (for the SSE ratio)
	probeSeq   uint64
	probeRound int
	pubErrors  atomic.Uint64
	// scratch is the publishing goroutine's buffer for a status that a
	// notification wraps.
	scratch []byte
	// plan is the instance scenario's model (instance runs only), built
	// with the clients.
	plan *instancePlan

	lat      atomic.Pointer[hist.Histogram]
	connHist atomic.Pointer[hist.Histogram]

	connected, failed, dropped atomic.Int64
	confirmedN                 atomic.Int64
	received, dups             atomic.Uint64
	owed                       atomic.Uint64 // deliveries owed in the current window
	stale, foreign             atomic.Uint64
	otherEvents, misrouted     atomic.Uint64

	phase     atomic.Value // string
	stepLabel atomic.Value // string
}

// nowNS is wall-clock-like nanoseconds derived from the monotonic clock, so
// latencies are immune to clock steps (publisher and receivers share it).
func (r *runState) nowNS() int64 {
	return r.baseWall + time.Since(r.base).Nanoseconds()
}

// Run executes the load test described by cfg, publishing through pub. It
// returns the report of every step completed; on cancellation the report of
// the finished steps is returned together with the context's error.
func Run(ctx context.Context, cfg Config, pub Publisher) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := newRunState(ctx, &cfg, pub)
	if err != nil {
		return nil, err
	}
	rep := newReport(&cfg, len(payloadSample(r.gen)))
	if cfg.ServerPID > 0 {
		s, err := readProc(cfg.ServerPID)
		if err != nil {
			return nil, fmt.Errorf("sample server pid %d: %w", cfg.ServerPID, err)
		}
		rep.ServerBaselineRSSKB = s.RSSKB
	}

	clientsCtx, cancelClients := context.WithCancel(ctx)
	var clientsWG sync.WaitGroup
	defer func() {
		cancelClients()
		clientsWG.Wait()
	}()

	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if cfg.Progress != nil {
		progressWG.Go(func() { r.progress(progressDone) })
	}
	defer func() {
		close(progressDone)
		progressWG.Wait()
	}()

	limiter := rate.NewLimiter(rate.Limit(cfg.ConnectRate), max(1, int(cfg.ConnectRate/100)))
	targets := stepTargets(&cfg)
	for i, n := range targets {
		r.stepLabel.Store(fmt.Sprintf("step %d/%d", i+1, len(targets)))
		step, err := r.runStep(ctx, clientsCtx, &clientsWG, limiter, n, rep)
		if step != nil {
			rep.Steps = append(rep.Steps, *step)
		}
		if err != nil {
			rep.finish()
			return rep, err
		}
		if cfg.Ramp != nil {
			good, why := step.verdict(cfg.Ramp.P99Bound)
			rep.Steps[len(rep.Steps)-1].Good = good
			rep.Steps[len(rep.Steps)-1].Verdict = why
			if !good {
				break
			}
		}
	}
	rep.finish()
	return rep, nil
}

func payloadSample(g *payload.Generator) []byte {
	return g.Append(nil, 1, 1_700_000_000_000_000_000, false)
}

func stepTargets(cfg *Config) []int {
	if cfg.Ramp == nil {
		return []int{cfg.Clients}
	}
	var out []int
	for n := cfg.Ramp.Start; n <= cfg.Ramp.Max; n += cfg.Ramp.Step {
		out = append(out, n)
	}
	return out
}

func newRunState(ctx context.Context, cfg *Config, pub Publisher) (*runState, error) {
	host := cfg.BaseURL.Hostname()
	port := cfg.BaseURL.Port()
	if port == "" {
		port = "80"
	}
	ip, err := resolveLoopback(ctx, host, len(cfg.SourceIPs) > 0)
	if err != nil {
		return nil, err
	}
	r := &runState{
		cfg:        cfg,
		pub:        pub,
		gen:        payload.NewRotatingGenerator(payload.DefaultAuthor(), cfg.Authors, cfg.PayloadSize),
		addr:       net.JoinHostPort(ip.String(), port),
		hostHeader: cfg.BaseURL.Host,
		pathPrefix: strings.TrimSuffix(cfg.BaseURL.Path, "/"),
		wsBase:     "ws://" + cfg.BaseURL.Host + strings.TrimSuffix(cfg.BaseURL.Path, "/") + "/api/v1/streaming",
		cycle:      weightedCycle(cfg.Streams),
		streamSeen: make([]int, len(cfg.Streams)),
		chanByName: map[string]*channel{},
		base:       time.Now(),
	}
	r.baseWall = r.base.UnixNano()
	r.tokens = cfg.Tokens
	if cfg.Instance != nil {
		r.tokens = distinctAccounts(cfg.Tokens)
	}
	r.phase.Store("start")
	r.stepLabel.Store("")
	// Every connection borrows a write buffer only while writing, instead of
	// owning one for its lifetime.
	writePool := &sync.Pool{}
	sources := cfg.SourceIPs
	if len(sources) == 0 {
		sources = []net.IP{nil}
	}
	for _, src := range sources {
		d := &net.Dialer{Timeout: cfg.ConnectTimeout}
		if src != nil {
			d.LocalAddr = &net.TCPAddr{IP: src}
		}
		r.netDialers = append(r.netDialers, d)
		r.wsDialers = append(r.wsDialers, &websocket.Dialer{
			NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				// Dial the resolved loopback address, never what the URL
				// might resolve to later.
				return d.DialContext(ctx, network, r.addr)
			},
			HandshakeTimeout: cfg.ConnectTimeout,
			ReadBufferSize:   connReadBuf,
			WriteBufferSize:  512,
			WriteBufferPool:  writePool,
		})
	}
	return r, nil
}

// resolveLoopback resolves host and insists that it is a loopback address:
// this tool only ever loads servers on the same machine.
func resolveLoopback(ctx context.Context, host string, needV4 bool) (net.IP, error) {
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	var pick net.IP
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return nil, fmt.Errorf("refusing non-loopback target %s (%s)", host, ip)
		}
		if pick == nil && (!needV4 || ip.To4() != nil) {
			pick = ip
		}
	}
	if pick == nil {
		return nil, fmt.Errorf("%s has no IPv4 loopback address to pair with -source-ips", host)
	}
	return pick, nil
}

// addClients creates clients up to n (keeping the stream, transport, token
// and source-address rotations going across ramp steps).
func (r *runState) addClients(n int) []*client {
	var added []*client
	for i := len(r.clients); i < n; i++ {
		si := r.cycle[i%len(r.cycle)]
		st := &r.cfg.Streams[si]
		k := r.streamSeen[si]
		r.streamSeen[si]++
		ratio := r.cfg.SSERatio
		c := &client{
			idx:    i,
			sse:    math.Floor(float64(k+1)*ratio) > math.Floor(float64(k)*ratio),
			stream: st,
			dialer: i % len(r.netDialers),
		}
		account := ""
		if len(r.tokens) > 0 {
			t := r.tokens[i%len(r.tokens)]
			c.token, account = t.Value, t.AccountID
		}
		if st.Name != "user:notification" || r.cfg.Instance == nil {
			c.ch = r.channelNamed(st.Channel(account), false)
		}
		if r.cfg.Instance != nil && (st.Name == "user" || st.Name == "user:notification") {
			// Tokens with the read scope (as loadtest fixtures writes them)
			// get the notifications channel on the user stream too.
			c.nch = r.channelNamed(notificationsChannel(account), true)
		}
		r.clients = append(r.clients, c)
		added = append(added, c)
	}
	return added
}

// channelNamed returns the run's channel called name, creating it.
func (r *runState) channelNamed(name string, notify bool) *channel {
	ch := r.chanByName[name]
	if ch == nil {
		ch = newChannel(name, notify)
		r.chanByName[name] = ch
		r.channels = append(r.channels, ch)
	}
	return ch
}

func (r *runState) runStep(ctx, clientsCtx context.Context, clientsWG *sync.WaitGroup,
	limiter *rate.Limiter, n int, rep *Report) (*StepReport, error) {
	step := &StepReport{TargetClients: n}
	droppedBefore := r.dropped.Load()

	// Connect.
	r.phase.Store("connect")
	ch := hist.New()
	r.connHist.Store(ch)
	added := r.addClients(n)
	if r.cfg.Instance != nil && r.plan == nil {
		if err := r.buildPlan(); err != nil {
			return nil, err
		}
		rep.Instance = &r.plan.model
	}
	connectStart := time.Now()
	var connectWG sync.WaitGroup
	var err error
	for _, c := range added {
		if err = limiter.Wait(ctx); err != nil {
			break
		}
		connectWG.Add(1)
		clientsWG.Go(func() { r.runClient(clientsCtx, c, connectWG.Done) })
	}
	if werr := waitCtx(ctx, &connectWG); err == nil {
		err = werr
	}
	step.ConnectSeconds = time.Since(connectStart).Seconds()
	step.ConnectLatencyMS = percentiles(ch)
	if err != nil {
		return step, err
	}
	step.NewFailures = countState(added, stateFailed)

	// Confirm subscriptions with probes.
	r.phase.Store("probe")
	probeStart := time.Now()
	if err := r.probe(ctx); err != nil {
		return step, err
	}
	step.ProbeSeconds = time.Since(probeStart).Seconds()
	if r.cfg.ServerPID > 0 {
		if s, err := readProc(r.cfg.ServerPID); err == nil {
			step.Server = &ServerStats{RSSConnectedKB: s.RSSKB}
		}
	}

	// A soak's churn starts before the warm-up, so the window sees it in
	// its steady state.
	var soak *soakRun
	if r.cfg.Soak != nil {
		soak = r.startSoak(clientsCtx)
		defer soak.stop()
	}

	// Warm up.
	if r.cfg.Warmup > 0 {
		r.phase.Store("warmup")
		if _, err := r.publish(ctx, r.cfg.Warmup, 0, false); err != nil {
			return step, err
		}
	}

	// Measure.
	r.phase.Store("measure")
	counted := r.openWindow()
	if soak != nil {
		soak.openWindow(clientsCtx)
	}
	srv0, srvErr0 := r.sampleServer()
	self0, selfErr0 := readProc(os.Getpid())
	pubStart := time.Now()
	ps, err := r.publish(ctx, r.cfg.Duration, r.cfg.MaxTicks, true)
	for soak != nil && err == nil && soak.samples() < soak.cfg.MinSamples {
		var more publishResult
		more, err = r.publish(ctx, soak.cfg.SampleInterval, 0, true)
		ps.ticks += more.ticks
		ps.events += more.events
		ps.errors += more.errors
	}
	pubSecs := time.Since(pubStart).Seconds()
	if err != nil {
		return step, err
	}
	if soak != nil {
		r.phase.Store("settle")
		rep.Soak = soak.finish(ctx, max(r.cfg.Drain, 5*time.Second))
	}
	r.phase.Store("drain")
	if err := r.drain(ctx, r.cfg.Drain); err != nil {
		return step, err
	}
	srv1, srvErr1 := r.sampleServer()
	self1, selfErr1 := readProc(os.Getpid())
	counts := r.closeWindow()

	step.Publish = PublishStats{
		Channels: len(r.channels), Ticks: ps.ticks, Events: ps.events, Errors: ps.errors,
		Seconds: pubSecs,
	}
	if pubSecs > 0 {
		step.Publish.TicksPerSecond = float64(ps.ticks) / pubSecs
		step.Publish.EventsPerSecond = float64(ps.events) / pubSecs
	}
	if r.plan != nil {
		step.Publish.Statuses, step.Publish.Notifications = ps.statuses, ps.notifications
		lag := percentiles(ps.lag)
		step.Publish.ScheduleLagMS = &lag
	}
	step.fillClients(r.clients, counted)
	step.NewDrops = int(r.dropped.Load() - droppedBefore)
	step.Deliveries = deliveryStats(counts, r, pubSecs)
	step.LatencyMS = percentiles(r.lat.Load())
	if r.cfg.ServerPID > 0 && srvErr0 == nil && srvErr1 == nil && step.Server != nil {
		s := step.Server
		s.CPUSeconds = srv1.CPUSeconds - srv0.CPUSeconds
		s.RSSAfterKB = srv1.RSSKB
		if counts.Unique > 0 {
			s.CPUMicrosPerDelivery = s.CPUSeconds * 1e6 / float64(counts.Unique)
		}
		if ps.events > 0 {
			s.CPUMicrosPerEvent = s.CPUSeconds * 1e6 / float64(ps.events)
		}
		if step.Connected > 0 && s.RSSConnectedKB > rep.ServerBaselineRSSKB {
			s.RSSPerConnKB = float64(s.RSSConnectedKB-rep.ServerBaselineRSSKB) / float64(step.Connected)
		}
	}
	if selfErr0 == nil && selfErr1 == nil {
		step.ToolCPUSeconds = self1.CPUSeconds - self0.CPUSeconds
		step.ToolRSSKB = self1.RSSKB
	}
	return step, nil
}

func (r *runState) sampleServer() (procSample, error) {
	if r.cfg.ServerPID <= 0 {
		return procSample{}, errors.New("no server pid")
	}
	return readProc(r.cfg.ServerPID)
}

func countState(cs []*client, s clientState) int {
	n := 0
	for _, c := range cs {
		if clientState(c.state.Load()) == s {
			n++
		}
	}
	return n
}

// waitCtx waits for wg or ctx, whichever is first.
func waitCtx(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// probe publishes probe events on every channel that has a connected
// client still waiting for one, until every connected client has seen a
// probe on each of its channels, or ProbeTimeout passes.
func (r *runState) probe(ctx context.Context) error {
	deadline := time.Now().Add(r.cfg.ProbeTimeout)
	var b batch
	for {
		need := r.probeTargets()
		if len(need) == 0 || time.Now().After(deadline) {
			return nil
		}
		for _, ch := range need {
			r.probeSeq++
			b.add(r, ch, r.probeSeq, true)
			if len(b.msgs) == publishBatch {
				r.publishProbes(ctx, &b)
			}
		}
		r.publishProbes(ctx, &b)
		t := time.NewTimer(r.cfg.ProbeInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (r *runState) publishProbes(ctx context.Context, b *batch) {
	if len(b.msgs) > 0 {
		if err := r.pub.Publish(ctx, b.msgs); err != nil {
			r.pubErrors.Add(1)
		}
	}
	b.reset()
}

// probeTargets lists the channels on which some connected, unconfirmed
// client has not yet seen a probe.
func (r *runState) probeTargets() []*channel {
	r.probeRound++
	var out []*channel
	mark := func(ch *channel) {
		if ch.probeRound != r.probeRound {
			ch.probeRound = r.probeRound
			out = append(out, ch)
		}
	}
	for _, c := range r.clients {
		if clientState(c.state.Load()) != stateConnected || c.confirmed.Load() {
			continue
		}
		seen := c.probes.Load()
		if c.ch != nil && seen&probeUpdate == 0 {
			mark(c.ch)
		}
		if c.nch != nil && seen&probeNotify == 0 {
			mark(c.nch)
		}
	}
	return out
}

type publishResult struct {
	ticks  int // ticks, or actions in instance runs
	events uint64
	errors uint64
	// Instance runs only: what the actions were, and how late each was
	// published against its schedule.
	statuses, notifications uint64
	lag                     *hist.Histogram
}

// flush publishes b as one pipeline and, while measuring, counts each
// event as owed to its channel's counted clients.
func (r *runState) flush(ctx context.Context, b *batch, res *publishResult, measuring bool) {
	if len(b.msgs) == 0 {
		return
	}
	if err := r.pub.Publish(ctx, b.msgs); err != nil {
		res.errors += uint64(len(b.msgs))
		r.pubErrors.Add(1)
	} else {
		res.events += uint64(len(b.msgs))
		if measuring {
			var owed uint64
			for _, ch := range b.chans {
				ch.ok.Add(1)
				owed += ch.subs
			}
			r.owed.Add(owed)
		}
	}
	b.reset()
}

// publish runs the run's publishing schedule for d (or max ticks or
// actions when positive).
func (r *runState) publish(ctx context.Context, d time.Duration, limit int, measuring bool) (publishResult, error) {
	if r.plan != nil {
		return r.publishInstance(ctx, d, limit, measuring)
	}
	return r.publishFor(ctx, d, limit, measuring)
}

// publishFor publishes one event per channel per tick at cfg.Rate for d (or
// maxTicks ticks when positive).
func (r *runState) publishFor(ctx context.Context, d time.Duration, maxTicks int, measuring bool) (publishResult, error) {
	var res publishResult
	period := time.Duration(float64(time.Second) / r.cfg.Rate)
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	// A slow tick rate must not stretch the window past d.
	endTimer := time.NewTimer(d)
	defer endTimer.Stop()
	var b batch
	for {
		if maxTicks > 0 && res.ticks >= maxTicks {
			return res, nil
		}
		for _, ch := range r.channels {
			b.add(r, ch, ch.nextSeq, false)
			ch.nextSeq++
			if len(b.msgs) == publishBatch {
				r.flush(ctx, &b, &res, measuring)
			}
		}
		r.flush(ctx, &b, &res, measuring)
		res.ticks++
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-endTimer.C:
			return res, nil
		case <-ticker.C:
		}
	}
}

// openWindow starts a measured window: every channel's next sequence number
// becomes its window base and every live, confirmed client starts counting.
// It returns the number of counted clients.
func (r *runState) openWindow() int {
	for _, ch := range r.channels {
		ch.ok.Store(0)
		ch.subs = 0
		ch.lo.Store(ch.nextSeq)
	}
	counted := 0
	for _, c := range r.clients {
		live := clientState(c.state.Load()) == stateConnected && c.confirmed.Load()
		c.mu.Lock()
		c.inWindow = live
		if c.ch != nil {
			c.tracker.reset(c.ch.lo.Load())
		}
		if c.nch != nil {
			c.ntracker.reset(c.nch.lo.Load())
		}
		c.mu.Unlock()
		if live {
			if c.ch != nil {
				c.ch.subs++
			}
			if c.nch != nil {
				c.nch.subs++
			}
			counted++
		}
	}
	r.received.Store(0)
	r.dups.Store(0)
	r.owed.Store(0)
	r.lat.Store(hist.New())
	return counted
}

// drain waits until every owed delivery has arrived, or for at most d.
func (r *runState) drain(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if r.received.Load()-r.dups.Load() >= r.owed.Load() {
			return nil
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// closeWindow stops counting and sums up every counted client.
func (r *runState) closeWindow() windowCounts {
	for _, ch := range r.channels {
		ch.lo.Store(math.MaxUint64)
	}
	var total windowCounts
	for _, c := range r.clients {
		c.mu.Lock()
		if c.inWindow {
			if c.ch != nil {
				total.add(c.tracker.counts(c.ch.ok.Load()))
			}
			if c.nch != nil {
				total.add(c.ntracker.counts(c.nch.ok.Load()))
			}
			c.inWindow = false
		}
		c.mu.Unlock()
	}
	return total
}

func (r *runState) progress(done <-chan struct{}) {
	every := r.cfg.ProgressInterval
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	start := time.Now()
	var lastRecv, lastExpected uint64
	last := start
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			recv := r.received.Load()
			unique := recv - r.dups.Load()
			if recv < lastRecv { // a new window started
				lastRecv, lastExpected = 0, 0
			}
			rate := float64(recv-lastRecv) / now.Sub(last).Seconds()
			// Deliveries owed a full interval ago that have still not arrived.
			var lost uint64
			if lastExpected > unique {
				lost = lastExpected - unique
			}
			var p99 time.Duration
			if h := r.lat.Load(); h != nil {
				p99 = time.Duration(h.Quantile(0.99))
			}
			_, _ = fmt.Fprintf(r.cfg.Progress,
				"[%5.0fs] %s %-7s | clients %d up, %d failed, %d dropped, %d confirmed | %.0f deliv/s | p99 %s | lost~ %d\n",
				now.Sub(start).Seconds(), r.stepLabel.Load(), r.phase.Load(),
				r.connected.Load(), r.failed.Load(), r.dropped.Load(), r.confirmedN.Load(),
				rate, fmtDur(p99), lost)
			lastRecv, lastExpected, last = recv, r.owed.Load(), now
		}
	}
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/1e6)
}

// targetString is the target URL as the report shows it.
func targetString(u *url.URL) string { return u.Scheme + "://" + u.Host + u.Path }
