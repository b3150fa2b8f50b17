package edge

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spillway/spillway/edge/keyword"
	"github.com/spillway/spillway/edge/store"
)

// transport indexes per-transport counters.
type transport uint8

const (
	transportSSE transport = iota
	transportWS
)

func (t transport) String() string {
	if t == transportWS {
		return "websocket"
	}
	return "eventsource"
}

// transportOps is what SSE and WebSocket each supply to the one session
// lifecycle; admission, counting, system channels, keep-alive scheduling,
// subscriptions and teardown are common (this file).
type transportOps interface {
	// kill ends the session as Mastodon does on `kill`.
	kill()
	// goingAway ends the session for shutdown, or for shedding while NATS
	// is down (why says which).
	goingAway(why closeReason)
	// keepAlive runs once per keep-alive period: the SSE heartbeat, the
	// WebSocket ping.
	keepAlive()
	// release drops what the transport holds of its own (its socket watch).
	// It runs once, first in the session's teardown.
	release()
}

// session is one client connection, SSE or WebSocket. The hub and the
// filterer talk to it through its outbox and ops; its life (open to
// teardown) is the same for both transports.
type session struct {
	edge      *Edge
	id        store.Identity
	transport transport
	out       *outbox
	ops       transportOps
	adm       admission
	life      life
	beat      int    // slot in the transport's keep-alive wheel
	reqID     string // X-Request-Id, for the log lines
	opened    time.Time

	// filters caches the account's keyword filters for this connection.
	// Nil means not loaded; filtersGen counts invalidations, so a load
	// that raced with filters_changed is not stored.
	filters    atomic.Pointer[keyword.Matcher]
	filtersGen atomic.Uint64

	mu      sync.Mutex
	streams []stream // guarded by mu
	// names lists the stream names subscribed over the session's life, in
	// the order of their first subscription, for its log lines. Names
	// carry no tag or list id, so there are at most a dozen. Guarded by mu.
	names []string
}

// stream is one subscribed stream of a session: what Mastodon calls a
// subscription, on one or more channels.
type stream struct {
	key  string // channel names joined by ';', Mastodon's de-duplication key
	name string // canonical stream name, the connected_channels label
	subs []*subscription
}

func (e *Edge) newSession(reqID string, id store.Identity, t transport) *session {
	s := &session{edge: e, id: id, transport: t, reqID: reqID}
	s.life.busy = 1 // the handler setting the session up
	return s
}

// admission is a client connection counted against the edge's limits
// before its socket is taken over. A session carries it and gives it back
// at teardown; a connection that goes no further than admission gives it
// back itself with release.
type admission struct {
	edge    *Edge
	client  client
	key     netip.Addr // the per-address limit key counted (limitKey)
	account int64      // the account counted
}

// admit counts a new streaming connection of id from c, refusing it while
// the edge is draining, while it sheds its clients for a lost NATS
// connection, beyond MaxConnections, or beyond the per-address and
// per-account limits; each refusal is counted by reason.
func (e *Edge) admit(c client, id store.Identity) (admission, *apiError) {
	switch {
	case e.draining.Load():
		return admission{}, e.refusal(refusedDraining, errDraining)
	case e.ready.shedding.Load():
		return admission{}, e.refusal(refusedNATS, errNATSDown)
	}
	n := e.conns.Add(1)
	if e.cfg.MaxConnections > 0 && n > int64(e.cfg.MaxConnections) {
		e.conns.Add(-1)
		return admission{}, e.refusal(refusedMax, errTooMany)
	}
	a := admission{edge: e, client: c, key: c.limitKey(), account: id.AccountID}
	if reason, aerr := e.perClient.take(a.key, a.account); aerr != nil {
		e.conns.Add(-1)
		return admission{}, e.refusal(reason, aerr)
	}
	return a, nil
}

// refusal counts a refused connection and returns its error.
func (e *Edge) refusal(reason string, aerr *apiError) *apiError {
	e.metrics.connectionsRefused.WithLabelValues(reason).Inc()
	return aerr
}

// release gives the admission back.
func (a admission) release() {
	if a.edge != nil {
		a.edge.conns.Add(-1)
		a.edge.perClient.give(a.key, a.account)
	}
}

// open starts the common part of a session's life on conn: its outbox,
// shutdown tracking, Mastodon's gauges, the system channels and the
// transport's keep-alive. The outbox holds every frame until the transport
// calls start with its response head, so nothing reaches the client before
// the head. It reports false, with conn closed and a released, when the
// edge began draining meanwhile.
func (e *Edge) open(s *session, a admission, conn net.Conn, ops transportOps) bool {
	s.adm, s.ops = a, ops
	s.opened = time.Now()
	s.out = newOutbox(e.outboxConn(conn), &e.limits, s.closed)
	s.life.teardown = s.teardown
	if !e.track(s) {
		a.release()
		_ = conn.Close()
		s.logRefused(e.refusal(refusedDraining, errDraining))
		return false
	}
	s.out.hold()
	e.metrics.connectedClients.WithLabelValues(s.transport.String()).Inc()
	e.metrics.connectedChannels.WithLabelValues(s.transport.String(), "system").Add(2)
	e.hub.listen(s)
	s.beat = e.keepAlive[s.transport].add(s)
	return true
}

// start ends the transport's set-up: head (if any) is written, then what
// was queued meanwhile, the connection's first log line, and the set-up's
// piece of work in the session's life is over (so the last line, which
// teardown writes, always comes after).
func (s *session) start(head []byte) {
	s.out.release(head)
	s.logOpened()
	s.life.leave()
}

// teardown undoes open, once, after the outbox has closed and the last
// piece of work on the session has ended.
func (s *session) teardown() {
	e := s.edge
	s.ops.release()
	e.keepAlive[s.transport].remove(s, s.beat)
	s.unsubscribeAll()
	e.hub.unlisten(s)
	e.metrics.connectedChannels.WithLabelValues(s.transport.String(), "system").Sub(2)
	e.metrics.connectedClients.WithLabelValues(s.transport.String()).Dec()
	s.adm.release()
	s.logClosed()
	e.untrack(s)
}

// life runs a session's teardown exactly once, when its outbox has closed
// and nothing works on the session any more: the handler setting it up
// counts as one piece of work until it calls leave, and so does each round
// of WebSocket input. Teardown thus never races a subscribe in progress.
type life struct {
	mu       sync.Mutex
	busy     int
	over     bool   // the outbox has closed
	teardown func() // set by open
}

// enter starts a piece of work; false once the session is over.
func (l *life) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.over {
		return false
	}
	l.busy++
	return true
}

// leave ends a piece of work, tearing down if it was the last one after
// the outbox closed.
func (l *life) leave() {
	l.mu.Lock()
	l.busy--
	last := l.over && l.busy == 0
	l.mu.Unlock()
	if last && l.teardown != nil {
		l.teardown()
	}
}

// closed records that the outbox has closed. It may run inside a fan-out,
// a timer wheel or shutdown, so the teardown goes to a goroutine of its
// own.
func (l *life) closed() {
	l.mu.Lock()
	l.over = true
	idle := l.busy == 0
	l.mu.Unlock()
	if idle && l.teardown != nil {
		go l.teardown()
	}
}

// attach binds the session to an outbox without the rest of open
// (benchmarks and tests that drive sessions without sockets).
func (s *session) attach(o *outbox) { s.out = o }

// closed is called by the outbox exactly once.
func (s *session) closed(why closeReason) {
	if why == reasonSlow {
		s.edge.metrics.slowClients.WithLabelValues(s.transport.String()).Inc()
	}
	s.life.closed()
}

// send writes the frame of ev for one subscription. filtered is the JSON
// "filtered" array for statuses on filtered streams, or nil.
func (s *session) send(ev *event, label string, filtered []byte) bool {
	if s.transport == transportWS {
		return s.out.sendFrame(ev.wsFrame(label, filtered))
	}
	return s.out.sendFrame(ev.sseFrame(filtered))
}

func (s *session) filtersChanged() {
	s.filtersGen.Add(1)
	s.filters.Store(nil)
}

// subscribe adds the stream r resolves to, on every channel of r, unless
// the session already has a stream with the same key (Mastodon ignores
// such a subscribe, so frames keep the first stream label). When that
// created a NATS subscription, it waits for the server to acknowledge it
// (one round trip), so events published once the client is told it is
// subscribed are not missed.
func (s *session) subscribe(r *resolved) (added bool, err error) {
	s.mu.Lock()
	for _, st := range s.streams {
		if st.key == r.key {
			s.mu.Unlock()
			return false, nil
		}
	}
	s.mu.Unlock()
	label := ""
	if s.transport == transportWS {
		label = r.label
	}
	subs := make([]*subscription, 0, len(r.channels))
	fresh := false
	for _, name := range r.channels {
		sub := &subscription{sess: s, label: label, rule: r.rule}
		created, err := s.edge.hub.subscribe(name, sub)
		if err != nil {
			for _, x := range subs {
				s.edge.hub.unsubscribe(x)
			}
			return false, err
		}
		fresh = fresh || created
		subs = append(subs, sub)
	}
	if fresh {
		if err := s.edge.hub.sync(5 * time.Second); err != nil {
			s.edge.logger.Warn("nats subscription not confirmed", "err", err)
		}
	}
	s.mu.Lock()
	s.streams = append(s.streams, stream{key: r.key, name: r.stream, subs: subs})
	if !slices.Contains(s.names, r.stream) {
		s.names = append(s.names, r.stream)
	}
	s.mu.Unlock()
	s.edge.metrics.connectedChannels.WithLabelValues(s.transport.String(), r.stream).Inc()
	return true, nil
}

// room reports whether a stream with key may be added within max streams
// (0: no limit): true too when the session has it already, as subscribing
// again is then a no-op.
func (s *session) room(key string, max int) bool {
	if max <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.streams) < max {
		return true
	}
	for _, st := range s.streams {
		if st.key == key {
			return true
		}
	}
	return false
}

// unsubscribe removes the stream with key; it does nothing when there is
// none.
func (s *session) unsubscribe(key string) {
	s.mu.Lock()
	var st stream
	found := false
	for i, x := range s.streams {
		if x.key == key {
			st, found = x, true
			s.streams = slices.Delete(s.streams, i, i+1)
			break
		}
	}
	s.mu.Unlock()
	if found {
		s.drop(st)
	}
}

// unsubscribeAll removes every stream; teardown calls it once.
func (s *session) unsubscribeAll() {
	s.mu.Lock()
	all := s.streams
	s.streams = nil
	s.mu.Unlock()
	for _, st := range all {
		s.drop(st)
	}
}

func (s *session) drop(st stream) {
	for _, x := range st.subs {
		s.edge.hub.unsubscribe(x)
	}
	s.edge.metrics.connectedChannels.WithLabelValues(s.transport.String(), st.name).Dec()
}

// parseReceived reads bus.HeaderReceived.
func parseReceived(v string) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
