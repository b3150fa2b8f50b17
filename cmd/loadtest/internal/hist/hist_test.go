package hist

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func TestQuantileAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func() int64
	}{
		{"uniform small", func() int64 { return r.Int64N(1000) }},
		{"uniform ms", func() int64 { return 1_000_000 + r.Int64N(50_000_000) }},
		{"exponential", func() int64 { return int64(r.ExpFloat64() * 2e6) }},
		{"lognormal", func() int64 { return int64(math.Exp(r.NormFloat64()*1.5 + 14)) }},
		{"bimodal", func() int64 {
			if r.IntN(100) < 2 {
				return 500_000_000 + r.Int64N(1e8)
			}
			return 200_000 + r.Int64N(100_000)
		}},
		{"huge", func() int64 { return math.MaxInt64 - r.Int64N(1<<40) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New()
			vals := make([]int64, 100_000)
			for i := range vals {
				vals[i] = tt.gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			if h.Count() != uint64(len(vals)) {
				t.Fatalf("count %d", h.Count())
			}
			if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
				t.Fatalf("min/max %d/%d want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 0.9999} {
				want := exactQuantile(vals, q)
				got := h.Quantile(q)
				diff := math.Abs(float64(got) - float64(want))
				if diff > 0.01*float64(want) && diff > 1 {
					t.Errorf("q%.4f: got %d want %d (err %.3f%%)", q, got, want, 100*diff/float64(want))
				}
			}
		})
	}
}

func TestBucketBoundsRoundTrip(t *testing.T) {
	for i := 0; i < numBuckets; i++ {
		lo, hi := bucketBounds(i)
		if lo > hi {
			t.Fatalf("bucket %d: lo %d > hi %d", i, lo, hi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d: bounds [%d,%d] map to %d,%d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if i > exactLimit && float64(hi-lo+1)/float64(lo) > 1.0/subCount+1e-12 {
			t.Fatalf("bucket %d too wide: [%d,%d]", i, lo, hi)
		}
		if i > 0 {
			_, prevHi := bucketBounds(i - 1)
			if prevHi+1 != lo {
				t.Fatalf("gap before bucket %d", i)
			}
		}
	}
	if _, hi := bucketBounds(numBuckets - 1); hi != math.MaxUint64 {
		t.Fatalf("last bucket ends at %d", hi)
	}
}

func TestEdgeCases(t *testing.T) {
	tests := []struct {
		name    string
		samples []int64
		q       float64
		want    int64
	}{
		{"empty", nil, 0.5, 0},
		{"single", []int64{12345}, 0.99, 12345},
		{"negative clamps to zero", []int64{-5}, 0.5, 0},
		{"q0 is min", []int64{7, 9000, 100}, 0, 7},
		{"q1 is max", []int64{7, 9000, 100}, 1, 9000},
		{"exact small", []int64{1, 2, 3, 4}, 0.5, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New()
			for _, v := range tt.samples {
				h.Record(v)
			}
			if got := h.Quantile(tt.q); got != tt.want {
				t.Fatalf("got %d want %d", got, tt.want)
			}
		})
	}
}

func TestConcurrentRecordAndMerge(t *testing.T) {
	h := New()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10_000 {
				h.Record(int64(g*10_000 + i))
			}
		})
	}
	wg.Wait()
	if h.Count() != 80_000 || h.Max() != 79_999 || h.Min() != 0 {
		t.Fatalf("count %d max %d min %d", h.Count(), h.Max(), h.Min())
	}
	m := New()
	m.Record(1_000_000)
	m.Merge(h)
	if m.Count() != 80_001 || m.Max() != 1_000_000 || m.Min() != 0 {
		t.Fatalf("merged count %d max %d min %d", m.Count(), m.Max(), m.Min())
	}
	if mean := h.Mean(); math.Abs(mean-39_999.5) > 1e-6 {
		t.Fatalf("mean %v", mean)
	}
}

func BenchmarkRecord(b *testing.B) {
	h := New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		v := int64(1)
		for pb.Next() {
			h.Record(v)
			v = (v*7919 + 13) % 100_000_000
		}
	})
}
