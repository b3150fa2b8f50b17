package testenv

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// natsReadyTimeout bounds how long an embedded server may take to start.
const natsReadyTimeout = 10 * time.Second

// NATS starts an embedded nats-server without any network listener and
// returns it with an in-process client connection. Both are shut down when
// the test ends.
func NATS(t testing.TB) (*server.Server, *nats.Conn) {
	t.Helper()
	ns := startNATS(t, &server.Options{DontListen: true, NoSigs: true, NoLog: true})
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatalf("testenv: in-process NATS connection: %v", err)
	}
	t.Cleanup(nc.Close)
	return ns, nc
}

// NATSServer starts an embedded nats-server listening on a random port of
// 127.0.0.1 and returns its client URL, for tests that run the broker and the
// edge as separate components. The server is shut down when the test ends.
func NATSServer(t testing.TB) (url string) {
	t.Helper()
	ns := startNATS(t, &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	return ns.ClientURL()
}

func startNATS(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("testenv: new NATS server: %v", err)
	}
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(natsReadyTimeout) {
		t.Fatalf("testenv: NATS server not ready within %v", natsReadyTimeout)
	}
	return ns
}
