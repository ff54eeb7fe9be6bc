package live

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The repair plan: a hole is fetched once it is overdue by its own
// stripe's usual delay plus repairMargin and can still play; from the
// fastest parent of another stripe, never the source, never a busy peer;
// not again before repairRetry, and then from the next parent.
func TestRepairPlan(t *testing.T) {
	const k = 4
	st := hostlessStream(k, false)
	defer st.cancel()
	st.svc.cfg.Latency = 150 * time.Millisecond
	base := time.Unix(1000, 0)
	now := base
	st.svc.cfg.Now = func() time.Time { return now }
	st.verifier = &live.Verifier{}
	const chunk = 50 * time.Millisecond
	capture := func(seq uint64) time.Time { return base.Add(time.Duration(seq) * chunk) }
	// Chunks 1..40 arrive 100 ms after capture, but stripe 1 stops after
	// chunk 17: 21, 25, ... 37 are holes.
	for seq := uint64(1); seq <= 40; seq++ {
		if seq%k == 1 && seq > 17 {
			continue
		}
		now = capture(seq).Add(100 * time.Millisecond)
		if !st.add(&pb.LiveChunk{Seq: seq, CaptureUnixMicros: capture(seq).UnixMicro(), Data: []byte{0x47}}) {
			t.Fatalf("chunk %d not added", seq)
		}
	}
	parents := []peer.ID{"p0", "p1", "p2", "p3"}
	delays := []time.Duration{80, 100, 120, 100}
	for i, f := range st.feeds {
		f.parent = parents[i]
		f.fast.Restart(now, delays[i]*time.Millisecond) // usual delays
	}
	plan := func(busy map[peer.ID]bool) []fetchPlan {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.repairPlanLocked(now, busy)
	}
	// Stripe 1's parent is on it: it sent a status just now, and either
	// its newest chunk moved on lately or the parent holds chunks it has
	// not sent yet (a busy uplink, not a starving stripe): no fetch.
	now = capture(38).Add(170 * time.Millisecond)
	f1 := st.feeds[1]
	f1.statusAt, f1.newAt = now, now.Add(-repairSilence/2)
	if got := plan(nil); len(got) != 0 {
		t.Fatalf("plan %v while stripe 1's parent sends it chunks", got)
	}
	f1.newAt, f1.parentLatest = now.Add(-repairSilence), 37
	if got := plan(nil); len(got) != 0 {
		t.Fatalf("plan %v while stripe 1's parent holds chunks it has not sent", got)
	}
	// The parent has nothing newer (it lost its own feed): starving, but
	// its chunks may still come once it has failed over, so a hole is
	// fetched only when overdue: 37's neighbour (38) came 150 ms ago and
	// stripe 1's usual delay is 100 ms: not yet (100 + 60 ms).
	f1.parentLatest = 17
	now = capture(38).Add(150 * time.Millisecond)
	f1.statusAt = now
	if got := plan(nil); len(got) != 0 {
		t.Fatalf("plan %v before the hole is overdue", got)
	}
	// 170 ms: 37 is overdue; 33 (neighbour 34, 370 ms ago) is past the
	// playout budget (slowest stripe 120 ms + 150 ms target).
	now = capture(38).Add(170 * time.Millisecond)
	f1.statusAt = now
	got := plan(nil)
	if len(got) != 1 || got[0].peer != "p0" || len(got[0].seqs) != 1 || got[0].seqs[0] != 37 {
		t.Fatalf("plan %v, want chunk 37 from p0 (the fastest other parent)", got)
	}
	// Not asked again before repairRetry.
	now = now.Add(repairRetry / 2)
	if got := plan(nil); len(got) != 0 {
		t.Fatalf("plan %v within repairRetry", got)
	}
	// A retry goes to the next parent by delay: p3 (100 ms).
	st.latest = 40
	now = capture(38).Add(170*time.Millisecond + repairRetry)
	st.svc.cfg.Latency = time.Second // keep 37 playable for the retries
	got = plan(nil)
	// 25, 29 and 33 can play now: asked for the first time, from p0.
	if len(got) != 2 || got[0].peer != "p3" || len(got[0].seqs) != 1 || got[0].seqs[0] != 37 ||
		got[1].peer != "p0" || len(got[1].seqs) != 3 {
		t.Fatalf("retry plan %v, want 37 from p3 and 25, 29, 33 from p0", got)
	}
	// The source is never asked, nor a busy peer: p0 is the source now
	// and p2 is busy, so every ask goes to p3.
	st.srcID = "p0"
	now = now.Add(repairRetry)
	got = plan(map[peer.ID]bool{"p2": true})
	if len(got) != 1 || got[0].peer != "p3" {
		t.Fatalf("plan %v, want every ask to p3 (p0 is the source, p2 busy)", got)
	}
	// A silent parent (no status for repairSilence: dead) sends nothing
	// more: a hole is fetched as soon as a chunk after it is held, overdue
	// or not.
	st.srcID = ""
	st.latest = 41
	st.add(&pb.LiveChunk{Seq: 42, CaptureUnixMicros: capture(42).UnixMicro(), Data: []byte{0x47}})
	now = capture(42).Add(10 * time.Millisecond)
	f1.statusAt = now.Add(-repairSilence)
	got = plan(nil)
	if !slices.ContainsFunc(got, func(pl fetchPlan) bool { return slices.Contains(pl.seqs, 41) }) {
		t.Fatalf("plan %v, want 41 at once (stripe 1's parent is silent)", got)
	}
	f1.statusAt = now.Add(-repairSilence + time.Millisecond)
	st.asked = nil
	if got := plan(nil); slices.ContainsFunc(got, func(pl fetchPlan) bool { return slices.Contains(pl.seqs, 41) }) {
		t.Fatalf("plan %v fetches 41 before it is overdue while the parent still sends statuses", got)
	}

	// A stripe that never got a chunk (a join refused for it) is judged
	// by the slowest stripe's delay.
	st2 := hostlessStream(k, false)
	defer st2.cancel()
	st2.svc.cfg.Latency = 150 * time.Millisecond
	st2.svc.cfg.Now = func() time.Time { return now }
	st2.verifier = &live.Verifier{}
	for seq := uint64(100); seq <= 110; seq++ {
		if seq%k == 2 {
			continue
		}
		now = capture(seq).Add(100 * time.Millisecond)
		st2.add(&pb.LiveChunk{Seq: seq, CaptureUnixMicros: capture(seq).UnixMicro(), Data: []byte{0x47}})
	}
	for i, f := range st2.feeds {
		if i != 2 {
			f.parent = parents[i]
		}
	}
	now = capture(107).Add(100*time.Millisecond + repairMargin)
	st2.mu.Lock()
	got = st2.repairPlanLocked(now, nil)
	st2.mu.Unlock()
	var seqs []uint64
	for _, pl := range got {
		seqs = append(seqs, pl.seqs...)
	}
	if len(seqs) != 1 || seqs[0] != 106 {
		t.Fatalf("join plan fetches %v, want [106] (110 has no neighbour above; 102 is past the budget)", seqs)
	}
}

// BenchmarkRepairPlan: one repair tick of a viewer holding 30 s of a
// striped stream (600 chunks of 50 ms) with one stripe starving for the
// last second, its holes all asked for already (the steady cost of a
// failover under way) or none at all (the steady state).
func BenchmarkRepairPlan(b *testing.B) {
	for _, starving := range []bool{false, true} {
		name := "steady"
		if starving {
			name = "one-stripe-starving"
		}
		b.Run(name, func(b *testing.B) {
			const k = 4
			st := hostlessStream(k, false)
			defer st.cancel()
			st.svc.cfg.Window = 600
			st.ring = make([]*pb.LiveChunk, 600)
			st.svc.cfg.Latency = 150 * time.Millisecond
			base := time.Unix(1000, 0)
			now := base
			st.svc.cfg.Now = func() time.Time { return now }
			st.verifier = &live.Verifier{}
			capture := func(seq uint64) time.Time { return base.Add(time.Duration(seq) * 50 * time.Millisecond) }
			for seq := uint64(1); seq <= 1200; seq++ {
				if starving && seq%k == 1 && seq > 1180 {
					continue
				}
				now = capture(seq).Add(100 * time.Millisecond)
				st.add(&pb.LiveChunk{Seq: seq, CaptureUnixMicros: capture(seq).UnixMicro(), Data: []byte{0x47}})
			}
			for i, f := range st.feeds {
				f.parent, f.statusAt, f.newAt = peer.ID(fmt.Sprint("p", i)), now, now
			}
			if starving {
				st.feeds[1].statusAt = now.Add(-time.Second) // its parent is gone
			}
			b.ReportAllocs()
			for b.Loop() {
				st.mu.Lock()
				st.repairPlanLocked(now, nil)
				st.mu.Unlock()
			}
		})
	}
}
