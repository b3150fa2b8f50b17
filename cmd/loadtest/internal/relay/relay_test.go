package relay

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/spillway/spillway/shared/testenv"
)

func TestRelayDeliversToSSEAndWebSocket(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- New(rdb, ns, map[string]string{"tok": "42"}).Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	base := "http://" + ln.Addr().String()

	resp, err := http.Get(base + "/api/v1/streaming/user?access_token=tok")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sse := bufio.NewReader(resp.Body)
	if line, err := sse.ReadString('\n'); err != nil || line != ":)\n" {
		t.Fatalf("SSE opening %q %v", line, err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/api/v1/streaming?stream=public", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	// Registration follows the response head, so publish until it lands.
	publishUntil := func(ch, msg string, got <-chan string) string {
		t.Helper()
		for {
			if err := rdb.Publish(t.Context(), ns+":"+ch, msg).Err(); err != nil {
				t.Fatal(err)
			}
			select {
			case s := <-got:
				return s
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	sseGot := make(chan string, 100)
	go func() {
		for {
			line, err := sse.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(line, "data: ") {
				sseGot <- line
			}
		}
	}()
	if got := publishUntil("timeline:42", `{"event":"update","payload":{"id":"1","content":"<p>a & b</p>"}}`, sseGot); got != "data: {\"id\":\"1\",\"content\":\"<p>a & b</p>\"}\n" {
		t.Fatalf("SSE data %q", got)
	}
	// The user stream carries the account's notifications too.
	if got := publishUntil("timeline:42:notifications", `{"event":"notification","payload":{"id":"9"}}`, sseGot); got != "data: {\"id\":\"9\"}\n" {
		t.Fatalf("SSE notification data %q", got)
	}
	wsGot := make(chan string, 100)
	go func() {
		for {
			_, m, err := ws.ReadMessage()
			if err != nil {
				return
			}
			wsGot <- string(m)
		}
	}()
	want := `{"stream":["public"],"event":"update","payload":"{\"id\":\"2\"}"}`
	if got := publishUntil("timeline:public", `{"event":"update","payload":{"id":"2"}}`, wsGot); got != want {
		t.Fatalf("WebSocket message %s, want %s", got, want)
	}
}

func TestRelayBareWebSocketSubscribes(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- New(rdb, ns, map[string]string{"tok": "42"}).Serve(ctx, ln) }()
	hdr := http.Header{"Authorization": {"Bearer tok"}}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/api/v1/streaming", hdr)
	if err != nil {
		t.Fatal(err)
	}
	frames := make(chan string, 100)
	go func() {
		for {
			_, m, err := ws.ReadMessage()
			if err != nil {
				close(frames)
				return
			}
			frames <- string(m)
		}
	}()
	send := func(msg string) {
		t.Helper()
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	pub := func(ch, id string) {
		t.Helper()
		if err := rdb.Publish(t.Context(), ns+":"+ch, `{"event":"update","payload":{"id":"`+id+`"}}`).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// next publishes on each channel in turn until a frame arrives and
	// returns the id it carries.
	next := func(chans ...string) string {
		t.Helper()
		for i := 0; ; i++ {
			for _, ch := range chans {
				pub(ch, ch)
			}
			select {
			case f := <-frames:
				for _, ch := range chans {
					if strings.Contains(f, `\"id\":\"`+ch+`\"`) {
						return ch
					}
				}
				t.Fatalf("frame %s", f)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	send(`{"type":"subscribe","stream":"hashtag","tag":"Cats"}`)
	if got := next("timeline:hashtag:cats"); got != "timeline:hashtag:cats" {
		t.Fatalf("got %s", got)
	}
	send(`{"type":"unsubscribe","stream":"hashtag","tag":"Cats"}`)
	send(`{"type":"subscribe","stream":"user:notification"}`)
	// Messages are handled in order, so once a notification arrives first
	// the hashtag is gone: from then on only notifications come.
	for next("timeline:hashtag:cats", "timeline:42:notifications") != "timeline:42:notifications" {
	}
	for range 3 {
		if got := next("timeline:hashtag:cats", "timeline:42:notifications"); got != "timeline:42:notifications" {
			t.Fatalf("after unsubscribing, got %s", got)
		}
	}
	// Shutting down closes a bare WebSocket too.
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	for range frames {
	}
	_ = ws.Close()
}

func TestRelayRefusesUnknownTokenAndStream(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	r := New(rdb, ns, nil)
	for _, path := range []string{"/api/v1/streaming/user?access_token=nope", "/api/v1/streaming/list"} {
		rec := &statusRecorder{header: http.Header{}}
		req, _ := http.NewRequest("GET", path, nil)
		r.ServeHTTP(rec, req)
		if rec.status < 400 {
			t.Errorf("%s: status %d", path, rec.status)
		}
	}
}

func TestRelayChannels(t *testing.T) {
	r := New(nil, "", map[string]string{"tok": "42"})
	tests := []struct {
		stream, tag, token string
		want               []string
		status             int
	}{
		{"user", "", "tok", []string{"timeline:42", "timeline:42:notifications"}, 0},
		{"user:notification", "", "tok", []string{"timeline:42:notifications"}, 0},
		{"user", "", "nope", nil, http.StatusUnauthorized},
		{"public", "", "", []string{"timeline:public"}, 0},
		{"public:local:media", "", "", []string{"timeline:public:local:media"}, 0},
		{"hashtag", "Cats", "", []string{"timeline:hashtag:cats"}, 0},
		{"hashtag:local", "cats", "", []string{"timeline:hashtag:cats:local"}, 0},
		{"hashtag", "", "", nil, http.StatusBadRequest},
		{"list", "", "tok", nil, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.stream+"/"+tt.tag+"/"+tt.token, func(t *testing.T) {
			got, status := r.channels(tt.stream, tt.tag, tt.token)
			if status != tt.status || strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("got %v %d, want %v %d", got, status, tt.want, tt.status)
			}
		})
	}
}

type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(p []byte) (int, error) { return len(p), nil }
func (r *statusRecorder) WriteHeader(code int)        { r.status = code }
