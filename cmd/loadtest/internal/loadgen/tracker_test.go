package loadgen

import "testing"

func TestSeqTracker(t *testing.T) {
	seq := func(from, to uint64) []uint64 {
		var s []uint64
		for i := from; i <= to; i++ {
			s = append(s, i)
		}
		return s
	}
	cat := func(parts ...[]uint64) []uint64 {
		var s []uint64
		for _, p := range parts {
			s = append(s, p...)
		}
		return s
	}
	tests := []struct {
		name     string
		lo       uint64
		in       []uint64
		expected uint64
		want     windowCounts
	}{
		{"in order, complete", 1, seq(1, 100), 100,
			windowCounts{Expected: 100, Received: 100, Unique: 100}},
		{"injected loss", 1, cat(seq(1, 4), seq(6, 9), seq(11, 20)), 20,
			windowCounts{Expected: 20, Received: 18, Unique: 18, Lost: 2}},
		{"loss at the tail", 1, seq(1, 15), 20,
			windowCounts{Expected: 20, Received: 15, Unique: 15, Lost: 5}},
		{"injected duplicates", 1, cat(seq(1, 7), []uint64{7}, seq(8, 14), []uint64{14, 3}), 14,
			windowCounts{Expected: 14, Received: 17, Unique: 14, Duplicates: 3}},
		{"reordered pair", 1, cat(seq(1, 9), []uint64{11, 10}, seq(12, 20)), 20,
			windowCounts{Expected: 20, Received: 20, Unique: 20, Reordered: 1}},
		{"loss, duplicate and reorder together", 100, []uint64{100, 102, 101, 101, 104}, 6,
			windowCounts{Expected: 6, Received: 5, Unique: 4, Lost: 2, Duplicates: 1, Reordered: 1}},
		{"gap larger than the window clears old bits", 1, []uint64{1, 5000, 1}, 5000,
			windowCounts{Expected: 5000, Received: 3, Unique: 3, Lost: 4997, Reordered: 1, Late: 1}},
		{"duplicate right at window edge", 1, []uint64{1, trackWindow, 1}, trackWindow,
			windowCounts{Expected: trackWindow, Received: 3, Unique: 2, Lost: trackWindow - 2, Duplicates: 1}},
		{"more than owed is unexpected, not negative loss", 1, seq(1, 12), 10,
			windowCounts{Expected: 10, Received: 12, Unique: 12, Unexpected: 2}},
		{"nothing received", 1, nil, 7,
			windowCounts{Expected: 7, Lost: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr seqTracker
			tr.reset(tt.lo)
			for _, s := range tt.in {
				tr.record(s)
			}
			if got := tr.counts(tt.expected); got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestWindowCountsAdd(t *testing.T) {
	a := windowCounts{Expected: 1, Received: 2, Unique: 3, Lost: 4, Duplicates: 5, Reordered: 6, Late: 7, Unexpected: 8}
	var sum windowCounts
	sum.add(a)
	sum.add(a)
	if sum != (windowCounts{2, 4, 6, 8, 10, 12, 14, 16}) {
		t.Fatalf("sum %+v", sum)
	}
}

func BenchmarkSeqTrackerInOrder(b *testing.B) {
	var tr seqTracker
	tr.reset(1)
	b.ReportAllocs()
	for i := range b.N {
		tr.record(uint64(i + 1))
	}
}
