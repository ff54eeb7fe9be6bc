package player

import "time"

// MinWindow is the smallest of the durations observed over a sliding time
// window: a deque of samples, each smaller than those observed after it,
// so that adding is amortized O(1) and the minimum is the first sample
// still in the window. The jitter buffer keeps one per delivery path (its
// usual delay); a node keeps one per stripe for its repair decisions.
// The zero value is empty and ready to use; not safe for concurrent use.
type MinWindow struct {
	q []arrival
}

// arrival is one sample and when it was observed.
type arrival struct {
	at time.Time
	d  time.Duration
}

// Add observes d at time at.
func (w *MinWindow) Add(at time.Time, d time.Duration) {
	q := w.q
	for len(q) > 0 && q[len(q)-1].d >= d {
		q = q[:len(q)-1]
	}
	w.q = append(q, arrival{at, d})
}

// Restart forgets every sample and observes d at time at.
func (w *MinWindow) Restart(at time.Time, d time.Duration) {
	w.q = append(w.q[:0], arrival{at, d})
}

// Min returns the smallest sample observed within window before now, and
// false if there is none (samples older than that are dropped).
func (w *MinWindow) Min(now time.Time, window time.Duration) (time.Duration, bool) {
	i := 0
	for i < len(w.q) && now.Sub(w.q[i].at) > window {
		i++
	}
	w.q = w.q[i:]
	if len(w.q) == 0 {
		return 0, false
	}
	return w.q[0].d, true
}
