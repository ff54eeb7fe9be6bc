package live

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
)

// A parent skips a queued chunk captured over maxQueuedAge before the
// newest chunk it holds of the same stripe, not of any stripe: a stripe
// that is late as a whole is still forwarded.
func TestStalePerStripe(t *testing.T) {
	svc := &Service{ctx: context.Background(), log: slog.New(slog.DiscardHandler),
		cfg: Config{Window: 256, Stripes: 4, Now: time.Now}}
	st := newStream(svc, cid.Cid{}, false)
	defer st.cancel()
	const chunk = 50_000 // µs
	mk := func(seq uint64) *pb.LiveChunk {
		return &pb.LiveChunk{Seq: seq, CaptureUnixMicros: int64(seq) * chunk, Data: []byte{0x47}}
	}
	// Stripes 0, 2 and 3 are at seq 120 (6 s); stripe 1 lags 2 s as a
	// whole: its newest chunk is 81 (4.05 s).
	for seq := uint64(1); seq <= 120; seq++ {
		if seq%4 == 1 && seq > 81 {
			continue
		}
		if !st.add(mk(seq)) {
			t.Fatalf("chunk %d not added", seq)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, tc := range []struct {
		seq   uint64
		stale bool
	}{
		{81, false},  // stripe 1's newest, 1.95 s behind the stream's newest
		{61, false},  // 1 s behind stripe 1's newest: not over the bound
		{57, true},   // 1.2 s behind stripe 1's newest
		{100, false}, // stripe 0, 1 s behind 120
		{96, true},   // stripe 0, 1.2 s behind
	} {
		if got := st.staleLocked(mk(tc.seq)); got != tc.stale {
			t.Errorf("chunk %d (stripe %d): stale = %v, want %v", tc.seq, tc.seq%4, got, tc.stale)
		}
	}
	// The whole-stream rule this replaced would have skipped all of
	// stripe 1's chunks still to be sent.
	if st.latestCap-mk(81).CaptureUnixMicros <= maxQueuedAge.Microseconds() {
		t.Fatal("test setup: stripe 1 should lag the stream by more than maxQueuedAge")
	}
}
