package edge

import (
	"fmt"
	"testing"
	"time"

	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/testenv"
)

// Events delivered in process (all-in-one) reach clients as NATS ones do,
// dispatched inline with one dispatcher and through the dispatchers'
// queues with more; kill works on system channels, and the hub holds no
// NATS subscription.
func TestLocalDelivery(t *testing.T) {
	for _, dispatchers := range []int{1, 3} {
		t.Run(fmt.Sprintf("dispatchers=%d", dispatchers), func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Local, c.Dispatchers = true, dispatchers })
			sse := h.sse("/api/v1/streaming/user", testenv.AliceReadToken)
			for i := range 20 {
				h.edge.Deliver(channel.Home(testenv.Alice), []byte(fmt.Sprintf(`{"event":"delete","payload":"%d"}`, i)), time.Now())
			}
			for i := range 20 {
				if ev, data := sse.event(); ev != "delete" || data != fmt.Sprint(i) {
					t.Fatalf("event %d: %q %q", i, ev, data)
				}
			}
			if n := h.edge.Subscriptions(); n != 0 {
				t.Errorf("%d NATS subscriptions in local mode", n)
			}
			h.edge.Deliver(channel.System(testenv.Alice), []byte(`{"event":"kill"}`), time.Now())
			sse.expectEnd()
		})
	}
}
