package edge

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spillway/spillway/shared/bus"
	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/testenv"
)

// The edge announces everything it tracks, long before its periodic
// refresh, when a broker asks and when its NATS connection comes back.
func TestInterestReannounced(t *testing.T) {
	tests := []struct {
		name    string
		trigger func(h *harness) error
	}{
		{"broker asks", func(h *harness) error { return h.nc.Publish(h.subj.Resync(), nil) }},
		{"nats reconnects", func(h *harness) error { return h.nc.ForceReconnect() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.sse("/api/v1/streaming/user", testenv.AliceReadToken)
			interest := make(chan *nats.Msg, 64)
			sub, err := h.nc.ChanSubscribe(h.subj.Interest(), interest)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			home := string(channel.Home(testenv.Alice))
			// Once the channel is tracked its first announcement has been
			// published on the same connection; after a flush it has
			// been delivered here too, and can be discarded.
			testenv.Eventually(t, 5*time.Second, func() error {
				if !slices.Contains(h.edge.hub.tracked(), home) {
					return fmt.Errorf("%s not tracked yet", home)
				}
				return nil
			})
			if err := h.nc.Flush(); err != nil {
				t.Fatal(err)
			}
			for len(interest) > 0 {
				<-interest
			}
			if err := tc.trigger(h); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 10*time.Second, func() error {
				select {
				case m := <-interest:
					if slices.Contains(bus.DecodeInterest(m.Data), home) {
						return nil
					}
					return fmt.Errorf("interest %q lacks %s", m.Data, home)
				default:
					return fmt.Errorf("no interest announced")
				}
			})
		})
	}
}
