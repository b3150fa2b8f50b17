package bus

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/spillway/spillway/shared/testenv"
)

// WatchStatus follows a real server going away and coming back on the same
// port.
func TestWatchStatus(t *testing.T) {
	ns, err := StartServer(ServerConfig{Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(ns.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := Connect(ClientConfig{URL: ns.ClientURL(), Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	var (
		mu   sync.Mutex
		last = errors.New("nothing observed")
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchStatus(ctx, nc, func(err error) { mu.Lock(); last = err; mu.Unlock() })
	}()
	defer func() { cancel(); <-done }()
	want := func(up bool) func() error {
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			if (last == nil) != up {
				return errors.New("observed " + errString(last))
			}
			return nil
		}
	}

	testenv.Eventually(t, 10*time.Second, want(true))
	ns.Shutdown()
	testenv.Eventually(t, 10*time.Second, want(false))
	ns2, err := StartServer(ServerConfig{Listen: "127.0.0.1:" + port})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns2.Shutdown() }()
	testenv.Eventually(t, 10*time.Second, want(true))
}

func errString(err error) string {
	if err == nil {
		return "connected"
	}
	return err.Error()
}
