package broker

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/spillway/spillway/shared/channel"
	"github.com/spillway/spillway/shared/testenv"
)

// sink records what a broker hands over in process.
type sink struct {
	mu  sync.Mutex
	got []string
}

func (s *sink) Deliver(name channel.Name, data []byte, received time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, string(name)+" "+string(data))
}

func (s *sink) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// With a Local sink every message goes to it, in Redis order; on NATS
// only while Remote reports a listener.
func TestLocalDelivery(t *testing.T) {
	for _, remote := range []bool{false, true} {
		t.Run(fmt.Sprintf("remote=%v", remote), func(t *testing.T) {
			s := &sink{}
			var asked atomic.Int64
			cfg := Config{Local: s}
			if remote {
				cfg.Remote = func(string) bool { asked.Add(1); return true }
			}
			h := start(t, cfg)
			onNATS := make(chan *nats.Msg, 16)
			sub, err := h.nc.ChanSubscribe(channel.Subjects{}.Timelines(), onNATS)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			_ = h.nc.Flush()
			ctx := context.Background()
			var want []string
			for i := range 5 {
				msg := fmt.Sprintf(`{"event":"delete","payload":"%d"}`, i)
				h.rdb.Publish(ctx, h.ns+":timeline:public", msg)
				want = append(want, "timeline:public "+msg)
			}
			testenv.Eventually(t, 5*time.Second, func() error {
				if got := s.all(); fmt.Sprint(got) != fmt.Sprint(want) {
					return fmt.Errorf("delivered %q, want %q", got, want)
				}
				return nil
			})
			if !remote {
				select {
				case m := <-onNATS:
					t.Fatalf("published on NATS without a remote listener: %s", m.Data)
				case <-time.After(100 * time.Millisecond):
				}
				return
			}
			for i := range 5 {
				select {
				case m := <-onNATS:
					if string(m.Data) != fmt.Sprintf(`{"event":"delete","payload":"%d"}`, i) {
						t.Fatalf("NATS message %d: %s", i, m.Data)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("NATS message %d missing", i)
				}
			}
			if asked.Load() != 5 {
				t.Fatalf("Remote asked %d times, want 5", asked.Load())
			}
		})
	}
}
