// Package relay is the load tool's floor: a deliberately minimal streaming
// relay with no authentication, no filtering, no backpressure and no limits.
// Each Redis message is decoded once, its SSE and WebSocket frames rendered
// once, and each client gets exactly one write(2) per delivery from the
// Redis receive loop. What it costs per delivery is, in practice, the
// kernel's cost of a loopback write on this machine, the figure a real
// server's cost is compared with. It must never face the network.
package relay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
)

const usage = `Usage: loadtest relay [flags]

Runs a minimal streaming relay that the load tool can measure in place of a
real server, to find the kernel's floor on this machine: no authentication
(tokens only map user streams to account ids), no filtering, frames rendered
once, one write per delivery. Serves the SSE paths under /api/v1/streaming/
and WebSocket on /api/v1/streaming (stream in the URL, or subscribe and
unsubscribe messages on a WebSocket opened without one) for the user (with
the account's notifications), user:notification, public family and hashtag
streams: every stream "loadtest instance" and "loadtest soak" use. For
benchmarks on loopback only.

Flags:
`

// Main runs the relay until ctx is done.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadtest relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:4001", "`address` to serve on")
	redisURL := fs.String("redis-url", "redis://127.0.0.1:6379/0", "Redis `URL` to subscribe to")
	ns := fs.String("redis-namespace", "", "REDIS_NAMESPACE of the channels")
	tokens := fs.String("tokens", "", "token `file` (token<TAB>account_id lines) for user streams")
	fs.Usage = func() {
		_, _ = io.WriteString(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	accounts := map[string]string{}
	if *tokens != "" {
		var err error
		if accounts, err = readTokens(*tokens); err != nil {
			return err
		}
	}
	opts, err := redis.ParseURL(*redisURL)
	if err != nil {
		return fmt.Errorf("relay: -redis-url: %w", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	r := New(rdb, *ns, accounts)
	fmt.Fprintf(stdout, "relay listening on %s\n", ln.Addr())
	return r.Serve(ctx, ln)
}

func readTokens(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if tok, id, ok := strings.Cut(sc.Text(), "\t"); ok {
			out[tok] = id
		}
	}
	return out, sc.Err()
}

// Relay fans Redis messages out to its clients.
type Relay struct {
	rdb      *redis.Client
	ns       string
	accounts map[string]string // token → account id
	upgrader websocket.Upgrader

	mu      sync.Mutex
	clients map[string]map[*client]struct{} // channel → clients
	bare    map[*client]struct{}            // WebSockets subscribing by message
}

type client struct {
	conn  net.Conn
	ws    bool
	label string
}

// New returns a relay reading the channels of namespace ns.
func New(rdb *redis.Client, ns string, accounts map[string]string) *Relay {
	return &Relay{
		rdb:      rdb,
		ns:       ns,
		accounts: accounts,
		upgrader: websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
		clients:  map[string]map[*client]struct{}{},
		bare:     map[*client]struct{}{},
	}
}

// Serve relays until ctx is done.
func (r *Relay) Serve(ctx context.Context, ln net.Listener) error {
	pattern := "timeline:*"
	if r.ns != "" {
		pattern = r.ns + ":" + pattern
	}
	ps := r.rdb.PSubscribe(ctx, pattern)
	if _, err := ps.Receive(ctx); err != nil {
		return fmt.Errorf("relay: psubscribe: %w", err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.relay(ctx, ps)
	}()
	stop := context.AfterFunc(ctx, func() {
		_ = ps.Close()
		_ = srv.Close()
	})
	defer stop()
	err := srv.Serve(ln)
	<-done
	r.closeAll()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ServeHTTP registers a client on its stream's channel.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	stream := q.Get("stream")
	if stream == "" {
		stream = strings.ReplaceAll(strings.TrimPrefix(req.URL.Path, "/api/v1/streaming/"), "/", ":")
		if strings.HasPrefix(stream, "public") && q.Get("only_media") == "true" {
			stream += ":media"
		}
	}
	token := q.Get("access_token")
	if token == "" {
		token = strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
	}
	if req.URL.Path == "/api/v1/streaming" && q.Get("stream") == "" && websocket.IsWebSocketUpgrade(req) {
		r.serveBareWS(w, req, token)
		return
	}
	chans, status := r.channels(stream, q.Get("tag"), token)
	switch status {
	case http.StatusUnauthorized:
		http.Error(w, `{"error":"Invalid access token"}`, status)
		return
	case http.StatusBadRequest:
		http.Error(w, `{"error":"Unknown stream type"}`, status)
		return
	}
	c := &client{label: `["` + stream + `"]`}
	if websocket.IsWebSocketUpgrade(req) {
		ws, err := r.upgrader.Upgrade(w, req, nil)
		if err != nil {
			return
		}
		c.conn, c.ws = ws.UnderlyingConn(), true
	} else {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		const head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n" +
			"Transfer-Encoding: chunked\r\n\r\n3\r\n:)\n\r\n"
		if _, err := io.WriteString(conn, head); err != nil {
			_ = conn.Close()
			return
		}
		c.conn = conn
	}
	r.add(c, chans)
	// The handler goroutine waits for the client to leave.
	buf := make([]byte, 512)
	for {
		if _, err := c.conn.Read(buf); err != nil {
			break
		}
	}
	r.remove(c, chans)
	_ = c.conn.Close()
}

// serveBareWS serves a WebSocket opened without a stream: its subscribe and
// unsubscribe messages add and remove streams. Only such connections keep
// a frame reader (and its buffer), so the idle figures of connections with
// ?stream= stay those of a raw socket.
func (r *Relay) serveBareWS(w http.ResponseWriter, req *http.Request, token string) {
	ws, err := r.upgrader.Upgrade(w, req, nil)
	if err != nil {
		return
	}
	// The relay goroutine writes raw frames to the socket; the reader must
	// never write (no pong, no close reply) or frames could interleave.
	ws.SetPingHandler(func(string) error { return nil })
	ws.SetCloseHandler(func(int, string) error { return nil })
	c := &client{conn: ws.UnderlyingConn(), ws: true, label: `["user"]`}
	// Registered so that closeAll ends this handler even while it has no
	// stream.
	r.mu.Lock()
	r.bare[c] = struct{}{}
	r.mu.Unlock()
	subs := map[string][]string{} // stream:tag → its channels
	// The handler goroutine reads the client's messages until it leaves.
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			break
		}
		var m struct{ Type, Stream, Tag string }
		if json.Unmarshal(msg, &m) != nil {
			continue
		}
		key := m.Stream + ":" + m.Tag
		switch m.Type {
		case "subscribe":
			chans, status := r.channels(m.Stream, m.Tag, token)
			if status != 0 || subs[key] != nil {
				continue
			}
			subs[key] = chans
			r.add(c, chans)
		case "unsubscribe":
			r.remove(c, subs[key])
			delete(subs, key)
		}
	}
	for _, chans := range subs {
		r.remove(c, chans)
	}
	r.mu.Lock()
	delete(r.bare, c)
	r.mu.Unlock()
	_ = c.conn.Close()
}

func (r *Relay) add(c *client, chans []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ch := range chans {
		if r.clients[ch] == nil {
			r.clients[ch] = map[*client]struct{}{}
		}
		r.clients[ch][c] = struct{}{}
	}
}

func (r *Relay) remove(c *client, chans []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ch := range chans {
		delete(r.clients[ch], c)
	}
}

// channels maps a stream to the Redis channels its clients receive, as
// Mastodon does for a token with the read scope (a user stream includes the
// account's notifications); status is 0, or the HTTP status refusing it.
func (r *Relay) channels(stream, tag, token string) (chans []string, status int) {
	account := func() (string, bool) {
		id, ok := r.accounts[token]
		return id, ok
	}
	switch stream {
	case "user", "user:notification":
		id, ok := account()
		if !ok {
			return nil, http.StatusUnauthorized
		}
		if stream == "user" {
			return []string{"timeline:" + id, "timeline:" + id + ":notifications"}, 0
		}
		return []string{"timeline:" + id + ":notifications"}, 0
	case "public", "public:media", "public:local", "public:local:media", "public:remote", "public:remote:media":
		return []string{"timeline:" + stream}, 0
	case "hashtag", "hashtag:local":
		if tag == "" {
			return nil, http.StatusBadRequest
		}
		ch := "timeline:hashtag:" + strings.ToLower(tag)
		if stream == "hashtag:local" {
			ch += ":local"
		}
		return []string{ch}, 0
	}
	return nil, http.StatusBadRequest
}

func (r *Relay) relay(ctx context.Context, ps *redis.PubSub) {
	for {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			return
		}
		var env struct {
			Event   string          `json:"event"`
			Payload json.RawMessage `json:"payload"`
		}
		if json.Unmarshal([]byte(msg.Payload), &env) != nil || env.Event == "" {
			continue
		}
		ch := strings.TrimPrefix(msg.Channel, r.ns+":")
		sse := sseFrame(env.Event, env.Payload)
		wsFrames := map[string][]byte{}
		r.mu.Lock()
		for c := range r.clients[ch] {
			if !c.ws {
				_, _ = c.conn.Write(sse)
				continue
			}
			fr, ok := wsFrames[c.label]
			if !ok {
				fr = wsFrame(c.label, env.Event, env.Payload)
				wsFrames[c.label] = fr
			}
			_, _ = c.conn.Write(fr)
		}
		r.mu.Unlock()
	}
}

func (r *Relay) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, cs := range r.clients {
		for c := range cs {
			_ = c.conn.Close()
		}
	}
	for c := range r.bare {
		_ = c.conn.Close()
	}
}

// jsonString is s as a JSON string, with <, > and & left as they are, as
// Mastodon sends them.
func jsonString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// sseFrame is one SSE event as a single HTTP chunk.
func sseFrame(event string, payload []byte) []byte {
	data := "event: " + event + "\ndata: " + string(payload) + "\n\n"
	return []byte(strconv.FormatInt(int64(len(data)), 16) + "\r\n" + data + "\r\n")
}

// wsFrame is one unmasked text frame carrying Mastodon's message shape, the
// payload as a JSON string.
func wsFrame(label, event string, payload []byte) []byte {
	msg := `{"stream":` + label + `,"event":` + jsonString(event) + `,"payload":` + jsonString(string(payload)) + `}`
	n := len(msg)
	var hdr []byte
	switch {
	case n < 126:
		hdr = []byte{0x81, byte(n)}
	case n <= 0xFFFF:
		hdr = []byte{0x81, 126, byte(n >> 8), byte(n)}
	default:
		hdr = []byte{0x81, 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return append(hdr, msg...)
}
