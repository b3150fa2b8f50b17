// Package fakestream is a tiny in-process stand-in for a Mastodon streaming
// server, used by the load tool's tests. It speaks the protocol's shapes (SSE
// ":)" greeting, heartbeat comments, two-chunk events; WebSocket ?stream= and
// subscribe messages, event and error frames) and can drop, duplicate or
// reorder deliveries so tests can check the tool's accounting.
package fakestream

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/spillway/spillway/shared/benchdata/payload"
)

// Action says what happens to one delivery.
type Action int

const (
	// Deliver sends the event once.
	Deliver Action = iota
	// Drop never sends it.
	Drop
	// Duplicate sends it twice.
	Duplicate
	// Hold sends it after the connection's next event.
	Hold
)

// Conn describes a subscribed connection to an Inject function.
type Conn struct {
	// Ordinal numbers accepted connections from 1 in acceptance order.
	Ordinal int
	SSE     bool
	// Channel is the channel of the delivery being decided.
	Channel string
	// Event is the delivery's event name.
	Event string
}

// Options configure a Server.
type Options struct {
	// Tokens maps access tokens to account ids; other tokens get 401.
	// A nil map accepts any token as account "1".
	Tokens map[string]string
	// Inject decides the fate of each non-probe delivery; nil delivers all.
	Inject func(c Conn, seq uint64) Action
}

type conn struct {
	info     Conn
	channels []string    // guarded by Server.mu
	out      chan []byte // framed bytes, one write each
	held     [][]byte
}

// Server is a running fake streaming server.
type Server struct {
	*httptest.Server
	opts     Options
	upgrader websocket.Upgrader

	mu        sync.Mutex
	subs      map[string][]*conn
	accepted  int
	sse, ws   int
	rejected  int
	overflow  int
	unsubs    int
	remoteIPs map[string]int
}

// New starts a server on 127.0.0.1.
func New(opts Options) *Server {
	s := &Server{opts: opts, subs: map[string][]*conn{}, remoteIPs: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Stats reports subscribed SSE and WebSocket connections, rejected
// connections/subscriptions, and accepted connections per client IP.
func (s *Server) Stats() (sse, ws, rejected int, ips map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ips = map[string]int{}
	for k, v := range s.remoteIPs {
		ips[k] = v
	}
	return s.sse, s.ws, s.rejected, ips
}

// Subscribers reports how many connections are subscribed to channel now.
func (s *Server) Subscribers(channel string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs[channel])
}

// Unsubscribes reports how many WebSocket unsubscribe messages removed a
// subscription.
func (s *Server) Unsubscribes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unsubs
}

// Publish delivers a Redis-style message ({"event":…,"payload":…}) on a
// logical channel to every subscribed connection.
func (s *Server) Publish(channel string, msg []byte) {
	var env struct {
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
	}
	if json.Unmarshal(msg, &env) != nil || env.Event == "" || len(env.Payload) == 0 {
		return
	}
	info, ok := payload.Decode(env.Payload)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Frames depend only on transport and channel: render each once.
	var rendered [2][][]byte
	for _, c := range s.subs[channel] {
		act := Deliver
		if ok && !info.Probe && s.opts.Inject != nil {
			ci := c.info
			ci.Channel, ci.Event = channel, env.Event
			act = s.opts.Inject(ci, info.Seq)
		}
		k := 0
		if c.info.SSE {
			k = 1
		}
		if rendered[k] == nil {
			rendered[k] = frame(c.info.SSE, channel, env.Event, env.Payload)
		}
		frames := rendered[k]
		switch act {
		case Drop:
			continue
		case Hold:
			c.held = append(c.held, frames...)
			continue
		case Duplicate:
			s.send(c, frames)
		}
		s.send(c, frames)
		if len(c.held) > 0 {
			s.send(c, c.held)
			c.held = nil
		}
	}
}

func (s *Server) send(c *conn, frames [][]byte) {
	for _, f := range frames {
		select {
		case c.out <- f:
		default:
			s.overflow++
		}
	}
}

// frame renders an event on channel: two SSE chunks, or one WS frame.
func frame(sse bool, channel, event string, p json.RawMessage) [][]byte {
	data := []byte(p)
	if strings.HasPrefix(channel, "timeline:public") && len(data) > 1 && data[len(data)-1] == '}' {
		// Public streams get the keyword-filter result appended.
		data = append(append([]byte{}, data[:len(data)-1]...), `,"filtered":[]}`...)
	}
	if sse {
		return [][]byte{[]byte("event: " + event + "\n"), append(append([]byte("data: "), data...), '\n', '\n')}
	}
	b, _ := json.Marshal(struct {
		Stream  []string `json:"stream"`
		Event   string   `json:"event"`
		Payload string   `json:"payload"`
	}{[]string{"public"}, event, string(data)})
	return [][]byte{b}
}

// channelsFor resolves a stream to its logical channels, or nil if
// unknown. A user stream includes the account's notifications, as for a
// token with the read scope.
func channelsFor(stream, tag, account string) []string {
	switch stream {
	case "user":
		return []string{"timeline:" + account, "timeline:" + account + ":notifications"}
	case "user:notification":
		return []string{"timeline:" + account + ":notifications"}
	case "public", "public:local", "public:remote", "public:media", "public:local:media":
		return []string{"timeline:" + stream}
	case "hashtag":
		return []string{"timeline:hashtag:" + strings.ToLower(tag)}
	case "hashtag:local":
		return []string{"timeline:hashtag:" + strings.ToLower(tag) + ":local"}
	}
	return nil
}

func ssePathStream(r *http.Request) string {
	media := r.URL.Query().Get("only_media") == "true"
	switch r.URL.Path {
	case "/api/v1/streaming/user":
		return "user"
	case "/api/v1/streaming/user/notification":
		return "user:notification"
	case "/api/v1/streaming/public":
		if media {
			return "public:media"
		}
		return "public"
	case "/api/v1/streaming/public/local":
		if media {
			return "public:local:media"
		}
		return "public:local"
	case "/api/v1/streaming/hashtag":
		return "hashtag"
	case "/api/v1/streaming/hashtag/local":
		return "hashtag:local"
	}
	return ""
}

func (s *Server) account(r *http.Request) (string, bool) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if s.opts.Tokens == nil {
		return "1", true
	}
	a, ok := s.opts.Tokens[tok]
	return a, ok
}

func (s *Server) register(sse bool, r *http.Request) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accepted++
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	s.remoteIPs[host]++
	return &conn{info: Conn{Ordinal: s.accepted, SSE: sse}, out: make(chan []byte, 4096)}
}

// subscribe adds c to channels, counting c once as subscribed.
func (s *Server) subscribe(c *conn, channels []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(c.channels) == 0 {
		if c.info.SSE {
			s.sse++
		} else {
			s.ws++
		}
	}
	for _, ch := range channels {
		if !slices.Contains(c.channels, ch) {
			c.channels = append(c.channels, ch)
			s.subs[ch] = append(s.subs[ch], c)
		}
	}
}

// unsubscribe removes c from channels (every channel of c when nil).
func (s *Server) unsubscribe(c *conn, channels []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if channels == nil {
		channels = slices.Clone(c.channels)
	}
	for _, ch := range channels {
		i := slices.Index(c.channels, ch)
		if i < 0 {
			continue
		}
		c.channels = slices.Delete(c.channels, i, i+1)
		list := s.subs[ch]
		if j := slices.Index(list, c); j >= 0 {
			s.subs[ch] = slices.Delete(slices.Clone(list), j, j+1)
		}
		if len(s.subs[ch]) == 0 {
			delete(s.subs, ch)
		}
	}
}

func (s *Server) reject() {
	s.mu.Lock()
	s.rejected++
	s.mu.Unlock()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if websocket.IsWebSocketUpgrade(r) {
		s.serveWS(w, r)
		return
	}
	if r.URL.Path == "/metrics" {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = fmt.Fprintf(w, "# HELP go_goroutines Number of goroutines that currently exist.\n# TYPE go_goroutines gauge\ngo_goroutines %d\n", runtime.NumGoroutine())
		return
	}
	stream := ssePathStream(r)
	if stream == "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"Unknown channel requested"}`))
		return
	}
	acct, ok := s.account(r)
	tag := r.URL.Query().Get("tag")
	if !ok || tag == "forbidden" {
		s.reject()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"Invalid access token"}`))
		return
	}
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "private, no-store")
	w.WriteHeader(http.StatusOK)
	c := s.register(true, r)
	s.subscribe(c, channelsFor(stream, tag, acct))
	defer s.unsubscribe(c, nil)
	for _, b := range []string{":)\n", ":thump\n\n", "event: delete\n", "data: 111\n\n"} {
		_, _ = w.Write([]byte(b))
		if fl != nil {
			fl.Flush()
		}
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case b := <-c.out:
			if _, err := w.Write(b); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
	}
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	acct, ok := s.account(r)
	if !ok {
		s.reject()
		w.Header().Set("X-Error-Message", "Invalid access token")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer func() { _ = ws.Close() }()
	c := s.register(false, r)
	defer s.unsubscribe(c, nil)
	c.out <- []byte(`{"stream":["public"],"event":"delete","payload":"111"}`)
	sub := func(stream, tag string) {
		if tag == "forbidden" {
			s.reject()
			c.out <- []byte(`{"error":"Access token does not have the required scopes","status":401}`)
			return
		}
		if chs := channelsFor(stream, tag, acct); chs != nil {
			s.subscribe(c, chs)
		}
	}
	if st := r.URL.Query().Get("stream"); st != "" {
		sub(st, r.URL.Query().Get("tag"))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var m struct{ Type, Stream, Tag string }
			if json.Unmarshal(msg, &m) != nil {
				continue
			}
			switch m.Type {
			case "subscribe":
				sub(m.Stream, m.Tag)
			case "unsubscribe":
				if chs := channelsFor(m.Stream, m.Tag, acct); chs != nil {
					s.mu.Lock()
					s.unsubs++
					s.mu.Unlock()
					s.unsubscribe(c, chs)
				}
			}
		}
	}()
	for {
		select {
		case <-done:
			return
		case b := <-c.out:
			if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
				return
			}
		}
	}
}
