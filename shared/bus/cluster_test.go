package bus

import (
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spillway/spillway/shared/channel"
)

// lockedLog collects log text from several goroutines.
type lockedLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitFor polls f every 10 ms for up to 10 s.
func waitFor(t *testing.T, what string, f func() bool, show ...func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			for _, s := range show {
				t.Log(s())
			}
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startClustered starts a server with a route listener and routes to
// the given servers.
func startClustered(t *testing.T, subj channel.Subjects, route Credentials, log *lockedLog, peers ...*Server) *Server {
	t.Helper()
	var routes []string
	for _, p := range peers {
		routes = append(routes, "nats://"+p.ClusterAddr().String())
	}
	logger := slog.New(slog.DiscardHandler)
	if log != nil {
		logger = slog.New(slog.NewTextHandler(log, nil))
	}
	srv, err := StartServer(ServerConfig{
		Listen:   "127.0.0.1:0",
		Subjects: subj,
		Edges:    Credentials{User: "edge", Password: "edge-pw"},
		Cluster:  ClusterConfig{Listen: "127.0.0.1:0", Routes: routes, User: route.User, Password: route.Password},
		Logger:   logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// Two brokers' servers joined by a route are one bus: an edge connected to
// either receives what the other's broker publishes, its interest reaches
// both brokers, and it still may not publish events.
func TestClusterDeliversAcrossRoutes(t *testing.T) {
	subj := channel.Subjects{Prefix: "inst"}
	route := Credentials{User: "route", Password: "route-pw"}
	a := startClustered(t, subj, route, nil)
	b := startClustered(t, subj, route, nil, a)
	waitFor(t, "route up", func() bool { return a.ns.NumRoutes() > 0 && b.ns.NumRoutes() > 0 })

	brokerA, err := a.Connect("broker-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer brokerA.Close()
	interest, err := brokerA.SubscribeSync(subj.Interest())
	if err != nil {
		t.Fatal(err)
	}
	brokerA.Flush()

	denied := make(chan error, 4)
	edge, err := nats.Connect(b.ClientURL(), nats.UserInfo("edge", "edge-pw"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { denied <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer edge.Close()
	events, err := edge.SubscribeSync(subj.Timelines())
	if err != nil {
		t.Fatal(err)
	}
	edge.Flush()
	subject := subj.Of(channel.Public(channel.ScopeAll, false))
	// Subscriptions propagate over the route asynchronously.
	waitFor(t, "event across the route", func() bool {
		brokerA.Publish(subject, []byte("from a"))
		m, err := events.NextMsg(100 * time.Millisecond)
		return err == nil && string(m.Data) == "from a"
	})
	waitFor(t, "interest across the route", func() bool {
		edge.Publish(subj.Interest(), []byte("timeline:1"))
		_, err := interest.NextMsg(100 * time.Millisecond)
		return err == nil
	})
	if err := edge.Publish(subject, []byte("forged")); err != nil {
		t.Fatal(err)
	}
	edge.Flush()
	select {
	case err := <-denied:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("edge publish refused with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an edge on the second server published an event")
	}
}

// A server that presents wrong route credentials, or none, is not let into
// the cluster.
func TestClusterRefusesRoutesWithoutCredentials(t *testing.T) {
	subj := channel.Subjects{Prefix: "inst"}
	var log lockedLog
	a := startClustered(t, subj, Credentials{User: "route", Password: "route-pw"}, &log)
	for _, wrong := range []Credentials{{User: "route", Password: "guess"}, {}} {
		startClustered(t, subj, wrong, nil, a)
	}
	waitFor(t, "two refused routes", func() bool {
		return strings.Count(log.String(), "Router connection closed: Authentication Failure") >= 2
	}, log.String)
	if n := a.ns.NumRoutes(); n != 0 {
		t.Fatalf("%d routes admitted", n)
	}
}

// Cluster settings are checked before anything starts.
func TestClusterConfigErrors(t *testing.T) {
	for _, c := range []ClusterConfig{
		{Listen: "nope"},
		{Listen: "127.0.0.1:0", User: "route"},
		{Listen: "127.0.0.1:0", Routes: []string{"http://x:6222"}},
		{Listen: "127.0.0.1:0", Routes: []string{"nats://:pw@"}},
	} {
		srv, err := StartServer(ServerConfig{Listen: "127.0.0.1:0", Cluster: c})
		if err == nil {
			srv.Shutdown()
			t.Errorf("%+v accepted", c)
			continue
		}
		if strings.Contains(err.Error(), "pw") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	srv, err := StartServer(ServerConfig{Listen: "127.0.0.1:0", Cluster: ClusterConfig{Listen: "127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if _, ok := srv.ClusterAddr().(*net.TCPAddr); !ok {
		t.Fatalf("cluster address %v", srv.ClusterAddr())
	}
	if plain, err := StartServer(ServerConfig{Listen: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	} else {
		defer plain.Shutdown()
		if plain.ClusterAddr() != nil {
			t.Fatal("a server without cluster has a route address")
		}
	}
}
