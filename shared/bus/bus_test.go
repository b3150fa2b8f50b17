package bus

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spillway/spillway/shared/channel"
)

func TestInProcessAndTCP(t *testing.T) {
	tests := []struct {
		name   string
		listen string
	}{
		{"in-process only", ""},
		{"tcp listener", "127.0.0.1:-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := StartServer(ServerConfig{Listen: tc.listen})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown()
			// The internal user may use any subject; an edge only its own.
			subject := "x.y"
			nc, err := srv.Connect("test", nil)
			if tc.listen != "" {
				subject = channel.Subjects{}.Of(channel.Home(1))
				nc, err = Connect(ClientConfig{URL: srv.ClientURL(), Name: "test"})
			}
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			sub, err := nc.SubscribeSync(subject)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := srv.Connect("publisher", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := pub.Publish(subject, []byte("hi")); err != nil {
				t.Fatal(err)
			}
			m, err := sub.NextMsg(5 * time.Second)
			if err != nil || string(m.Data) != "hi" {
				t.Fatalf("got %v, %v", m, err)
			}
		})
	}
}

func TestStartServerBadListen(t *testing.T) {
	for _, l := range []string{"nonsense", "127.0.0.1:notaport", "127.0.0.1:70000"} {
		if srv, err := StartServer(ServerConfig{Listen: l}); err == nil {
			srv.Shutdown()
			t.Errorf("listen %q: expected error", l)
		}
	}
}

// A listen address the server cannot use is reported with its cause, as soon
// as nats-server gives up, not after the readiness wait.
func TestStartServerListenErrorNamesCause(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name, listen, want string
	}{
		{"port in use", busy.Addr().String(), "address already in use"},
		{"unresolvable host", "no-such-host.invalid:0", "no such host"},
		{"address not on this host", "192.0.2.1:0", "cannot assign requested address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			srv, err := StartServer(ServerConfig{Listen: tc.listen})
			took := time.Since(start)
			if err == nil {
				srv.Shutdown()
				t.Fatalf("listen %q: no error", tc.listen)
			}
			t.Logf("after %v: %v", took, err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("listen %q: error %q does not name the cause %q", tc.listen, err, tc.want)
			}
			// The old behaviour waited out the whole 10 s readiness timeout.
			if took > 5*time.Second {
				t.Errorf("listen %q: error after %v", tc.listen, took)
			}
		})
	}
}
