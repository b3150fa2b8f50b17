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
	// onPing runs the WebSocket keep-alive; onClosed, when set, runs once
	// the outbox has closed the socket (it must not block).
	onKill   func()
	onPing   func()
	onClosed func()

	// filters caches the account's keyword filters for this connection
	// (§11.5). Nil means not loaded; filtersGen counts invalidations, so a
	// load that raced with filters_changed is not stored.
	filters    atomic.Pointer[keyword.Matcher]
	filtersGen atomic.Uint64

	mu        sync.Mutex
	subs      []*subscription // guarded by mu
	listening bool            // on the control channels; guarded by mu
}

func (e *Edge) newSession(id store.Identity, t transport) *session {
	return &session{edge: e, id: id, transport: t, done: make(chan struct{})}
}

// attach binds the session to its socket.
func (s *session) attach(o *outbox) { s.out = o }

// closed is called by the outbox exactly once.
func (s *session) closed(slow bool) {
	if slow {
		s.edge.metrics.slowClients.WithLabelValues(s.transport.String()).Inc()
	}
	s.doneOnce.Do(func() { close(s.done) })
	if s.onClosed != nil {
		s.onClosed()
	}
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
func (s *session) listenSystem() {
	s.mu.Lock()
	s.listening = true
	s.mu.Unlock()
	s.edge.hub.listen(s)
}

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
	listening := s.listening
	s.listening = false
	s.mu.Unlock()
	if listening {
		s.edge.hub.unlisten(s)
	}
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
