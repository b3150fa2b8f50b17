package loadgen

// trackWindow is how many recent sequence numbers a tracker remembers
// exactly; duplicates older than that cannot be told from late deliveries.
const trackWindow = 1024

// seqTracker accumulates one client's deliveries on its channel during a
// measured window, in constant memory: counters plus a bitmap of the last
// trackWindow sequence numbers.
type seqTracker struct {
	lo        uint64 // first sequence number of the window
	maxSeen   uint64 // highest sequence number seen (0 = none)
	received  uint64 // all deliveries, duplicates included
	unique    uint64 // distinct sequence numbers (late ones assumed distinct)
	dups      uint64
	reordered uint64 // arrived below an already seen sequence number
	late      uint64 // arrived more than trackWindow below maxSeen
	seen      [trackWindow / 64]uint64
}

func (t *seqTracker) reset(lo uint64) {
	*t = seqTracker{lo: lo}
}

func (t *seqTracker) bit(seq uint64) (word *uint64, mask uint64) {
	i := seq % trackWindow
	return &t.seen[i/64], 1 << (i % 64)
}

// record notes a delivery of seq (≥ lo) and reports whether it was a
// duplicate.
func (t *seqTracker) record(seq uint64) (dup bool) {
	t.received++
	switch {
	case seq > t.maxSeen:
		if t.maxSeen == 0 || seq-t.maxSeen >= trackWindow {
			t.seen = [trackWindow / 64]uint64{}
		} else {
			for s := t.maxSeen + 1; s < seq; s++ {
				w, m := t.bit(s)
				*w &^= m
			}
		}
		w, m := t.bit(seq)
		*w |= m
		t.maxSeen = seq
		t.unique++
		return false
	case t.maxSeen-seq < trackWindow:
		w, m := t.bit(seq)
		if *w&m != 0 {
			t.dups++
			return true
		}
		*w |= m
		t.unique++
		t.reordered++
		return false
	default:
		t.unique++
		t.reordered++
		t.late++
		return false
	}
}

// windowCounts is the per-client outcome of a window given how many events
// were published on the client's channel.
type windowCounts struct {
	Expected, Received, Unique, Lost, Duplicates, Reordered, Late, Unexpected uint64
}

func (t *seqTracker) counts(expected uint64) windowCounts {
	c := windowCounts{
		Expected: expected, Received: t.received, Unique: t.unique,
		Duplicates: t.dups, Reordered: t.reordered, Late: t.late,
	}
	if t.unique <= expected {
		c.Lost = expected - t.unique
	} else {
		c.Unexpected = t.unique - expected
	}
	return c
}

func (c *windowCounts) add(o windowCounts) {
	c.Expected += o.Expected
	c.Received += o.Received
	c.Unique += o.Unique
	c.Lost += o.Lost
	c.Duplicates += o.Duplicates
	c.Reordered += o.Reordered
	c.Late += o.Late
	c.Unexpected += o.Unexpected
}
