package sched

import (
	"container/heap"
	"fmt"
	"testing"
	"time"
)

// A deterministic discrete-event simulation of a node driving the
// scheduler: virtual clock, fake peers that serve requests one after the
// other on one uplink, and a node loop that does what the package doc
// asks of the caller.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type simPeer struct {
	id       PeerID
	rate     float64       // bytes/s of its uplink
	rtt      time.Duration // request → first byte latency, excluding transfer
	stall    bool          // accepts requests and never answers
	vanishAt time.Duration // disconnects at this time (0: never)
	joinAt   time.Duration // connects at this time (0: at start)
	lacks    func(i int) bool

	busyUntil time.Time
	gone      bool
}

type evKind int

const (
	evChunk evKind = iota
	evDone
	evTimeout
	evWake
	evVanish
	evJoin
	evTick
	evCall // run fn
)

type event struct {
	at   time.Time
	seq  int
	kind evKind
	req  uint64
	peer *simPeer
	i    int
	fn   func()
}

type evHeap []*event

func (h evHeap) Len() int { return len(h) }
func (h evHeap) Less(a, b int) bool {
	if !h[a].at.Equal(h[b].at) {
		return h[a].at.Before(h[b].at)
	}
	return h[a].seq < h[b].seq
}
func (h evHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *evHeap) Push(x any)   { *h = append(*h, x.(*event)) }
func (h *evHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

type issued struct {
	Request
	at       time.Time
	playhead int
	lookEnd  int
}

type sim struct {
	t     testing.TB
	s     *Scheduler
	cfg   Config
	now   time.Time
	q     evHeap
	seq   int
	peers map[PeerID]*simPeer
	open  map[uint64]*simPeer // streams the node has open

	delivered []int       // per chunk: times handed to the player
	heldAt    []time.Time // per chunk: when first held
	log       []issued

	// player: plays chunk playhead when held, one per ChunkDuration.
	play     bool
	playhead int
	started  time.Time
	stalled  time.Duration
	done     time.Time

	check func() // run after every event, if set
}

func newSim(t testing.TB, cfg Config, peers []*simPeer, play bool) *sim {
	sm := &sim{
		t: t, now: t0, peers: map[PeerID]*simPeer{}, open: map[uint64]*simPeer{},
		play: play,
	}
	sm.s = New(cfg, t0)
	sm.cfg = sm.s.Config()
	sm.delivered = make([]int, sm.cfg.NumChunks)
	sm.heldAt = make([]time.Time, sm.cfg.NumChunks)
	for _, p := range peers {
		sm.peers[p.id] = p
		if p.joinAt > 0 {
			sm.push(&event{at: t0.Add(p.joinAt), kind: evJoin, peer: p})
		} else {
			sm.s.AddPeer(p.id, t0)
		}
		if p.vanishAt > 0 {
			sm.push(&event{at: t0.Add(p.vanishAt), kind: evVanish, peer: p})
		}
	}
	if play {
		sm.push(&event{at: t0.Add(sm.cfg.ChunkDuration), kind: evTick})
	}
	return sm
}

func (sm *sim) push(e *event) {
	sm.seq++
	e.seq = sm.seq
	heap.Push(&sm.q, e)
}

func (sm *sim) at(d time.Duration, fn func()) {
	sm.push(&event{at: t0.Add(d), kind: evCall, fn: fn})
}

// next calls Next, starts the requests and arms the wake timer.
func (sm *sim) next() {
	for _, r := range sm.s.Next(sm.now) {
		sm.start(r)
	}
	if w := sm.s.NextWake(sm.now); !w.IsZero() {
		if !w.After(sm.now) {
			sm.t.Fatalf("%v: NextWake returned %v, not in the future, right after Next", sm.now.Sub(t0), w.Sub(t0))
		}
		sm.push(&event{at: w, kind: evWake})
	}
}

func (sm *sim) start(r Request) {
	p := sm.peers[r.Peer]
	if r.Count < 1 || r.Count > sm.cfg.MaxRangeLen || r.First < 0 || r.First+r.Count > sm.cfg.NumChunks {
		sm.t.Fatalf("bad request %+v", r)
	}
	lookEnd := sm.cfg.NumChunks
	if !sm.cfg.Store {
		lookEnd = sm.s.playhead + sm.cfg.Lookahead
	}
	sm.log = append(sm.log, issued{Request: r, at: sm.now, playhead: sm.s.playhead, lookEnd: lookEnd})
	sm.open[r.ID] = p
	sm.push(&event{at: r.Timeout, kind: evTimeout, req: r.ID, peer: p})
	if p.gone {
		sm.push(&event{at: sm.now, kind: evDone, req: r.ID, peer: p, i: -1}) // reset
		return
	}
	if p.stall {
		return
	}
	arrive := sm.now.Add(p.rtt / 2)
	st := arrive
	if p.busyUntil.After(st) {
		st = p.busyUntil
	}
	per := time.Duration(float64(sm.cfg.ChunkSize) / p.rate * float64(time.Second))
	n := 0
	for k := 0; k < r.Count; k++ {
		i := r.First + k
		if p.lacks != nil && p.lacks(i) {
			continue
		}
		n++
		sm.push(&event{at: st.Add(time.Duration(n)*per + p.rtt/2), kind: evChunk, req: r.ID, peer: p, i: i})
	}
	p.busyUntil = st.Add(time.Duration(n) * per)
	sm.push(&event{at: p.busyUntil.Add(p.rtt / 2), kind: evDone, req: r.ID, peer: p})
}

// run processes events until cond holds or the virtual time limit passes.
func (sm *sim) run(limit time.Duration, cond func() bool) {
	sm.next()
	same := 0
	for sm.q.Len() > 0 && !cond() {
		e := heap.Pop(&sm.q).(*event)
		if e.at.Sub(t0) > limit {
			sm.t.Fatalf("not done after %v of virtual time: held %d/%d, player at %d", limit, sm.s.held, sm.cfg.NumChunks, sm.playhead)
		}
		if e.at.Equal(sm.now) {
			if same++; same > 100000 {
				sm.t.Fatalf("livelock at %v", sm.now.Sub(t0))
			}
		} else {
			same = 0
		}
		sm.now = e.at
		sm.handle(e)
		if sm.check != nil {
			sm.check()
		}
		sm.next()
		if sm.check != nil {
			sm.check()
		}
	}
	if !cond() {
		sm.t.Fatalf("ran out of events at %v: held %d/%d", sm.now.Sub(t0), sm.s.held, sm.cfg.NumChunks)
	}
}

func (sm *sim) handle(e *event) {
	switch e.kind {
	case evChunk:
		if sm.open[e.req] != e.peer || e.peer.gone {
			return
		}
		if !sm.s.OnChunk(e.req, e.peer.id, e.i, sm.cfg.ChunkSize, sm.now) {
			sm.delivered[e.i]++
			sm.heldAt[e.i] = sm.now
		} else if sm.delivered[e.i] == 0 {
			sm.t.Fatalf("chunk %d reported dup but never delivered", e.i)
		}
	case evDone:
		if sm.open[e.req] != e.peer {
			return
		}
		delete(sm.open, e.req)
		if e.i == -1 {
			sm.s.OnError(e.req, e.peer.id, ErrReset, sm.now)
		} else {
			sm.s.OnDone(e.req, e.peer.id, sm.now)
		}
	case evTimeout:
		if sm.open[e.req] != e.peer {
			return
		}
		sm.cancel(e.req)
		sm.s.OnError(e.req, e.peer.id, ErrTimeout, sm.now)
	case evVanish:
		e.peer.gone = true
		for id, p := range sm.open {
			if p == e.peer {
				delete(sm.open, id)
			}
		}
		sm.s.RemovePeer(e.peer.id, sm.now)
	case evJoin:
		sm.s.AddPeer(e.peer.id, sm.now)
	case evTick:
		sm.tick()
	case evCall:
		e.fn()
	}
}

func (sm *sim) tick() {
	if sm.playhead >= sm.cfg.NumChunks {
		return
	}
	if sm.s.Has(sm.playhead) {
		if sm.playhead == 0 {
			sm.started = sm.now
		}
		sm.playhead++
		if sm.playhead == sm.cfg.NumChunks {
			sm.done = sm.now
			return
		}
		sm.seek(sm.playhead)
	} else if sm.playhead > 0 {
		sm.stalled += sm.cfg.ChunkDuration
	}
	sm.push(&event{at: sm.now.Add(sm.cfg.ChunkDuration), kind: evTick})
}

func (sm *sim) seek(i int) {
	for _, id := range sm.s.Seek(i, sm.now) {
		sm.cancel(id)
	}
}

// cancel resets stream id. A peer left with no open stream stops sending
// once the reset reaches it and its current chunk is out.
func (sm *sim) cancel(id uint64) {
	p := sm.open[id]
	if p == nil {
		return
	}
	delete(sm.open, id)
	for _, q := range sm.open {
		if q == p {
			return
		}
	}
	per := time.Duration(float64(sm.cfg.ChunkSize) / p.rate * float64(time.Second))
	if stop := sm.now.Add(p.rtt/2 + per); stop.Before(p.busyUntil) {
		p.busyUntil = stop
	}
}

func (sm *sim) bytesBy() map[PeerID]int64 {
	m := map[PeerID]int64{}
	for _, p := range sm.s.Stats().Peers {
		m[p.ID] = p.Bytes
	}
	return m
}

func (sm *sim) checkOnce() {
	sm.t.Helper()
	for i, n := range sm.delivered {
		if n != 1 {
			sm.t.Fatalf("chunk %d delivered %d times", i, n)
		}
	}
	if !sm.s.Complete() {
		sm.t.Fatalf("not complete")
	}
}

const kib = 1 << 10
const mib = 1 << 20

func mixedPeers() []*simPeer {
	return []*simPeer{
		{id: "a-fast", rate: 2 * mib, rtt: 40 * time.Millisecond},
		{id: "b-mid", rate: 1 * mib, rtt: 60 * time.Millisecond},
		{id: "c-mid", rate: 1 * mib, rtt: 80 * time.Millisecond},
		{id: "d-low", rate: 512 * kib, rtt: 100 * time.Millisecond},
		{id: "e-slow", rate: 16 * kib, rtt: 200 * time.Millisecond},
		{id: "f-stall", rate: 1 * mib, rtt: 50 * time.Millisecond, stall: true},
		{id: "g-vanish", rate: 1 * mib, rtt: 50 * time.Millisecond, vanishAt: 3 * time.Second},
		{id: "h-vanish", rate: 2 * mib, rtt: 30 * time.Millisecond, vanishAt: 7 * time.Second},
	}
}

func mixedConfig() Config {
	return Config{NumChunks: 600, ChunkSize: 64 * kib, ChunkDuration: 250 * time.Millisecond, Store: true}
}

func TestSimMixedSwarm(t *testing.T) {
	sm := newSim(t, mixedConfig(), mixedPeers(), true)
	sm.run(10*time.Minute, sm.s.Complete)
	sm.checkOnce()
	el := sm.now.Sub(t0)
	by := sm.bytesBy()
	st := sm.s.Stats()
	t.Logf("complete after %v; requests %d (dup %d, expired %d), dup chunks %d; player stalled %v after starting at %v",
		el, st.Requests, st.DupRequests, st.Expired, st.DupChunks, sm.stalled, sm.started.Sub(t0))
	for _, p := range st.Peers {
		t.Logf("  %-8s rate est %7.0f KiB/s target %2d bytes %6d KiB reqs %d dups %d",
			p.ID, p.Rate/kib, p.Target, p.Bytes/kib, p.Requests, p.Dups)
	}
	// Steady peers are used roughly in proportion to their rates.
	share := func(id PeerID, rate float64) float64 { return float64(by[id]) / rate / el.Seconds() }
	for _, id := range []PeerID{"a-fast", "b-mid", "c-mid", "d-low"} {
		u := share(id, sm.peers[id].rate)
		t.Logf("  %s utilisation %.2f", id, u)
		if u < 0.6 || u > 1.01 {
			t.Errorf("%s used at %.2f of its rate, want 0.6..1", id, u)
		}
	}
	if by["f-stall"] != 0 {
		t.Errorf("stalled peer delivered")
	}
	if by["e-slow"] > 40*64*kib {
		t.Errorf("slow peer delivered %d KiB, more than its rate allows", by["e-slow"]/kib)
	}
	// Every chunk asked of the stalled peer reached us within a bound.
	sawStall := 0
	for _, r := range sm.log {
		if r.Peer != "f-stall" {
			continue
		}
		sawStall++
		for i := r.First; i < r.First+r.Count; i++ {
			if d := sm.heldAt[i].Sub(r.at); d > r.Timeout.Sub(r.at)+time.Second {
				t.Errorf("chunk %d asked of the stalled peer at %v arrived %v later (timeout %v)", i, r.at.Sub(t0), d, r.Timeout.Sub(r.at))
			}
		}
	}
	if sawStall == 0 {
		t.Errorf("stalled peer never asked")
	}
}

func TestSimDeterministic(t *testing.T) {
	runOnce := func() string {
		sm := newSim(t, mixedConfig(), mixedPeers(), true)
		sm.run(10*time.Minute, sm.s.Complete)
		return fmt.Sprint(sm.log, sm.now)
	}
	if a, b := runOnce(), runOnce(); a != b {
		t.Fatalf("two identical runs differ")
	}
}

func TestSimThroughputEqualPeers(t *testing.T) {
	var ps []*simPeer
	for i := 0; i < 4; i++ {
		ps = append(ps, &simPeer{id: PeerID(fmt.Sprint("p", i)), rate: 1 * mib, rtt: 50 * time.Millisecond})
	}
	cfg := Config{NumChunks: 2000, ChunkSize: 64 * kib, Store: true}
	sm := newSim(t, cfg, ps, false)
	sm.run(10*time.Minute, sm.s.Complete)
	sm.checkOnce()
	el := sm.now.Sub(t0).Seconds()
	got := float64(cfg.NumChunks*cfg.ChunkSize) / el
	eff := got / (4 * mib)
	t.Logf("4 × 1 MiB/s: %.2f MiB/s in %.1f s = %.1f %% of the sum; dup chunks %d", got/mib, el, 100*eff, sm.s.Stats().DupChunks)
	if eff < 0.9 {
		t.Fatalf("throughput %.1f %% of the sum of peer rates, want ≥ 90 %%", 100*eff)
	}
}

func TestSimStalledPeerReRequested(t *testing.T) {
	ps := []*simPeer{
		{id: "a-stall", rate: 4 * mib, rtt: 10 * time.Millisecond, stall: true}, // sorts first: gets work first
		{id: "b-good", rate: 1 * mib, rtt: 50 * time.Millisecond},
	}
	cfg := Config{NumChunks: 200, ChunkSize: 64 * kib, ChunkDuration: 250 * time.Millisecond, Store: true}
	sm := newSim(t, cfg, ps, true)
	sm.run(5*time.Minute, sm.s.Complete)
	sm.checkOnce()
	n := 0
	for _, r := range sm.log {
		if r.Peer != "a-stall" {
			continue
		}
		n++
		for i := r.First; i < r.First+r.Count; i++ {
			// Urgent chunks come back within their deadline slack; others within the request timeout.
			if d := sm.heldAt[i].Sub(r.at); d > r.Timeout.Sub(r.at)+2*time.Second {
				t.Errorf("chunk %d asked of the stalled peer at %v arrived %v later (timeout %v)", i, r.at.Sub(t0), d, r.Timeout.Sub(r.at))
			}
		}
	}
	if n == 0 {
		t.Fatal("stalled peer never asked")
	}
	// The first chunk was asked of the stalled peer: it must be re-requested well before its timeout.
	if d := sm.heldAt[0].Sub(t0); d > 1500*time.Millisecond {
		t.Errorf("chunk 0 held after %v", d)
	}
	t.Logf("stalled peer asked %d times; chunk 0 at %v; done at %v; player stalled %v", n, sm.heldAt[0].Sub(t0), sm.now.Sub(t0), sm.stalled)
}

func TestSimSeek(t *testing.T) {
	cfg := Config{NumChunks: 2000, ChunkSize: 64 * kib, ChunkDuration: 250 * time.Millisecond, Store: true}
	sm := newSim(t, cfg, mixedPeers()[:4], true)
	const target = 1500
	var firstAfter int
	sm.at(2*time.Second, func() {
		sm.play = false
		firstAfter = len(sm.log)
		sm.seek(target)
	})
	sm.run(time.Minute, func() bool { return sm.now.After(t0.Add(2*time.Second)) && sm.s.Has(target) })
	after := sm.log[firstAfter:]
	if len(after) == 0 {
		t.Fatal("no requests after seek")
	}
	if after[0].First != target {
		t.Fatalf("first request after seek starts at %d, want %d", after[0].First, target)
	}
	// The whole urgent window is asked for before anything outside it.
	covered := map[int]bool{}
	for _, r := range after {
		inWin := r.First >= target && r.First < target+sm.cfg.Window
		if !inWin && len(covered) < sm.cfg.Window {
			t.Fatalf("request %+v outside the new window before the window was covered (%d/%d)", r.Request, len(covered), sm.cfg.Window)
		}
		for i := r.First; i < r.First+r.Count; i++ {
			if i >= target && i < target+sm.cfg.Window {
				covered[i] = true
			}
		}
		if len(covered) == sm.cfg.Window {
			break
		}
	}
	t.Logf("chunk %d held %v after the seek", target, sm.heldAt[target].Sub(t0.Add(2*time.Second)))
	if d := sm.heldAt[target].Sub(t0.Add(2 * time.Second)); d > 500*time.Millisecond {
		t.Errorf("seek target held %v after the seek", d)
	}
}

func TestSimNoStore(t *testing.T) {
	cfg := Config{NumChunks: 400, ChunkSize: 64 * kib, ChunkDuration: 100 * time.Millisecond, Window: 8, Store: false}
	sm := newSim(t, cfg, mixedPeers(), true)
	sm.at(10*time.Second, func() { sm.playhead = 300; sm.seek(300) })
	sm.run(10*time.Minute, func() bool { return !sm.done.IsZero() })
	for _, r := range sm.log {
		if r.First < r.playhead || r.First+r.Count > r.lookEnd {
			t.Fatalf("no-store request %d..%d outside the window [%d, %d) at %v",
				r.First, r.First+r.Count-1, r.playhead, r.lookEnd, r.at.Sub(t0))
		}
	}
	for i, n := range sm.delivered {
		if n > 1 {
			t.Fatalf("chunk %d delivered %d times", i, n)
		}
	}
	skipped := 0
	for i := 0; i < 300; i++ {
		if sm.delivered[i] == 0 {
			skipped++
		}
	}
	if skipped == 0 {
		t.Errorf("no chunk skipped by the seek: no-store fetched behind or too far ahead")
	}
	for i := 300; i < cfg.NumChunks; i++ {
		if sm.delivered[i] != 1 {
			t.Fatalf("chunk %d after the seek delivered %d times", i, sm.delivered[i])
		}
	}
	t.Logf("played to the end at %v, stalled %v, %d chunks never fetched", sm.done.Sub(t0), sm.stalled, skipped)
}

func TestSimPeerJoinsMidDownload(t *testing.T) {
	ps := []*simPeer{
		{id: "a", rate: 256 * kib, rtt: 50 * time.Millisecond},
		{id: "b-late", rate: 2 * mib, rtt: 50 * time.Millisecond, joinAt: 3 * time.Second},
	}
	cfg := Config{NumChunks: 300, ChunkSize: 64 * kib, Store: true}
	sm := newSim(t, cfg, ps, false)
	sm.run(5*time.Minute, sm.s.Complete)
	sm.checkOnce()
	var first time.Time
	for _, r := range sm.log {
		if r.Peer == "b-late" {
			first = r.at
			break
		}
	}
	if !first.Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("late peer first asked at %v, want at once (3s)", first.Sub(t0))
	}
	by := sm.bytesBy()
	if by["b-late"] < 3*by["a"] {
		t.Errorf("late fast peer delivered %d KiB, slow peer %d KiB", by["b-late"]/kib, by["a"]/kib)
	}
}

func TestSimPartialHolder(t *testing.T) {
	ps := []*simPeer{
		{id: "a-half", rate: 2 * mib, rtt: 20 * time.Millisecond, lacks: func(i int) bool { return i%2 == 1 }},
		{id: "b-full", rate: 1 * mib, rtt: 50 * time.Millisecond},
	}
	cfg := Config{NumChunks: 300, ChunkSize: 64 * kib, Store: true}
	sm := newSim(t, cfg, ps, false)
	sm.run(5*time.Minute, sm.s.Complete)
	sm.checkOnce()
	// Once a chunk was skipped by a-half it is never asked of it again.
	asked := map[int]int{}
	for _, r := range sm.log {
		if r.Peer != "a-half" {
			continue
		}
		for i := r.First; i < r.First+r.Count; i++ {
			if i%2 == 1 {
				asked[i]++
				if asked[i] > 1 {
					t.Fatalf("chunk %d asked of a peer that lacks it twice", i)
				}
			}
		}
	}
}
