package live

import (
	"testing"
	"time"
)

// The stall timeout defaults to 350 ms with one stripe (a failover must fit
// in the jitter target) and 500 ms with stripes (repair fetches cover a
// starving stripe); a value given is kept.
func TestStallTimeoutDefault(t *testing.T) {
	for _, tc := range []struct {
		stripes    int
		stall      time.Duration
		want       time.Duration
		wantStripe int
	}{
		{0, 0, 350 * time.Millisecond, 1},
		{1, 0, 350 * time.Millisecond, 1},
		{4, 0, 500 * time.Millisecond, 4},
		{4, 200 * time.Millisecond, 200 * time.Millisecond, 4},
		{1, 800 * time.Millisecond, 800 * time.Millisecond, 1},
	} {
		c := Config{Stripes: tc.stripes, StallTimeout: tc.stall}
		c.defaults()
		if c.StallTimeout != tc.want || c.Stripes != tc.wantStripe {
			t.Errorf("Config{Stripes: %d, StallTimeout: %v}: defaults give %d stripes, stall timeout %v; want %d, %v",
				tc.stripes, tc.stall, c.Stripes, c.StallTimeout, tc.wantStripe, tc.want)
		}
	}
}
