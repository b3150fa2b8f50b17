package edge

import (
	"context"
	"sync"
	"time"
)

// wheel runs a periodic action for many sessions with one goroutine and no
// timer per connection: sessions sit in one of n slots and each tick visits
// one slot, so the work of a period is spread evenly over it instead of
// bursting at one instant. A session added now is first visited one full
// period later.
type wheel struct {
	tick time.Duration
	fn   func(*session)

	mu     sync.Mutex
	slots  []map[*session]struct{}
	cursor int // next slot to visit
}

func newWheel(period time.Duration, nslots int, fn func(*session)) *wheel {
	if nslots < 1 {
		nslots = 1
	}
	w := &wheel{tick: period / time.Duration(nslots), fn: fn, slots: make([]map[*session]struct{}, nslots)}
	if w.tick <= 0 {
		w.tick = time.Millisecond
	}
	for i := range w.slots {
		w.slots[i] = make(map[*session]struct{})
	}
	return w
}

// add registers s and returns its slot for remove.
func (w *wheel) add(s *session) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	// The slot just visited comes round again last.
	slot := (w.cursor + len(w.slots) - 1) % len(w.slots)
	w.slots[slot][s] = struct{}{}
	return slot
}

func (w *wheel) remove(s *session, slot int) {
	w.mu.Lock()
	delete(w.slots[slot], s)
	w.mu.Unlock()
}

// run visits one slot per tick until ctx is done.
func (w *wheel) run(ctx context.Context) {
	t := time.NewTicker(w.tick)
	defer t.Stop()
	var batch []*session
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		for s := range w.slots[w.cursor] {
			batch = append(batch, s)
		}
		w.cursor = (w.cursor + 1) % len(w.slots)
		w.mu.Unlock()
		for _, s := range batch {
			w.fn(s)
		}
		clear(batch)
		batch = batch[:0]
	}
}
