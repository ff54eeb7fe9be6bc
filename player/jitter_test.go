package player

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const ms = time.Millisecond

// mk makes chunk seq captured at seq*100ms, a start point every 5 chunks.
func mk(seq uint64) Chunk {
	return Chunk{Seq: seq, Capture: t0.Add(time.Duration(seq) * 100 * ms), Start: seq%5 == 0, Data: []byte{byte(seq), 1, 2}}
}

func seqs(cs []Chunk) []uint64 {
	var s []uint64
	for _, c := range cs {
		s = append(s, c.Seq)
	}
	return s
}

func eq(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestJitterInOrderOnTime(t *testing.T) {
	j := NewJitter(JitterConfig{TargetLatency: 500 * ms})
	// Chunk k arrives 50ms after its capture; the local clock equals the
	// source's here so delays are meaningful.
	var got []Chunk
	var outAt []time.Time
	now := t0
	for k := uint64(0); k < 20; k++ {
		now = mk(k).Capture.Add(50 * ms)
		for _, c := range j.Pop(now) {
			got, outAt = append(got, c), append(outAt, now)
		}
		if r := j.Push(mk(k), now); r != Buffered {
			t.Fatalf("Push(%d) = %v", k, r)
		}
		// Drive Pop at every deadline up to the next arrival.
		next := mk(k + 1).Capture.Add(50 * ms)
		for {
			dl, ok := j.NextDeadline()
			if !ok || !dl.Before(next) {
				break
			}
			now = dl
			for _, c := range j.Pop(now) {
				got, outAt = append(got, c), append(outAt, now)
			}
		}
	}
	if len(got) < 15 {
		t.Fatalf("got %d chunks", len(got))
	}
	for i, c := range got {
		if c.Seq != uint64(i) {
			t.Fatalf("out of order: %v", seqs(got))
		}
		// playout = localBase(arrival of 0 = 50ms) + capture delta + 500ms
		want := t0.Add(50*ms + time.Duration(i)*100*ms + 500*ms)
		if !outAt[i].Equal(want) {
			t.Fatalf("chunk %d out at %v, want %v", i, outAt[i].Sub(t0), want.Sub(t0))
		}
	}
	st := j.Stats()
	if st.Continuity != 1 || st.Missed != 0 || st.Late != 0 || st.Startup != 500*ms {
		t.Fatalf("stats %+v", st)
	}
	if st.DelayP50 != 550*ms || st.DelayP99 != 550*ms {
		t.Fatalf("delay p50 %v p99 %v, want 550ms", st.DelayP50, st.DelayP99)
	}
	if st.Bytes != uint64(3*len(got)) {
		t.Fatalf("bytes %d", st.Bytes)
	}
}

func TestJitterReorderDuplicatesMissLate(t *testing.T) {
	j := NewJitter(JitterConfig{TargetLatency: 500 * ms})
	now := t0
	// 0 (start) anchors: localBase = t0, chunk k plays at t0 + k*100ms + 500ms.
	push := func(seq uint64, want PushResult) {
		t.Helper()
		if r := j.Push(mk(seq), now); r != want {
			t.Fatalf("Push(%d) = %v, want %v", seq, r, want)
		}
	}
	push(0, Buffered)
	push(3, Buffered)
	push(1, Buffered)
	push(1, Duplicate)
	push(4, Buffered)
	// 2 is missing.
	now = t0.Add(500 * ms)
	if out := j.Pop(now); !eq(seqs(out), []uint64{0}) {
		t.Fatalf("pop@500 %v", seqs(out))
	}
	push(0, Duplicate)
	now = t0.Add(650 * ms)
	if out := j.Pop(now); !eq(seqs(out), []uint64{1}) {
		t.Fatalf("pop@650 %v", seqs(out))
	}
	// At 700ms chunk 2 is due but missing; 3 is not due yet: wait (nothing out).
	now = t0.Add(750 * ms)
	if out := j.Pop(now); len(out) != 0 {
		t.Fatalf("pop@750 %v", seqs(out))
	}
	if dl, _ := j.NextDeadline(); !dl.Equal(t0.Add(800 * ms)) {
		t.Fatalf("NextDeadline %v", dl.Sub(t0))
	}
	// At 800ms chunk 3 is due: 2 is skipped.
	now = t0.Add(800 * ms)
	if out := j.Pop(now); !eq(seqs(out), []uint64{3}) {
		t.Fatalf("pop@800 %v", seqs(out))
	}
	// 2 arrives now: late (its turn passed), then a duplicate of it.
	push(2, Late)
	push(2, Duplicate)
	// 5 arrives after its deadline (1000ms): late and dropped.
	now = t0.Add(1050 * ms)
	push(5, Late)
	push(5, Duplicate)
	push(6, Buffered)
	now = t0.Add(1100 * ms)
	if out := j.Pop(now); !eq(seqs(out), []uint64{4, 6}) {
		t.Fatalf("pop@1100 %v", seqs(out))
	}
	st := j.Stats()
	if st.Delivered != 5 || st.Missed != 2 || st.Late != 2 || st.Duplicates != 4 {
		t.Fatalf("stats %+v", st)
	}
	if want := 5.0 / 7; st.Continuity != want {
		t.Fatalf("continuity %v, want %v", st.Continuity, want)
	}
}

func TestJitterWaitsForStartPoint(t *testing.T) {
	j := NewJitter(JitterConfig{TargetLatency: 200 * ms})
	now := t0
	j.Push(mk(3), now)
	j.Push(mk(4), now)
	if _, ok := j.NextDeadline(); ok {
		t.Fatal("deadline before any start point")
	}
	now = now.Add(time.Second)
	if out := j.Pop(now); len(out) != 0 {
		t.Fatalf("played before a start point: %v", seqs(out))
	}
	j.Push(mk(6), now)
	j.Push(mk(5), now) // the start point: anchors; 3, 4 dropped
	j.Push(mk(4), now) // before the anchor
	if out := j.Pop(now.Add(200 * ms)); !eq(seqs(out), []uint64{5}) {
		t.Fatalf("first pop %v", seqs(out))
	}
	if out := j.Pop(now.Add(300 * ms)); !eq(seqs(out), []uint64{6}) {
		t.Fatalf("second pop %v", seqs(out))
	}
	st := j.Stats()
	if st.Startup != 1200*ms || st.Missed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestJitterStallReanchorsAtLiveEdge(t *testing.T) {
	j := NewJitter(JitterConfig{TargetLatency: 500 * ms, StallAfter: time.Second})
	// Network delay 50ms; chunks 0..9 arrive in time, then an outage:
	// 10..29 never come, 30.. arrive from 3.05 s on.
	arrive := func(seq uint64) time.Time { return mk(seq).Capture.Add(50 * ms) }
	var out []uint64
	now := t0
	step := func(to time.Time) {
		for {
			dl, ok := j.NextDeadline()
			if !ok || dl.After(to) {
				break
			}
			now = dl
			out = append(out, seqs(j.Pop(now))...)
		}
		now = to
		out = append(out, seqs(j.Pop(now))...)
	}
	for k := uint64(0); k < 10; k++ {
		step(arrive(k))
		j.Push(mk(k), now)
	}
	// Chunk 9 plays at 0.05+0.9+0.5 = 1.45 s; a stall is declared 1 s later.
	step(arrive(30))
	st := j.Stats()
	if st.Stalls != 1 || st.Delivered != 10 {
		t.Fatalf("after outage: %+v, out %v", st, out)
	}
	// 31 (not a start point) first, then 30 (start point): anchors on 30.
	j.Push(mk(31), now)
	if _, ok := j.NextDeadline(); ok {
		t.Fatal("deadline while waiting for a start point")
	}
	j.Push(mk(30), now)
	for k := uint64(32); k < 43; k++ {
		step(arrive(k))
		j.Push(mk(k), now)
	}
	// Re-anchored at 3.05 s: chunk k plays at 3.05 + (k-30)*0.1 + 0.5 s.
	step(arrive(43))
	want := []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	for k := uint64(30); k < 39; k++ {
		want = append(want, k)
	}
	if !eq(out, want) {
		t.Fatalf("played %v", out)
	}
	st = j.Stats()
	if st.Missed != 20 || st.Stalls != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Caught up: delay after the re-anchor is 550ms again, not 550ms + outage.
	if st.DelayP99 != 550*ms {
		t.Fatalf("delay p99 %v after re-anchor", st.DelayP99)
	}
	// A chunk of the outage arriving now is stale/late, never played.
	if r := j.Push(mk(12), now); r != Late {
		t.Fatalf("Push(12) = %v", r)
	}
}

func TestJitterEnd(t *testing.T) {
	j := NewJitter(JitterConfig{TargetLatency: 100 * ms})
	j.Push(mk(0), t0)
	end := mk(1)
	end.End, end.Data = true, nil
	j.Push(end, t0)
	j.Push(mk(2), t0)
	if out := j.Pop(t0.Add(time.Second)); !eq(seqs(out), []uint64{0, 1}) {
		t.Fatalf("pop %v", seqs(out))
	}
	if !j.Ended() || j.Push(mk(3), t0) != Ignored {
		t.Fatal("not ended")
	}
	if _, ok := j.NextDeadline(); ok {
		t.Fatal("deadline after end")
	}
}

func TestJitterOverflow(t *testing.T) {
	j := NewJitter(JitterConfig{MaxBuffered: 4})
	for _, k := range []uint64{1, 2, 3, 4, 6, 7, 8, 9} { // no start point: nothing plays
		j.Push(mk(k), t0)
	}
	if j.Buffered() != 4 || j.Stats().Overflow != 4 {
		t.Fatalf("buffered %d stats %+v", j.Buffered(), j.Stats())
	}
}

// Random arrival order and delays never break Seq order, and every chunk is
// accounted for exactly once.
func TestJitterRandomized(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	j := NewJitter(JitterConfig{TargetLatency: 300 * ms})
	type ev struct {
		at time.Time
		c  Chunk
	}
	var evs []ev
	const n = 2000
	for k := uint64(0); k < n; k++ {
		c := mk(k)
		d := time.Duration(20+r.IntN(60)) * ms
		switch x := r.IntN(100); {
		case x < 2: // lost
			continue
		case x < 10: // delayed: often late
			d += time.Duration(r.IntN(900)) * ms
		}
		evs = append(evs, ev{c.Capture.Add(d), c})
		if r.IntN(10) == 0 { // duplicate
			evs = append(evs, ev{c.Capture.Add(d + time.Duration(r.IntN(200))*ms), c})
		}
	}
	// Sort by arrival.
	for i := 1; i < len(evs); i++ {
		for k := i; k > 0 && evs[k].at.Before(evs[k-1].at); k-- {
			evs[k], evs[k-1] = evs[k-1], evs[k]
		}
	}
	var out []uint64
	for _, e := range evs {
		for {
			dl, ok := j.NextDeadline()
			if !ok || dl.After(e.at) {
				break
			}
			out = append(out, seqs(j.Pop(dl))...)
		}
		out = append(out, seqs(j.Pop(e.at))...)
		j.Push(e.c, e.at)
	}
	out = append(out, seqs(j.Pop(evs[len(evs)-1].at.Add(time.Hour)))...)
	for i := 1; i < len(out); i++ {
		if out[i] <= out[i-1] {
			t.Fatalf("out of order at %d: %d after %d", i, out[i], out[i-1])
		}
	}
	st := j.Stats()
	last := out[len(out)-1]
	if st.Delivered != uint64(len(out)) || st.Delivered+st.Missed != last+1-out[0] {
		t.Fatalf("delivered %d missed %d (out %d), want sum %d", st.Delivered, st.Missed, len(out), last+1-out[0])
	}
	if st.Late == 0 || st.Missed < st.Late || st.Delivered < n*8/10 {
		t.Fatalf("implausible: %+v", st)
	}
	t.Logf("%+v", st)
}

func BenchmarkJitterPushPop(b *testing.B) {
	j := NewJitter(JitterConfig{TargetLatency: 500 * ms})
	data := make([]byte, 188*7)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := uint64(i)
		// Pairs swapped: mild reordering.
		s := k ^ 1
		c := Chunk{Seq: s, Capture: t0.Add(time.Duration(s) * 10 * ms), Start: s%50 == 0, Data: data}
		now := t0.Add(time.Duration(k)*10*ms + 20*ms)
		j.Push(c, now)
		j.Pop(now)
	}
}

// With Adaptive, a join whose start point came 300 ms late (a backlog burst)
// does not keep the viewer 300 ms behind: the schedule follows the path's
// usual (fastest recent) delay.
func TestJitterAdaptiveForgetsJoinBurst(t *testing.T) {
	j := NewJitter(JitterConfig{TargetLatency: 200 * time.Millisecond, Adaptive: true, AdaptWindow: time.Second})
	t0 := time.Unix(1000, 0)
	capture := func(seq int) time.Time { return t0.Add(time.Duration(seq) * 100 * time.Millisecond) }
	// The start point (seq 0) arrives 300 ms after capture, seq 1..3 in the same burst.
	now := capture(0).Add(300 * time.Millisecond)
	j.Push(Chunk{Seq: 0, Capture: capture(0), Start: true, Data: []byte{0}}, now)
	for s := 1; s <= 3; s++ {
		j.Push(Chunk{Seq: uint64(s), Capture: capture(s), Data: []byte{byte(s)}}, now)
	}
	// From seq 4 on, chunks arrive 20 ms after capture.
	var delays []time.Duration
	for s := 4; s <= 60; s++ {
		at := capture(s).Add(20 * time.Millisecond)
		j.Push(Chunk{Seq: uint64(s), Capture: capture(s), Data: []byte{byte(s)}}, at)
		for _, c := range j.Pop(at) {
			delays = append(delays, at.Sub(c.Capture))
		}
		// Pop at every deadline in between, as Live does.
		for {
			d, ok := j.NextDeadline()
			if !ok || !d.Before(capture(s+1).Add(20*time.Millisecond)) {
				break
			}
			for _, c := range j.Pop(d) {
				delays = append(delays, d.Sub(c.Capture))
			}
		}
	}
	if st := j.Stats(); st.Continuity < 1 {
		t.Fatalf("continuity %.3f, want 1", st.Continuity)
	}
	// Well after the window: every chunk plays 20 ms + TargetLatency after capture.
	last := delays[len(delays)-10:]
	for _, d := range last {
		if d < 215*time.Millisecond || d > 225*time.Millisecond {
			t.Fatalf("late delays %v: the schedule kept the join burst's delay (want 220 ms)", last)
		}
	}
}

// Stripes: every fourth chunk comes over a path 300 ms slower than the
// others. Anchored on a fast chunk, the schedule moves later at the first
// slow one, so that from then on nothing is late (following the fastest
// delivery of all paths, a quarter of the chunks was late forever).
func TestJitterAdaptiveFollowsSlowestPath(t *testing.T) {
	const target = 100 * time.Millisecond
	j := NewJitter(JitterConfig{TargetLatency: target, Adaptive: true, Paths: 4})
	t0 := time.Unix(1000, 0)
	capture := func(seq int) time.Time { return t0.Add(time.Duration(seq) * 50 * time.Millisecond) }
	var evs []arriving
	for s := 0; s < 200; s++ {
		d := 20 * time.Millisecond
		if s%4 == 3 {
			d += 300 * time.Millisecond
		}
		evs = append(evs, arriving{capture(s).Add(d), Chunk{Seq: uint64(s), Capture: capture(s), Start: s%20 == 0, Data: []byte{1}}})
	}
	delays := replay(j, evs)
	st := j.Stats()
	// Only the first slow chunk (seq 3) may be lost.
	if st.Late > 1 || st.Missed > 1 {
		t.Fatalf("late %d missed %d, want at most the first slow chunk", st.Late, st.Missed)
	}
	for _, d := range delays[len(delays)-20:] {
		if d < 315*time.Millisecond || d > 425*time.Millisecond {
			t.Fatalf("delay %v, want the slow path's 320 ms + target", d)
		}
	}
}

// A viewer that (re)anchored on an old start point, seconds behind live,
// jumps to the newest start point once live chunks arrive, instead of
// playing the old ones in a burst and staying behind.
func TestJitterAdaptiveCatchesUp(t *testing.T) {
	j := NewJitter(JitterConfig{TargetLatency: 300 * time.Millisecond, Adaptive: true, AdaptWindow: 500 * time.Millisecond})
	t0 := time.Unix(1000, 0)
	capture := func(seq int) time.Time { return t0.Add(time.Duration(seq) * 100 * time.Millisecond) }
	// Backlog: seq 0..39 (4 s) arrives in one burst at capture(40), start points every 10.
	now := capture(40)
	for s := 0; s < 40; s++ {
		j.Push(Chunk{Seq: uint64(s), Capture: capture(s), Start: s%10 == 0, Data: []byte{1}}, now)
	}
	j.Pop(now)
	// Live chunks from 40 on arrive 10 ms after capture.
	for s := 40; s < 80; s++ {
		at := capture(s).Add(10 * time.Millisecond)
		j.Push(Chunk{Seq: uint64(s), Capture: capture(s), Start: s%10 == 0, Data: []byte{1}}, at)
		j.Pop(at)
	}
	j.Pop(capture(90))
	st := j.Stats()
	if st.CatchUps == 0 {
		t.Fatal("no catch-up")
	}
	// Recent chunks play about TargetLatency after capture, not seconds later.
	if p50 := st.DelayP50; p50 > 400*time.Millisecond {
		t.Fatalf("delay p50 %v after catching up; want ~310 ms", p50)
	}
}

// One path that gets 200 ms slower (a parent switch to a deeper parent):
// the schedule moves later at its first late chunk, and the losses stop
// there (until 2026-12-02 they went on until the fast arrivals left the
// window: 16 chunks here).
func TestJitterAdaptiveFollowsSlowerPath(t *testing.T) {
	j := NewJitter(JitterConfig{TargetLatency: 100 * time.Millisecond, Adaptive: true, AdaptWindow: time.Second})
	t0 := time.Unix(1000, 0)
	capture := func(seq int) time.Time { return t0.Add(time.Duration(seq) * 50 * time.Millisecond) }
	var delays []time.Duration
	for s := 0; s < 200; s++ {
		d := 20 * time.Millisecond
		if s >= 100 {
			d = 220 * time.Millisecond
		}
		at := capture(s).Add(d)
		for {
			dl, ok := j.NextDeadline()
			if !ok || !dl.Before(at) {
				break
			}
			for _, c := range j.Pop(dl) {
				delays = append(delays, dl.Sub(c.Capture))
			}
		}
		j.Push(Chunk{Seq: uint64(s), Capture: capture(s), Start: s%20 == 0, Data: []byte{1}}, at)
	}
	st := j.Stats()
	// Lost: the first slow chunk.
	if st.Missed > 1 {
		t.Fatalf("missed %d: the schedule did not follow the slower path", st.Missed)
	}
	for _, d := range delays[len(delays)-20:] {
		if d < 315*time.Millisecond || d > 325*time.Millisecond {
			t.Fatalf("delay %v, want 220 ms + target", d)
		}
	}
}

// A chunk a repair fetch brought says nothing about its path's usual
// delivery: it does not move the schedule. Here a late one, which would
// otherwise hold the whole stream back by the fetch's delay.
func TestJitterRepairDoesNotMoveSchedule(t *testing.T) {
	t0 := time.Unix(1000, 0)
	capture := func(seq int) time.Time { return t0.Add(time.Duration(seq) * 50 * time.Millisecond) }
	// Chunks 0-19 come 20 ms after capture; chunk 21 (path 1) is missing:
	// 20 and 22 come, and the caller pushes 21 400 ms after its capture,
	// past its playout time.
	withHole := func() *Jitter {
		j := NewJitter(JitterConfig{TargetLatency: 100 * time.Millisecond, Adaptive: true, Paths: 2})
		for s := 0; s < 20; s++ {
			at := capture(s).Add(20 * time.Millisecond)
			j.Pop(at)
			j.Push(Chunk{Seq: uint64(s), Capture: capture(s), Start: s == 0, Data: []byte{1}}, at)
		}
		j.Push(Chunk{Seq: 20, Capture: capture(20), Data: []byte{1}}, capture(20).Add(20*time.Millisecond))
		j.Push(Chunk{Seq: 22, Capture: capture(22), Data: []byte{1}}, capture(22).Add(20*time.Millisecond))
		j.Pop(capture(22).Add(200 * time.Millisecond))
		return j
	}
	j := withHole()
	before := j.Stats().Playout
	// By a fetch.
	if r := j.Push(Chunk{Seq: 21, Capture: capture(21), Repair: true, Data: []byte{1}}, capture(21).Add(400*time.Millisecond)); r != Late {
		t.Fatalf("late repaired chunk: %v, want late", r)
	}
	if after := j.Stats().Playout; after != before {
		t.Fatalf("schedule moved from %v to %v on a repaired chunk", before, after)
	}
	// The same chunk by its path would have moved it (the rule above).
	j2 := withHole()
	j2.Push(Chunk{Seq: 21, Capture: capture(21), Data: []byte{1}}, capture(21).Add(400*time.Millisecond))
	if after := j2.Stats().Playout; after == before {
		t.Fatal("test setup: a late chunk of the path itself should move the schedule")
	}
}

// A short chunk (cut early before a keyframe) arrives faster than the
// full chunks around it: it waited less at the source and takes less time
// on every hop. The schedule follows the full chunks, so that none of them
// is late (following the short ones, every full chunk after one was late
// until the path's next late chunk moved the schedule back).
func TestJitterSmallChunksDoNotSetSchedule(t *testing.T) {
	j := NewJitter(JitterConfig{TargetLatency: 50 * time.Millisecond, Adaptive: true})
	t0 := time.Unix(1000, 0)
	capture := func(seq int) time.Time { return t0.Add(time.Duration(seq) * 80 * time.Millisecond) }
	full, short := make([]byte, 7000), make([]byte, 2000)
	var evs []arriving
	for s := 0; s < 300; s++ {
		d, data := 300*time.Millisecond, full
		if s%7 == 6 {
			d, data = 180*time.Millisecond, short // the short chunk before each start point
		}
		evs = append(evs, arriving{capture(s).Add(d), Chunk{Seq: uint64(s), Capture: capture(s), Start: s%7 == 0, Data: data}})
	}
	replay(j, evs)
	j.Pop(capture(400))
	if st := j.Stats(); st.Missed > 0 {
		t.Fatalf("missed %d (late %d): the short chunks set the schedule", st.Missed, st.Late)
	}
}

// arriving is a chunk and when it arrives.
type arriving struct {
	at time.Time
	c  Chunk
}

// replay pushes chunks in arrival order (sorted stably here), popping at
// every deadline before each arrival and at the arrival itself, as Live
// does, and returns the delays (capture to playout) of the chunks played.
func replay(j *Jitter, evs []arriving) []time.Duration {
	slices.SortStableFunc(evs, func(a, b arriving) int { return a.at.Compare(b.at) })
	var delays []time.Duration
	pop := func(now time.Time) {
		for _, c := range j.Pop(now) {
			delays = append(delays, now.Sub(c.Capture))
		}
	}
	for _, e := range evs {
		for {
			d, ok := j.NextDeadline()
			if !ok || !d.Before(e.at) {
				break
			}
			pop(d)
		}
		j.Push(e.c, e.at)
		pop(e.at)
	}
	return delays
}
