package bus

import (
	"testing"
	"time"
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
			ns, err := StartServer(ServerConfig{Listen: tc.listen})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
			var url string
			srv := ns
			if tc.listen != "" {
				url, srv = ns.ClientURL(), nil
			}
			nc, err := Connect(srv, url, "test", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			sub, err := nc.SubscribeSync("x.y")
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Publish("x.y", []byte("hi")); err != nil {
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
		if _, err := StartServer(ServerConfig{Listen: l}); err == nil {
			t.Errorf("listen %q: expected error", l)
		}
	}
}
