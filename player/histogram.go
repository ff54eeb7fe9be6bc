package player

import (
	"slices"
	"sync"
	"time"
)

// Histogram collects durations and answers quantiles. Implementations must be
// safe for concurrent use.
type Histogram interface {
	Observe(d time.Duration)
	// Quantile returns the q-quantile (0 <= q <= 1) of what it holds, 0 if empty.
	Quantile(q float64) time.Duration
	// Count returns the number of observations ever made.
	Count() uint64
}

// RingHistogram keeps the last N samples; quantiles are exact over them.
type RingHistogram struct {
	mu    sync.Mutex
	buf   []time.Duration
	next  int
	count uint64
}

// NewRingHistogram returns a histogram over the last n (>= 1) samples.
func NewRingHistogram(n int) *RingHistogram {
	return &RingHistogram{buf: make([]time.Duration, 0, max(n, 1))}
}

// Observe implements Histogram.
func (h *RingHistogram) Observe(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.count++
	if len(h.buf) < cap(h.buf) {
		h.buf = append(h.buf, d)
		return
	}
	h.buf[h.next] = d
	h.next = (h.next + 1) % len(h.buf)
}

// Quantile implements Histogram (nearest rank).
func (h *RingHistogram) Quantile(q float64) time.Duration {
	h.mu.Lock()
	s := slices.Clone(h.buf)
	h.mu.Unlock()
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	q = min(max(q, 0), 1)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Count implements Histogram.
func (h *RingHistogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}
