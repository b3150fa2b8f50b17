package edge

import (
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

// session is one client connection, SSE or WebSocket. The hub and the
// filterer talk to it only through send, kill and filtersChanged; the
// transport (sse.go, ws.go) owns its lifetime.
type session struct {
	edge      *Edge
	id        store.Identity
	transport transport
	out       *outbox
	done      chan struct{} // closed when the outbox closes
	doneOnce  sync.Once

	// onKill ends the session the way the transport does it for `kill`;
	// onPing runs the WebSocket keep-alive.
	onKill func()
	onPing func()
	life   life

	// filters caches the account's keyword filters for this connection
	// (§11.5). Nil means not loaded; filtersGen counts invalidations, so a
	// load that raced with filters_changed is not stored.
	filters    atomic.Pointer[keyword.Matcher]
	filtersGen atomic.Uint64

	mu   sync.Mutex
	subs []*subscription // guarded by mu
}

func (e *Edge) newSession(id store.Identity, t transport) *session {
	s := &session{edge: e, id: id, transport: t, done: make(chan struct{})}
	s.life.busy = 1 // the handler setting the session up
	return s
}

// life runs a session's teardown exactly once, when its outbox has closed
// and nothing works on the session any more: the handler setting it up
// counts as one piece of work until it calls leave, and so does each round
// of WebSocket input. Teardown thus never races a subscribe in progress.
type life struct {
	mu       sync.Mutex
	busy     int
	over     bool   // the outbox has closed
	teardown func() // set by the transport before the handler leaves
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

// attach binds the session to its socket.
func (s *session) attach(o *outbox) { s.out = o }

// closed is called by the outbox exactly once.
func (s *session) closed(slow bool) {
	if slow {
		s.edge.metrics.slowClients.WithLabelValues(s.transport.String()).Inc()
	}
	s.doneOnce.Do(func() { close(s.done) })
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

func (s *session) kill() {
	if s.onKill != nil {
		s.onKill()
	}
}

func (s *session) ping() {
	if s.onPing != nil {
		s.onPing()
	}
}

func (s *session) filtersChanged() {
	s.filtersGen.Add(1)
	s.filters.Store(nil)
}

// subscribe adds a stream subscription on every channel of r. When that
// created a NATS subscription, it waits for the server to acknowledge it
// (one round trip), so events published once the client is told it is
// subscribed are not missed.
func (s *session) subscribe(r *resolved, label string) ([]*subscription, error) {
	subs := make([]*subscription, 0, len(r.channels))
	fresh := false
	for _, name := range r.channels {
		sub := &subscription{sess: s, label: label, rule: r.rule}
		created, err := s.edge.hub.subscribe(name, sub)
		if err != nil {
			for _, x := range subs {
				s.edge.hub.unsubscribe(x)
			}
			return nil, err
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
	s.subs = append(s.subs, subs...)
	s.mu.Unlock()
	return subs, nil
}

// listenSystem adds the two control channels every authenticated
// connection listens on (§5.5).
func (s *session) listenSystem() { s.edge.hub.listen(s) }

// unsubscribe removes some subscriptions.
func (s *session) unsubscribe(subs []*subscription) {
	for _, x := range subs {
		s.edge.hub.unsubscribe(x)
	}
	s.mu.Lock()
	kept := s.subs[:0]
	for _, x := range s.subs {
		if !x.dead.Load() {
			kept = append(kept, x)
		}
	}
	clear(s.subs[len(kept):])
	s.subs = kept
	s.mu.Unlock()
}

// unsubscribeAll removes every subscription; called once when the
// connection ends.
func (s *session) unsubscribeAll() {
	s.mu.Lock()
	subs := s.subs
	s.subs = nil
	s.mu.Unlock()
	s.edge.hub.unlisten(s)
	for _, x := range subs {
		s.edge.hub.unsubscribe(x)
	}
}

// parseReceived reads bus.HeaderReceived.
func parseReceived(v string) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
