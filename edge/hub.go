package edge

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spillway/spillway/shared/bus"
	"github.com/spillway/spillway/shared/channel"
)

// hub multiplexes every local subscription onto one NATS subscription per
// channel. NATS messages land on a few bounded shard queues (nats.go drops
// and reports a slow consumer when one is full, so the NATS reader never
// waits on us); one dispatcher goroutine per shard decodes each event once
// and hands it to the topic's subscribers. Subjects are pinned to shards, so
// per-channel order is kept.
type hub struct {
	nc       *nats.Conn
	subjects channel.Subjects
	logger   *slog.Logger
	metrics  *metrics
	filter   *filterer
	seed     maphash.Seed
	shards   []chan *nats.Msg // NATS mode: one queue per dispatcher
	// handoffs are local mode's dispatcher queues, when there is more than
	// one processor to spread events over; with one, deliver dispatches
	// on the caller's goroutine, which is cheapest.
	handoffs []chan handoff

	// local means events arrive through deliver, handed over in process
	// by the all-in-one broker, rather than on NATS subscriptions: topics
	// then hold no NATS subscription and index is keyed by channel name.
	local bool

	mu     sync.Mutex
	topics map[channel.Name]*topic
	// index finds a topic without mu: by subject (NATS) or channel name
	// (local).
	index sync.Map
	// system holds the two wildcard subscriptions that carry every system
	// and access-token channel while the hub runs. Each connection
	// listens on two such channels of its own; one NATS subscription
	// apiece would cost several KB per idle connection, while their
	// traffic (kill, filters_changed) is a trickle every edge can afford
	// to receive in full.
	system  []*nats.Subscription
	natsSub int // NATS subscriptions held, wildcards included
	// accounts and tokens list the sessions on each system and
	// access-token channel, by id. With two such channels per connection,
	// a topic apiece (subject, snapshot, lock-free index entry) would cost
	// ~1 KB per idle connection; a trickle of control messages needs no
	// more than a locked map.
	accounts map[int64][]*session
	tokens   map[int64][]*session
	// onKill, when set, hears every kill on a system or access-token
	// channel, whether or not a local connection listens there (the token
	// cache). Set before run.
	onKill func(channel.Name)
}

// topic is one channel with local subscribers.
type topic struct {
	name     channel.Name
	subject  string
	shard    int                // dispatcher and filter worker index
	ns       *nats.Subscription // nil in local mode
	received prometheus.Counter // spillway_events_received_total of its kind
	live     int                // live subscriptions; guarded by hub.mu
	dead     int                // tombstoned entries still in snap; guarded by hub.mu
	// snap is the subscriber list the dispatcher iterates without locking.
	// Adds append in place when capacity allows (readers never look past
	// their own length); removals only tombstone, and the list is compacted
	// into a fresh slice once tombstones dominate. Both keep a connect or
	// disconnect storm O(1) amortised per client.
	snap atomic.Pointer[[]*subscription]
}

// subscription is one stream of one session on one channel.
type subscription struct {
	sess  *session
	topic *topic
	label string    // WebSocket stream label JSON; "" on SSE
	rule  *feedRule // non-nil on public and hashtag streams: filter update events
	dead  atomic.Bool
}

func newHub(nc *nats.Conn, subjects channel.Subjects, local bool, nshards, queue int, logger *slog.Logger, m *metrics) *hub {
	h := &hub{
		nc:       nc,
		local:    local,
		subjects: subjects,
		logger:   logger,
		metrics:  m,
		seed:     maphash.MakeSeed(),
		topics:   make(map[channel.Name]*topic),
		accounts: make(map[int64][]*session),
		tokens:   make(map[int64][]*session),
	}
	for range nshards {
		if local {
			if nshards > 1 {
				h.handoffs = append(h.handoffs, make(chan handoff, queue))
			}
			// NATS carries no events here; the shard indexes still pin
			// channels to filter workers.
			h.shards = append(h.shards, nil)
			continue
		}
		h.shards = append(h.shards, make(chan *nats.Msg, queue))
	}
	return h
}

// handoff is one message delivered in process, queued for a dispatcher.
type handoff struct {
	t        *topic // nil for a system or access-token channel
	name     channel.Name
	data     []byte
	received time.Time
}

// run dispatches until ctx is done. It returns when every dispatcher has.
func (h *hub) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ch := range h.handoffs {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-ch:
					if m.t != nil {
						h.dispatchTopic(m.t, m.data, nil, m.received)
					} else {
						h.dispatchControl(m.name, m.data)
					}
				}
			}
		})
	}
	for _, ch := range h.shards {
		if ch == nil {
			continue
		}
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-ch:
					h.dispatch(m)
				}
			}
		})
	}
	wg.Wait()
	h.unsubscribeSystem()
}

// unsubscribeSystem drops the wildcards.
func (h *hub) unsubscribeSystem() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropSystemLocked()
}

// subscribe adds sub to its channel, creating the NATS subscription for the
// first local subscriber; created reports that. A name too long for a
// subject is refused here too, whatever resolved it: NATS would close the
// edge's connection (and nats.go would resend the subscription on every
// reconnect).
func (h *hub) subscribe(name channel.Name, sub *subscription) (created bool, err error) {
	if err := channel.CheckName(name); err != nil {
		return false, fmt.Errorf("edge: subscribe: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[name]
	if t == nil {
		t = &topic{name: name, subject: h.subjects.Of(name), received: h.metrics.eventsReceived.WithLabelValues(kindOf(name))}
		t.shard = int(maphash.String(h.seed, t.subject) % uint64(len(h.shards)))
		key := t.subject
		if h.local {
			key = string(name)
		} else {
			ns, err := h.nc.ChanSubscribe(t.subject, h.shards[t.shard])
			if err != nil {
				return false, fmt.Errorf("edge: nats subscribe %s: %w", t.subject, err)
			}
			t.ns = ns
			h.natsSub++
		}
		created = true
		empty := make([]*subscription, 0, 4)
		t.snap.Store(&empty)
		h.topics[name] = t
		h.index.Store(key, t)
		h.countLocked()
		if name.Tracked() {
			h.publishInterest([]string{string(name)})
		}
	}
	sub.topic = t
	s := *t.snap.Load()
	if len(s) < cap(s) {
		s = s[:len(s)+1]
		s[len(s)-1] = sub
	} else {
		ns := make([]*subscription, len(s), 2*cap(s)+4)
		copy(ns, s)
		s = append(ns, sub)
	}
	t.snap.Store(&s)
	t.live++
	return created, nil
}

// subscribeSystem subscribes to every system and access-token channel, all
// onto one shard so each channel's messages stay in order, and waits for
// the server to confirm. Run calls it before serving.
func (h *hub) subscribeSystem(timeout time.Duration) error {
	if h.local {
		return nil // they arrive through deliver with every other channel
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range []channel.Name{channel.System(0), channel.AccessToken(0)} {
		subject := h.subjects.Of(n)
		wildcard := subject[:strings.LastIndexByte(subject, '.')] + ".*"
		ns, err := h.nc.ChanSubscribe(wildcard, h.shards[0])
		if err != nil {
			h.dropSystemLocked()
			return fmt.Errorf("edge: nats subscribe %s: %w", wildcard, err)
		}
		h.system = append(h.system, ns)
		h.natsSub++
	}
	h.countLocked()
	// Without a connection (NATS unreachable at startup, or reconnecting)
	// the subscriptions are kept: nats.go sends them once it connects,
	// and the edge reports itself not ready meanwhile.
	if !h.nc.IsConnected() {
		return nil
	}
	if err := h.nc.FlushTimeout(timeout); err != nil && h.nc.IsConnected() {
		h.dropSystemLocked()
		return fmt.Errorf("edge: nats: %w", err)
	}
	return nil
}

// dropSystemLocked drops the wildcards. Lock must be held.
func (h *hub) dropSystemLocked() {
	for _, ns := range h.system {
		if err := ns.Unsubscribe(); err != nil {
			h.logger.Debug("nats unsubscribe", "subject", ns.Subject, "err", err)
		}
	}
	h.natsSub -= len(h.system)
	h.system = nil
	h.countLocked()
}

// listen adds s to its account's system channel and its token's
// access-token channel.
func (h *hub) listen(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.accounts[s.id.AccountID] = append(h.accounts[s.id.AccountID], s)
	h.tokens[s.id.TokenID] = append(h.tokens[s.id.TokenID], s)
	h.countLocked()
}

// unlisten undoes listen; it does nothing for a session not listening.
func (h *hub) unlisten(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	dropSession(h.accounts, s.id.AccountID, s)
	dropSession(h.tokens, s.id.TokenID, s)
	h.countLocked()
}

func dropSession(m map[int64][]*session, id int64, s *session) {
	list := m[id]
	for i, x := range list {
		if x == s {
			list[i] = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(m, id)
	} else {
		m[id] = list
	}
}

// listeners returns a copy of the sessions on a system or access-token
// channel.
func (h *hub) listeners(n channel.Name) []*session {
	h.mu.Lock()
	defer h.mu.Unlock()
	if id, ok := channel.SystemAccountID(n); ok {
		return slices.Clone(h.accounts[id])
	}
	if id, ok := channel.AccessTokenID(n); ok {
		return slices.Clone(h.tokens[id])
	}
	return nil
}

// countLocked publishes the subscription gauges: every channel listened
// to, as Mastodon counts its Redis subscriptions, and the NATS
// subscriptions behind them. Lock must be held.
func (h *hub) countLocked() {
	h.metrics.setSubscriptions(len(h.topics)+len(h.accounts)+len(h.tokens), h.natsSub)
}

// sync waits until the NATS server has seen every subscription made so
// far, so that a client told it is subscribed really is.
func (h *hub) sync(timeout time.Duration) error {
	return h.nc.FlushTimeout(timeout)
}

// unsubscribe removes sub; the last one out drops the NATS subscription.
func (h *hub) unsubscribe(sub *subscription) {
	if sub.dead.Swap(true) || sub.topic == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t := sub.topic
	t.live--
	t.dead++
	if t.live == 0 {
		key := t.subject
		if t.ns != nil {
			if err := t.ns.Unsubscribe(); err != nil {
				h.logger.Debug("nats unsubscribe", "subject", t.subject, "err", err)
			}
			h.natsSub--
		} else {
			key = string(t.name)
		}
		delete(h.topics, t.name)
		h.index.Delete(key)
		h.countLocked()
		return
	}
	if t.dead > t.live {
		old := *t.snap.Load()
		s := make([]*subscription, 0, t.live+t.live/2+4)
		for _, x := range old {
			if !x.dead.Load() {
				s = append(s, x)
			}
		}
		t.snap.Store(&s)
		t.dead = 0
	}
}

// tracked lists the channels whose `subscribed:` keys this edge needs.
func (h *hub) tracked() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for n := range h.topics {
		if n.Tracked() {
			out = append(out, string(n))
		}
	}
	return out
}

// natsSubscriptions is the number of NATS subscriptions held: one per
// stream channel, plus the two system wildcards while the hub runs.
func (h *hub) natsSubscriptions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.natsSub
}

// publishInterest tells the broker about channels. Errors are logged: the
// periodic refresh retries.
func (h *hub) publishInterest(names []string) {
	for _, body := range bus.EncodeInterest(names, interestChunk) {
		if err := h.nc.Publish(h.subjects.Interest(), body); err != nil {
			h.logger.Warn("publish interest", "err", err)
		}
	}
}

// interestChunk keeps interest messages well under NATS's default 1 MiB
// max payload, in case the edge talks to an external server.
const interestChunk = 64 << 10

// refreshInterest republishes every tracked channel each interval, so the
// broker keeps `subscribed:` keys alive (Mastodon refreshes every 360 s),
// and at once when the NATS connection comes back or a (re)started broker
// asks: either may have forgotten everything, and Rails skips home, list
// and notification events for channels without a key.
func (h *hub) refreshInterest(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	asked := make(chan struct{}, 1) // a burst of requests is answered once
	sub, err := h.nc.Subscribe(h.subjects.Resync(), func(*nats.Msg) {
		select {
		case asked <- struct{}{}:
		default:
		}
	})
	if err != nil {
		h.logger.Warn("nats subscribe "+h.subjects.Resync()+"; interest is re-announced on reconnect and each refresh only", "err", err)
	} else {
		defer func() { _ = sub.Unsubscribe() }()
	}
	connected := h.nc.StatusChanged(nats.CONNECTED)
	defer h.nc.RemoveStatusListener(connected)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-asked:
		case <-connected:
		}
		h.publishInterest(h.tracked())
	}
}

// dispatch handles one message from a NATS subscription.
func (h *hub) dispatch(m *nats.Msg) {
	if v, ok := h.index.Load(m.Subject); ok {
		h.dispatchTopic(v.(*topic), m.Data, m.Header, time.Time{})
		return
	}
	// A system or access-token channel, or a channel unsubscribed while
	// the message was queued.
	if n, err := h.subjects.Parse(m.Subject); err == nil && isSystem(n) {
		h.dispatchControl(n, m.Data)
	}
}

// deliver handles one message handed over in process (local mode) by the
// all-in-one broker, in Redis order: on the caller's goroutine with one
// dispatcher, else queued for the channel's dispatcher. data is only read.
func (h *hub) deliver(name channel.Name, data []byte, received time.Time) {
	var t *topic
	if v, ok := h.index.Load(string(name)); ok {
		t = v.(*topic)
	} else if !isSystem(name) {
		return
	}
	if h.handoffs == nil {
		if t != nil {
			h.dispatchTopic(t, data, nil, received)
		} else {
			h.dispatchControl(name, data)
		}
		return
	}
	// Channels stay pinned to one dispatcher, so each keeps its order;
	// system and access-token channels all go to the first, as on NATS.
	q := h.handoffs[0]
	if t != nil {
		q = h.handoffs[t.shard]
	}
	select {
	case q <- handoff{t: t, name: name, data: data, received: received}:
	default:
		// Never wait: the broker's reading must not stall behind one
		// busy dispatcher (nats.go drops a slow consumer's messages the
		// same way).
		h.metrics.eventsDropped.WithLabelValues("dispatch_queue_full").Inc()
	}
}

// dispatchTopic decodes one event and fans it out. It never blocks on a
// client: deliveries are non-blocking outbox sends, and events that need
// Postgres go to the filterer's bounded queue. For events that carry no
// queued_at, the time the broker got the message is in hdr (NATS) or is
// received (local).
func (h *hub) dispatchTopic(t *topic, data []byte, hdr nats.Header, received time.Time) {
	h.metrics.redisMessages.Inc()
	t.received.Inc()
	subs := *t.snap.Load()
	ev := decodeEvent(data, time.Now())
	if ev == nil {
		h.metrics.eventsDropped.WithLabelValues("malformed").Inc()
		return
	}
	if ev.queuedAt.IsZero() {
		if hdr != nil {
			received = parseReceived(hdr.Get(bus.HeaderReceived))
		}
		ev.queuedAt = received
	}
	pending := fanOut(ev, subs, h.metrics)
	if len(pending) > 0 {
		h.filter.enqueue(t.shard, ev, pending)
	}
}

// dispatchControl acts on a message of a system or access-token channel:
// `kill` ends its sessions (and evicts the token cache even when none is
// here), `filters_changed` drops their cached keyword filters; nothing is
// forwarded to clients.
func (h *hub) dispatchControl(n channel.Name, data []byte) {
	event := controlEvent(data)
	if event == "kill" && h.onKill != nil {
		h.onKill(n)
	}
	sessions := h.listeners(n)
	if len(sessions) == 0 {
		return
	}
	h.metrics.redisMessages.Inc()
	h.metrics.eventsReceived.WithLabelValues("system").Inc()
	for _, s := range sessions {
		switch event {
		case "kill":
			s.ops.kill()
		case "filters_changed":
			s.filtersChanged()
		}
	}
}

// fanOut writes ev to every live subscriber that takes it unfiltered and
// returns those whose streams filter it.
func fanOut(ev *event, subs []*subscription, m *metrics) (pending []*subscription) {
	var sent [2]int
	// Every subscriber of one transport (and, on WebSocket, one label)
	// gets the same bytes: look them up once, not once per client.
	var frames frameMemo
	for _, s := range subs {
		if s.dead.Load() {
			continue
		}
		if s.rule != nil && ev.filterable() {
			pending = append(pending, s)
			continue
		}
		if s.sess.out.sendFrame(frames.of(ev, s)) {
			sent[s.sess.transport]++
		}
	}
	m.addSent(sent, ev)
	return pending
}

// frameMemo remembers the unfiltered frames of one event during a fan-out.
type frameMemo struct {
	sse, ws frame
	haveSSE bool
	haveWS  bool
	wsLabel string
}

func (m *frameMemo) of(ev *event, s *subscription) frame {
	if s.sess.transport == transportWS {
		if !m.haveWS || s.label != m.wsLabel {
			m.ws, m.wsLabel, m.haveWS = ev.wsFrame(s.label, nil), s.label, true
		}
		return m.ws
	}
	if !m.haveSSE {
		m.sse, m.haveSSE = ev.sseFrame(nil), true
	}
	return m.sse
}

// isSystem reports whether n is one of the two per-connection control
// channels, whose messages are never forwarded.
func isSystem(n channel.Name) bool {
	return hasPrefix(string(n), "timeline:system:") || hasPrefix(string(n), "timeline:access_token:")
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// kindOf classifies a channel for metrics, with a bounded label set.
func kindOf(n channel.Name) string {
	s := string(n)
	switch {
	case hasPrefix(s, "timeline:public"):
		return "public"
	case hasPrefix(s, "timeline:hashtag:"):
		return "hashtag"
	case hasPrefix(s, "timeline:list:"):
		return "list"
	case hasPrefix(s, "timeline:direct:"):
		return "direct"
	case hasPrefix(s, "timeline:system:"), hasPrefix(s, "timeline:access_token:"):
		return "system"
	case len(s) > len("timeline:notifications") && s[len(s)-len(":notifications"):] == ":notifications":
		return "notification"
	default:
		return "user"
	}
}
