package player

import (
	"testing"
	"time"
)

// MinWindow keeps the smallest sample of the window: a larger sample does
// not displace it, a smaller one does at once, and it leaves when it gets
// older than the window; Restart forgets the rest.
func TestMinWindow(t *testing.T) {
	var w MinWindow
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	if _, ok := w.Min(t0, time.Second); ok {
		t.Fatal("empty window has a minimum")
	}
	w.Add(at(0), 100*time.Millisecond)
	w.Add(at(100), 300*time.Millisecond)
	w.Add(at(200), 200*time.Millisecond)
	for _, c := range []struct {
		now  int
		want time.Duration
	}{
		{300, 100 * time.Millisecond},  // the first sample, still in the window
		{1100, 200 * time.Millisecond}, // it left; 300 was displaced by 200
		{1300, 0},                      // all left
	} {
		got, ok := w.Min(at(c.now), time.Second)
		if c.want == 0 {
			if ok {
				t.Fatalf("at %d ms: minimum %v, want none", c.now, got)
			}
			continue
		}
		if !ok || got != c.want {
			t.Fatalf("at %d ms: minimum %v (%v), want %v", c.now, got, ok, c.want)
		}
	}
	w.Add(at(1400), 50*time.Millisecond)
	w.Restart(at(1500), 400*time.Millisecond)
	if got, _ := w.Min(at(1500), time.Second); got != 400*time.Millisecond {
		t.Fatalf("after Restart: minimum %v, want 400ms", got)
	}
}
