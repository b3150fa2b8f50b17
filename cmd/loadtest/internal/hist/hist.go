// Package hist provides a lock-free, log-bucketed latency histogram with a
// bounded relative error, sized for recording from thousands of goroutines.
//
// Values below 256 are counted exactly. Larger values fall into buckets whose
// width is 1/128 of their lower bound (128 sub-buckets per power of two), and a
// percentile is reported as the bucket midpoint, so the relative error of a
// reported percentile is below 0.4%. Min and max are tracked exactly.
package hist

import (
	"math"
	"math/bits"
	"sync/atomic"
)

const (
	subBits    = 7
	subCount   = 1 << subBits // sub-buckets per power of two
	exactLimit = 2 * subCount // values below this have their own bucket
	// Shifts 1..56 cover every uint64 (bits.Len64 ≤ 64 → shift ≤ 56).
	maxShift   = 64 - (subBits + 1)
	numBuckets = exactLimit + maxShift*subCount
)

// Histogram counts non-negative int64 samples. The zero value is not usable;
// call New. All methods are safe for concurrent use.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64
	min    atomic.Uint64
	max    atomic.Uint64
}

// New returns an empty histogram.
func New() *Histogram {
	h := &Histogram{}
	h.min.Store(math.MaxUint64)
	return h
}

func bucketOf(v uint64) int {
	if v < exactLimit {
		return int(v)
	}
	shift := bits.Len64(v) - (subBits + 1)
	m := v >> uint(shift) // in [subCount, 2*subCount)
	return exactLimit + (shift-1)*subCount + int(m-subCount)
}

// bucketBounds returns the inclusive range of values that map to bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < exactLimit {
		return uint64(i), uint64(i)
	}
	j := i - exactLimit
	shift := uint(j/subCount + 1)
	m := uint64(j%subCount + subCount)
	lo = m << shift
	hi = lo + (uint64(1) << shift) - 1
	return lo, hi
}

// Record adds one sample. Negative values are recorded as 0 (a clock step can
// make a measured latency negative; dropping it would hide the sample).
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	h.counts[bucketOf(u)].Add(1)
	h.total.Add(1)
	h.sum.Add(u)
	for {
		cur := h.max.Load()
		if u <= cur || h.max.CompareAndSwap(cur, u) {
			break
		}
	}
	for {
		cur := h.min.Load()
		if u >= cur || h.min.CompareAndSwap(cur, u) {
			break
		}
	}
}

// Count returns the number of recorded samples.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest sample, or 0 when empty.
func (h *Histogram) Max() int64 { return int64(h.max.Load()) }

// Min returns the smallest sample, or 0 when empty.
func (h *Histogram) Min() int64 {
	v := h.min.Load()
	if v == math.MaxUint64 {
		return 0
	}
	return int64(v)
}

// Mean returns the arithmetic mean, or 0 when empty.
func (h *Histogram) Mean() float64 {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return float64(h.sum.Load()) / float64(n)
}

// Quantile returns the value at quantile q (0..1): the smallest recorded
// bucket whose cumulative count reaches ceil(q*count), reported as the bucket
// midpoint clamped to [Min, Max]. It returns 0 when empty.
func (h *Histogram) Quantile(q float64) int64 {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	if q <= 0 {
		return h.Min()
	}
	if q >= 1 {
		return h.Max()
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank == 0 {
		rank = 1
	}
	var cum uint64
	for i := range h.counts {
		c := h.counts[i].Load()
		if c == 0 {
			continue
		}
		cum += c
		if cum >= rank {
			lo, hi := bucketBounds(i)
			v := int64(lo + (hi-lo)/2)
			return min(max(v, h.Min()), h.Max())
		}
	}
	return h.Max()
}

// Merge adds every sample of o into h. It is meant for summaries taken after
// recording has stopped; concurrent recording into o may be partially seen.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.total.Add(o.total.Load())
	h.sum.Add(o.sum.Load())
	if o.total.Load() == 0 {
		return
	}
	for mx := uint64(o.Max()); ; {
		cur := h.max.Load()
		if mx <= cur || h.max.CompareAndSwap(cur, mx) {
			break
		}
	}
	for mn := uint64(o.Min()); ; {
		cur := h.min.Load()
		if mn >= cur || h.min.CompareAndSwap(cur, mn) {
			break
		}
	}
}
