package sched

import (
	"fmt"
	"testing"
	"time"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func chunksOf(rs []Request) map[int]PeerID {
	m := map[int]PeerID{}
	for _, r := range rs {
		for i := r.First; i < r.First+r.Count; i++ {
			m[i] = r.Peer
		}
	}
	return m
}

func TestNoPeersThenJoin(t *testing.T) {
	s := New(Config{NumChunks: 100, ChunkSize: 64 * kib}, t0)
	if rs := s.Next(t0); len(rs) != 0 {
		t.Fatalf("requests with no peers: %v", rs)
	}
	if w := s.NextWake(t0); !w.IsZero() {
		t.Fatalf("NextWake with nothing in flight = %v", w)
	}
	s.AddPeer("a", t0.Add(ms(10)))
	rs := s.Next(t0.Add(ms(10)))
	if len(rs) == 0 || rs[0].First != 0 || rs[0].Peer != "a" {
		t.Fatalf("after AddPeer: %v", rs)
	}
	if w := s.NextWake(t0.Add(ms(10))); !w.Equal(rs[0].Timeout) && !w.Before(rs[0].Timeout) {
		t.Fatalf("NextWake %v after the first timeout %v", w, rs[0].Timeout)
	}
}

func TestSetHaveSkipsAndComplete(t *testing.T) {
	s := New(Config{NumChunks: 10, ChunkSize: 64 * kib, MaxRangeLen: 4}, t0)
	for i := 0; i < 10; i++ {
		if i != 7 {
			s.SetHave(i)
		}
	}
	s.AddPeer("a", t0)
	rs := s.Next(t0)
	if len(rs) != 1 || rs[0].First != 7 || rs[0].Count != 1 {
		t.Fatalf("got %v, want only chunk 7", rs)
	}
	if s.Complete() {
		t.Fatal("complete too early")
	}
	if dup := s.OnChunk(rs[0].ID, "a", 7, 64*kib, t0.Add(ms(200))); dup {
		t.Fatal("first arrival reported as dup")
	}
	if !s.Complete() {
		t.Fatal("not complete")
	}
	if dup := s.OnChunk(rs[0].ID, "a", 7, 64*kib, t0.Add(ms(210))); !dup {
		t.Fatal("second arrival not reported as dup")
	}
}

func TestRemovePeerRequeuesAtOnce(t *testing.T) {
	s := New(Config{NumChunks: 100, ChunkSize: 64 * kib, Store: true}, t0)
	s.AddPeer("a", t0)
	s.AddPeer("b", t0)
	rs := s.Next(t0)
	lost := map[int]bool{}
	for i, p := range chunksOf(rs) {
		if p == "a" {
			lost[i] = true
		}
	}
	if len(lost) == 0 {
		t.Fatal("a got nothing")
	}
	now := t0.Add(ms(50))
	s.RemovePeer("a", now)
	// b's pipeline is full; as its chunks arrive the lost ones come first.
	for _, r := range rs {
		if r.Peer != "b" {
			continue
		}
		for i := r.First; i < r.First+r.Count; i++ {
			s.OnChunk(r.ID, "b", i, 64*kib, now)
		}
		s.OnDone(r.ID, "b", now)
	}
	got := chunksOf(s.Next(now))
	for i := range lost {
		if got[i] != "b" {
			t.Fatalf("lost chunk %d not re-requested from b at once (got %v)", i, got)
		}
	}
	// A late chunk from the removed peer is still accepted once.
	if s.OnChunk(rs[0].ID, "a", 0, 64*kib, now) && !s.Has(0) {
		t.Fatal("chunk from a removed peer rejected")
	}
}

func TestBanIsPermanent(t *testing.T) {
	s := New(Config{NumChunks: 10, ChunkSize: 64 * kib}, t0)
	s.AddPeer("bad", t0)
	rs := s.Next(t0)
	if len(rs) == 0 {
		t.Fatal("no requests")
	}
	s.Ban("bad", t0)
	s.AddPeer("bad", t0)
	if rs := s.Next(t0); len(rs) != 0 {
		t.Fatalf("banned peer asked: %v", rs)
	}
	s.OnError(rs[0].ID, "bad", ErrReset, t0) // stale: ignored
	s.AddPeer("good", t0)
	got := chunksOf(s.Next(t0))
	if got[0] != "good" {
		t.Fatalf("chunk 0 not moved to good: %v", got)
	}
}

func TestBackoffExponential(t *testing.T) {
	s := New(Config{NumChunks: 1000, ChunkSize: 64 * kib}, t0)
	s.AddPeer("a", t0)
	now := t0
	var prev time.Duration
	for n := 1; n <= 5; n++ {
		var rs []Request
		for len(rs) == 0 { // early wakes (stale timers) are allowed
			rs = s.Next(now)
			if len(rs) == 0 {
				w := s.NextWake(now)
				if w.IsZero() || !w.After(now) {
					t.Fatalf("round %d: no request and no wake at %v", n, now.Sub(t0))
				}
				now = w
			}
		}
		for _, r := range rs {
			s.OnError(r.ID, "a", ErrBusy, now)
		}
		if rs := s.Next(now); len(rs) != 0 {
			t.Fatalf("round %d: asked during backoff", n)
		}
		st := s.Stats().Peers[0]
		d := st.BackoffUntil.Sub(now)
		if n == 1 && d != backoffBase || n > 1 && d != 2*prev {
			t.Fatalf("round %d: backoff %v after %v, want doubling from %v", n, d, prev, backoffBase)
		}
		if st.Fails != n {
			t.Fatalf("round %d: fails %d", n, st.Fails)
		}
		if w := s.NextWake(now); w.After(st.BackoffUntil) {
			t.Fatalf("round %d: NextWake %v after the backoff ends", n, w.Sub(t0))
		}
		prev = d
	}
	// A delivered chunk resets the backoff.
	now = now.Add(time.Hour)
	rs := s.Next(now)
	s.OnChunk(rs[0].ID, "a", rs[0].First, 64*kib, now.Add(ms(100)))
	if st := s.Stats().Peers[0]; st.Fails != 0 {
		t.Fatalf("fails %d after a delivery", st.Fails)
	}
}

func TestNotFoundNotAskedAgain(t *testing.T) {
	s := New(Config{NumChunks: 20, ChunkSize: 64 * kib, MaxRangeLen: 4}, t0)
	s.AddPeer("a", t0)
	rs := s.Next(t0)
	s.OnError(rs[0].ID, "a", ErrNotFound, t0)
	s.AddPeer("b", t0)
	for _, r := range s.Next(t0) {
		if r.Peer == "a" {
			t.Fatalf("peer in backoff asked: %v", r)
		}
	}
	later := t0.Add(time.Minute)
	for _, r := range s.Next(later) {
		if r.Peer == "a" && r.First < rs[0].First+rs[0].Count && r.First+r.Count > rs[0].First {
			t.Fatalf("chunks %d..%d asked again of the peer that lacks them: %v", rs[0].First, rs[0].First+rs[0].Count-1, r)
		}
	}
}

func TestSeekCancelsStaleRequests(t *testing.T) {
	s := New(Config{NumChunks: 10000, ChunkSize: 64 * kib, Store: false}, t0)
	s.AddPeer("a", t0)
	rs := s.Next(t0)
	cancel := s.Seek(5000, t0.Add(ms(10)))
	if len(cancel) != len(rs) {
		t.Fatalf("seek cancelled %d of %d requests", len(cancel), len(rs))
	}
	rs2 := s.Next(t0.Add(ms(10)))
	if len(rs2) == 0 || rs2[0].First != 5000 {
		t.Fatalf("after seek: %v", rs2)
	}
	if d := rs2[0].Deadline.Sub(t0.Add(ms(10))); d != 0 {
		t.Fatalf("deadline of the new playhead chunk is %v after now", d)
	}
	// Events about the cancelled requests are harmless.
	s.OnChunk(rs[0].ID, "a", rs[0].First, 64*kib, t0.Add(ms(20)))
	s.OnDone(rs[0].ID, "a", t0.Add(ms(20)))
	s.OnError(rs[1%len(rs)].ID, "a", ErrReset, t0.Add(ms(20)))
	if st := s.Stats().Peers[0]; st.Fails != 0 || st.Inflight != countOf(rs2) {
		t.Fatalf("stale events changed the peer: %+v", st)
	}
}

func countOf(rs []Request) int {
	n := 0
	for _, r := range rs {
		n += r.Count
	}
	return n
}

func TestLateUrgentChunkDuplicated(t *testing.T) {
	cfg := Config{NumChunks: 100, ChunkSize: 64 * kib, ChunkDuration: ms(100), Store: true}
	s := New(cfg, t0)
	s.AddPeer("a", t0)
	rs := s.Next(t0)
	if rs[0].First != 0 {
		t.Fatal(rs)
	}
	s.AddPeer("b", t0)
	s.Next(t0)
	// Nothing arrives from a. Before its timeout, chunk 0 must go to b too.
	now := t0
	var dup *Request
	for now.Before(rs[0].Timeout) && dup == nil {
		now = s.NextWake(now)
		for _, r := range s.Next(now) {
			if r.Dup && r.Peer == "b" && r.First == 0 {
				dup = &r
			}
		}
	}
	if dup == nil {
		t.Fatal("late chunk 0 not duplicated to b before a's timeout")
	}
	t.Logf("chunk 0 duplicated after %v (a's timeout %v)", now.Sub(t0), rs[0].Timeout.Sub(t0))
	rateA := s.Stats().Peers[0].Rate
	if s.OnChunk(dup.ID, "b", 0, 64*kib, now.Add(ms(100))) {
		t.Fatal("dup's first arrival reported as dup")
	}
	if s.Stats().Peers[0].Rate >= rateA {
		t.Fatal("laggard's rate estimate did not drop")
	}
	if !s.OnChunk(rs[0].ID, "a", 0, 64*kib, now.Add(ms(200))) {
		t.Fatal("laggard's copy not reported as dup")
	}
}

func TestEndgameDuplicatesToIdlePeer(t *testing.T) {
	s := New(Config{NumChunks: 4, ChunkSize: 64 * kib, Store: true}, t0)
	s.AddPeer("a", t0)
	rs := s.Next(t0) // a takes everything
	if countOf(rs) != 4 {
		t.Fatalf("%v", rs)
	}
	s.AddPeer("b", t0.Add(time.Second)) // a is overdue by now
	var dup []Request
	for _, r := range s.Next(t0.Add(time.Second)) {
		if r.Dup && r.Peer == "b" {
			dup = append(dup, r)
		}
	}
	if len(dup) == 0 {
		t.Fatal("no endgame duplicate for an idle peer")
	}
}

func TestRateEstimateConverges(t *testing.T) {
	for _, rate := range []float64{64 * kib, 1 * mib, 8 * mib} {
		sm := newSim(t, Config{NumChunks: 400, ChunkSize: 64 * kib, Store: true},
			[]*simPeer{{id: "p", rate: rate, rtt: 80 * time.Millisecond}}, false)
		sm.run(time.Hour, sm.s.Complete)
		st := sm.s.Stats().Peers[0]
		if st.Rate < 0.8*rate || st.Rate > 1.2*rate {
			t.Errorf("rate %v: estimate %v", rate, st.Rate)
		}
		if st.Latency < ms(40) || st.Latency > ms(200) {
			t.Errorf("rtt 80ms: latency estimate %v", st.Latency)
		}
		t.Logf("rate %5.0f KiB/s: est %5.0f KiB/s, latency est %v, target %d", rate/kib, st.Rate/kib, st.Latency, st.Target)
	}
}

func TestFastPeerGetsUrgentChunks(t *testing.T) {
	sm := newSim(t, Config{NumChunks: 4000, ChunkSize: 64 * kib, ChunkDuration: ms(100), Store: true},
		[]*simPeer{
			{id: "a-slow", rate: 128 * kib, rtt: 100 * time.Millisecond},
			{id: "b-fast", rate: 4 * mib, rtt: 20 * time.Millisecond},
		}, false)
	type mark struct{ at, target int }
	var marks []mark
	for k, target := range []int{3000, 1200, 2500, 500} {
		sm.at(time.Duration(3+2*k)*time.Second, func() {
			marks = append(marks, mark{len(sm.log), target})
			sm.seek(target)
		})
	}
	sm.run(time.Hour, func() bool { return len(marks) == 4 && sm.s.Has(500) })
	slow, total := 0, 0
	for _, m := range marks {
		if r := sm.log[m.at]; r.Peer != "b-fast" || r.First != m.target {
			t.Errorf("first request after seek to %d: %+v", m.target, r.Request)
		}
		for _, r := range sm.log[m.at:] {
			if r.First >= m.target+sm.cfg.Window {
				break
			}
			total += r.Count
			if r.Peer == "a-slow" {
				slow += r.Count
			}
		}
	}
	if slow*4 > total {
		t.Errorf("slow peer got %d of %d urgent chunks", slow, total)
	}
	t.Logf("slow peer got %d of %d urgent chunks after seeks", slow, total)
}

func TestPipelineClamp(t *testing.T) {
	s := New(Config{NumChunks: 1000, ChunkSize: 64 * kib, MaxInflightPerPeer: 20, InitialRate: 1 * kib}, t0)
	s.AddPeer("slow", t0)
	if n := countOf(s.Next(t0)); n != 2 {
		t.Fatalf("slow peer got %d chunks, want the minimum pipeline 2", n)
	}
	s2 := New(Config{NumChunks: 1000, ChunkSize: 64 * kib, MaxRangeLen: 4, MaxInflightPerPeer: 20, InitialRate: 100 * mib}, t0)
	s2.AddPeer("fast", t0)
	if n := countOf(s2.Next(t0)); n != 20 {
		t.Fatalf("fast peer got %d chunks, want MaxInflightPerPeer 20", n)
	}
}

// BenchmarkNextOnChunk measures one OnChunk plus one Next (with the
// occasional OnDone) on a 100k-chunk file with 16 peers, delivering in
// request order.
func BenchmarkNextOnChunk(b *testing.B) {
	for _, store := range []bool{true, false} {
		b.Run(fmt.Sprintf("store=%v", store), func(b *testing.B) {
			const n = 100_000
			type pend struct {
				id    uint64
				p     PeerID
				i     int
				last  bool
				count int
			}
			var s *Scheduler
			var q []pend
			now := t0
			reset := func() {
				s = New(Config{NumChunks: n, ChunkSize: 256 * kib, Store: store}, now)
				for p := 0; p < 16; p++ {
					s.AddPeer(PeerID(fmt.Sprintf("peer-%02d", p)), now)
				}
				q = q[:0]
			}
			push := func(rs []Request) {
				for _, r := range rs {
					for k := 0; k < r.Count; k++ {
						q = append(q, pend{r.ID, r.Peer, r.First + k, k == r.Count-1, r.Count})
					}
				}
			}
			reset()
			push(s.Next(now))
			played := 0
			b.ReportAllocs()
			b.ResetTimer()
			for it := 0; it < b.N; it++ {
				if len(q) == 0 {
					b.StopTimer()
					now = now.Add(time.Second)
					reset()
					played = 0
					push(s.Next(now))
					b.StartTimer()
				}
				now = now.Add(time.Millisecond / 4)
				e := q[0]
				q = q[1:]
				s.OnChunk(e.id, e.p, e.i, 256*kib, now)
				if e.last {
					s.OnDone(e.id, e.p, now)
				}
				if !store && it%8 == 0 {
					for played < n-1 && s.Has(played) {
						played++
					}
					s.Seek(played, now)
				}
				push(s.Next(now))
			}
		})
	}
}

func TestTimeoutWithoutReportGivesUp(t *testing.T) {
	s := New(Config{NumChunks: 40, ChunkSize: 64 * kib, Window: 2, Store: true}, t0)
	s.AddPeer("a", t0)
	rs := s.Next(t0)
	s.AddPeer("b", t0)
	s.Next(t0) // b takes the rest
	r := rs[len(rs)-1]
	// The node never reports on a's requests. At a's timeout they are given
	// up on and their chunks go to b as its pipeline frees.
	now := t0
	for now.Before(r.Timeout) {
		now = s.NextWake(now)
		s.Next(now)
	}
	st := s.Stats()
	if st.Expired < len(rs) {
		t.Fatalf("expired %d of a's %d requests", st.Expired, len(rs))
	}
	pa := st.Peers[0]
	if pa.Inflight != 0 || !pa.BackoffUntil.After(now) || pa.Rate >= s.Config().InitialRate {
		t.Fatalf("peer a after timeout: %+v", pa)
	}
	if s.OnChunk(r.ID, "a", r.First, 64*kib, now) {
		t.Fatal("a late chunk of a given-up request was refused")
	}
	before := s.Stats().Peers[0]
	s.OnError(r.ID, "a", ErrTimeout, now) // the node's own timeout report: ignored
	if after := s.Stats().Peers[0]; after.Fails != before.Fails || after.Rate != before.Rate {
		t.Fatal("a stale timeout report counted twice")
	}
}
