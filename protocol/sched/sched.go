// Package sched is the on-demand (video file) download scheduler: which
// chunks to ask of which peer, how many to keep in flight, deadlines, and
// re-requests of late chunks.
//
// It is pure, deterministic logic. It never reads the clock, never sleeps
// and starts no goroutine: the caller passes the current time into every
// call, and the same sequence of calls always yields the same requests.
// It is not safe for concurrent use; the caller serialises calls.
//
// # Driving it
//
//	s := sched.New(cfg, now)
//	s.SetHave(i) for every chunk already on disk
//	s.AddPeer(p, now) for every provider found (at any time, also mid-download)
//	loop:
//	    for _, r := range s.Next(now) { open a stream to r.Peer, send GetRange(r.First, r.Count),
//	                                    and reset the stream if it is still open at r.Timeout }
//	    arm one timer for s.NextWake(now) (zero: none needed)
//	    wait for an event, then report it:
//	        chunk i of request id arrived and verified -> if !s.OnChunk(id, p, i, len, now) { hand it to the player }
//	        chunk i did not verify                      -> s.Ban(p, now)
//	        response ended (status OK or PARTIAL)       -> s.OnDone(id, p, now)
//	        stream failed / BUSY / NOT_FOUND / timeout  -> s.OnError(id, p, kind, now)
//	        peer disconnected                           -> s.RemovePeer(p, now)
//	        player position changed (each chunk read, or an HTTP Range jump)
//	                                                    -> for _, id := range s.Seek(i, now) { reset stream id }
//	    until s.Complete() (with Store) or the player is done.
//
// Every call that changes state may make new work: call Next after each.
//
// # Policy
//
// Chunks in the urgent window [playhead, playhead+Window) come first, in
// order, each going to the peer that is expected to deliver it earliest
// (so fast peers get them); a range on one peer is cut short where it would
// miss a chunk's playout deadline. The rest follows in order from the
// playhead (and, with Store, then from the start of the file up to the
// playhead); without Store nothing beyond playhead+Lookahead and nothing
// behind the playhead is requested. Each peer keeps about rate × (PipelineTime
// + latency) bytes in flight, clamped to [2, MaxInflightPerPeer] chunks.
//
// An urgent chunk that is past its playout deadline and also well past the
// time its peer was expected to deliver it is requested from one other peer
// too; the first arrival wins and the laggard's rate estimate is cut. A
// request that outlives its Timeout (3 × expected time + 1 s) is given up:
// its chunks become wanted again, the peer's rate estimate is halved and it
// backs off. Failing peers back off exponentially. In the endgame (every
// missing chunk is in flight) idle peers get duplicates of in-flight chunks
// they are expected to deliver sooner.
//
// Availability: every peer is assumed to hold the whole file until it
// shows otherwise (a response that ended without some requested chunks, or
// NOT_FOUND); such chunks are not asked of that peer again.
package sched

import (
	"math"
	"sort"
	"time"
)

// PeerID names a peer (the node uses the string form of a libp2p peer ID).
type PeerID string

// Kind classifies a failed request for OnError.
type Kind int

const (
	ErrTimeout  Kind = iota + 1 // no progress in time; the peer's rate estimate is halved
	ErrReset                    // stream reset or connection lost
	ErrBusy                     // peer answered BUSY
	ErrNotFound                 // peer answered NOT_FOUND: it does not hold these chunks
	ErrOther                    // anything else (BAD_REQUEST, INTERNAL, protocol error)
)

// A response ending with status OK or PARTIAL is reported with OnDone, not
// OnError.

// Config describes the file and tunes the scheduler. Zero fields take the
// documented defaults.
type Config struct {
	NumChunks          int           // chunks in the file
	ChunkSize          int           // bytes per chunk (the last may be shorter); default 256 KiB
	ChunkDuration      time.Duration // playback time per chunk; default 500 ms
	MaxRangeLen        int           // max chunks per request, ≤ 64; default 8
	MaxInflightPerPeer int           // hard cap on outstanding chunks per peer; default 32
	Window             int           // urgent chunks ahead of the playhead; default 16
	Store              bool          // fetch the whole file; false (--no-store): only [playhead, playhead+Lookahead)
	Lookahead          int           // without Store: chunks fetched ahead of the playhead; default 4 × Window
	PipelineTime       time.Duration // data kept in flight per peer, in time at its rate; default 1 s
	InitialRate        float64       // bytes/s assumed of a new peer; default 512 KiB/s
	InitialLatency     time.Duration // request latency assumed of a new peer; default 100 ms
}

func (c *Config) fill() {
	if c.NumChunks < 0 {
		c.NumChunks = 0
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = 256 << 10
	}
	if c.ChunkDuration <= 0 {
		c.ChunkDuration = 500 * time.Millisecond
	}
	if c.MaxRangeLen <= 0 {
		c.MaxRangeLen = 8
	}
	if c.MaxRangeLen > 64 {
		c.MaxRangeLen = 64
	}
	if c.MaxInflightPerPeer <= 0 {
		c.MaxInflightPerPeer = 32
	}
	if c.MaxInflightPerPeer < 2 {
		c.MaxInflightPerPeer = 2
	}
	if c.Window <= 0 {
		c.Window = 16
	}
	if c.Lookahead <= 0 {
		c.Lookahead = 4 * c.Window
	}
	if c.Lookahead < c.Window {
		c.Lookahead = c.Window
	}
	if c.PipelineTime <= 0 {
		c.PipelineTime = time.Second
	}
	if c.InitialRate <= 0 {
		c.InitialRate = 512 << 10
	}
	if c.InitialLatency <= 0 {
		c.InitialLatency = 100 * time.Millisecond
	}
}

// Request asks Peer for chunks First .. First+Count-1 on one stream.
type Request struct {
	ID       uint64
	Peer     PeerID
	First    int
	Count    int
	Deadline time.Time // playout deadline of chunk First; zero if behind the playhead
	Timeout  time.Time // reset the stream if still open then; the scheduler gives up on it at that time anyway
	Dup      bool      // re-request of chunks in flight elsewhere (late chunk or endgame)
}

// PeerStats is a snapshot of one peer.
type PeerStats struct {
	ID           PeerID
	Rate         float64       // estimated bytes/s
	Latency      time.Duration // estimated request latency (time to first byte)
	Target       int           // pipeline size in chunks
	Inflight     int           // chunks outstanding
	Requests     int           // requests issued
	Chunks       int           // chunks received (including duplicates)
	Dups         int           // chunks received that were already held
	Bytes        int64         // bytes received
	Fails        int           // consecutive failures
	BackoffUntil time.Time     // no new requests before this time
}

// Stats is a snapshot of the download.
type Stats struct {
	NumChunks     int
	Held          int
	Inflight      int // distinct chunks outstanding
	Playhead      int
	BufferedAhead time.Duration // contiguous held chunks from the playhead × ChunkDuration
	DupChunks     int           // chunks received more than once
	DupBytes      int64
	Requests      int         // requests issued
	DupRequests   int         // of which duplicates
	Expired       int         // requests given up on after their Timeout
	Peers         []PeerStats // sorted by ID
}

const (
	backoffBase = 500 * time.Millisecond
	backoffMax  = 30 * time.Second
	rateDecay   = 0.85 // per-sample decay of the rate estimator's sums
	maxSkips    = 256  // wanted chunks no peer can serve, skipped per Next
	minRate     = 1024 // bytes/s floor of a rate estimate
)

var never = time.Unix(1<<62, 0)

type peer struct {
	id       PeerID
	rateB    float64 // decayed sum of bytes
	rateT    float64 // decayed sum of seconds; rate = rateB/rateT
	lat      time.Duration
	inflight int

	busySince   time.Time // expected first byte of the current busy period
	lastArrival time.Time

	fails        int
	backoffUntil time.Time
	tgt          int    // target, cached by eligible
	missing      bitset // chunks it showed it does not hold; nil if none

	requests, chunks, dups int
	bytes                  int64
}

// rate is the estimated throughput in bytes/s, at least minRate.
func (p *peer) rate() float64 { return max(p.rateB/p.rateT, minRate) }

func (p *peer) lacks(i int) bool { return p.missing != nil && p.missing.get(i) }

type request struct {
	id        uint64
	p         *peer
	first     int
	count     int
	got       uint64 // bit k: chunk first+k received on this request
	dupDone   uint64 // bit k: chunk first+k already re-requested elsewhere
	sent      time.Time
	expFirst  time.Time // expected arrival of chunk first
	perChunk  time.Duration
	timeout   time.Time
	idleStart bool // the peer had nothing else in flight when this was sent
	penalized bool
	done      bool
}

func (r *request) expected(k int) time.Time { return r.expFirst.Add(time.Duration(k) * r.perChunk) }

// Scheduler decides which chunk ranges to request from which peers.
type Scheduler struct {
	cfg Config

	have   bitset
	held   int
	wanted bitset  // not held and in no live request
	copies []uint8 // live requests covering each chunk that have not yet delivered it

	playhead    int
	anchorChunk int
	anchorTime  time.Time
	scanHi      int // no wanted chunk in [playhead, scanHi)
	scanLo      int // no wanted chunk in [0, scanLo)

	peers  map[PeerID]*peer
	order  []*peer // peers sorted by ID
	banned map[PeerID]bool

	reqs   map[uint64]*request
	live   []*request // in ID order; may hold done entries until compacted
	ndone  int
	nextID uint64

	psBuf []*peer

	checkAt time.Time // next time a live request may be late or time out
	rescan  bool      // scan live requests on the next Next regardless of checkAt

	nreq, ndupReq, nexpired, dupChunks int
	dupBytes                           int64
}

// New returns a scheduler for a file described by cfg, with playback
// anchored at chunk 0 at time now. All chunks are wanted.
func New(cfg Config, now time.Time) *Scheduler {
	cfg.fill()
	n := cfg.NumChunks
	s := &Scheduler{
		cfg:        cfg,
		have:       newBitset(n),
		wanted:     newBitset(n),
		copies:     make([]uint8, n),
		anchorTime: now,
		peers:      map[PeerID]*peer{},
		banned:     map[PeerID]bool{},
		reqs:       map[uint64]*request{},
		nextID:     1,
		checkAt:    never,
	}
	for i := 0; i < n; i++ {
		s.wanted.set(i)
	}
	return s
}

// Config returns the configuration with defaults filled in.
func (s *Scheduler) Config() Config { return s.cfg }

// AddPeer makes p available for requests from now on. Adding a known or
// banned peer does nothing.
func (s *Scheduler) AddPeer(p PeerID, now time.Time) {
	if s.banned[p] || s.peers[p] != nil {
		return
	}
	const prior = 0.25 // seconds of assumed data behind the initial guess
	pr := &peer{
		id:    p,
		rateB: s.cfg.InitialRate * prior,
		rateT: prior,
		lat:   s.cfg.InitialLatency,
	}
	s.peers[p] = pr
	i := sort.Search(len(s.order), func(i int) bool { return s.order[i].id >= p })
	s.order = append(s.order, nil)
	copy(s.order[i+1:], s.order[i:])
	s.order[i] = pr
}

// RemovePeer forgets p: its outstanding chunks are wanted again at once.
// Chunks that still arrive from it are accepted.
func (s *Scheduler) RemovePeer(p PeerID, now time.Time) {
	pr := s.peers[p]
	if pr == nil {
		return
	}
	for _, r := range s.live {
		if !r.done && r.p == pr {
			s.release(r)
		}
	}
	delete(s.peers, p)
	for i, q := range s.order {
		if q == pr {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

// Ban removes p for good (it sent a chunk that did not verify); AddPeer
// ignores it from now on.
func (s *Scheduler) Ban(p PeerID, now time.Time) {
	s.RemovePeer(p, now)
	s.banned[p] = true
}

// SetHave marks chunk i as already held (e.g. from the local cache).
func (s *Scheduler) SetHave(i int) {
	if i < 0 || i >= s.cfg.NumChunks || s.have.get(i) {
		return
	}
	s.have.set(i)
	s.held++
	s.wanted.clear(i)
}

// Forget marks chunk i as no longer held: the player's bounded store (a
// --no-store memory window, or memory after a failed disk write) dropped
// it and a reader needs it again. It becomes wanted unless a request still
// has it in flight.
func (s *Scheduler) Forget(i int) {
	if i < 0 || i >= s.cfg.NumChunks || !s.have.get(i) {
		return
	}
	s.have.clear(i)
	s.held--
	if s.copies[i] == 0 {
		s.setWanted(i)
	}
	s.rescan = true
}

// Has reports whether chunk i is held.
func (s *Scheduler) Has(i int) bool { return i >= 0 && i < s.cfg.NumChunks && s.have.get(i) }

// Complete reports whether every chunk is held. Without Store chunks
// behind the playhead are never fetched, so a viewer that skipped parts
// never completes: stop when the player reaches the end.
func (s *Scheduler) Complete() bool { return s.held == s.cfg.NumChunks }

// Seek moves the playhead to chunk i at time now: the urgent window and
// the playout deadlines follow at once (chunk j is due at now + (j-i) ×
// ChunkDuration). Call it on every change of the reader's position, both
// sequential progress and jumps. Requests with nothing left to deliver in
// [i, i+Lookahead) are given up on (only when the playhead jumped, or
// without Store) and returned: the caller should reset their streams.
// Late events for them are harmless.
func (s *Scheduler) Seek(i int, now time.Time) (cancel []uint64) {
	n := s.cfg.NumChunks
	if n == 0 {
		return nil
	}
	if i < 0 {
		i = 0
	}
	if i >= n {
		i = n - 1
	}
	old := s.playhead
	jump := i < old || i > old+s.cfg.Window
	if i < old || i > s.scanHi {
		s.scanHi = i
	}
	s.playhead = i
	s.anchorChunk = i
	s.anchorTime = now
	s.rescan = true
	if !jump && s.cfg.Store {
		return nil
	}
	end := s.hiEnd()
	for _, r := range s.live {
		if r.done {
			continue
		}
		useful := false
		for k := 0; k < r.count; k++ {
			c := r.first + k
			if r.got&(1<<uint(k)) == 0 && !s.have.get(c) && c >= i && c < end {
				useful = true
				break
			}
		}
		if !useful {
			s.release(r)
			cancel = append(cancel, r.id)
		}
	}
	return cancel
}

// hiEnd is the end of the forward segment [playhead, hiEnd).
func (s *Scheduler) hiEnd() int {
	if s.cfg.Store {
		return s.cfg.NumChunks
	}
	return min(s.cfg.NumChunks, s.playhead+s.cfg.Lookahead)
}

func (s *Scheduler) urgent(i int) bool {
	return i >= s.playhead && i < s.playhead+s.cfg.Window
}

// deadline is the playout time of chunk i (meaningful for i ≥ playhead).
func (s *Scheduler) deadline(i int) time.Time {
	return s.anchorTime.Add(time.Duration(i-s.anchorChunk) * s.cfg.ChunkDuration)
}

// prio orders chunks: the forward segment from the playhead, then the
// chunks behind it.
func (s *Scheduler) prio(i int) int {
	if i >= s.playhead {
		return i - s.playhead
	}
	return s.cfg.NumChunks + i
}

func (s *Scheduler) setWanted(i int) {
	s.wanted.set(i)
	if i < s.scanLo {
		s.scanLo = i
	}
	if i >= s.playhead && i < s.scanHi {
		s.scanHi = i
	}
}

func (s *Scheduler) chunkTime(p *peer) time.Duration {
	return time.Duration(float64(s.cfg.ChunkSize) / p.rate() * float64(time.Second))
}

// target is p's pipeline size in chunks.
func (s *Scheduler) target(p *peer) int {
	t := p.rate() * (s.cfg.PipelineTime + p.lat).Seconds() / float64(s.cfg.ChunkSize)
	n := int(math.Ceil(t))
	return max(2, min(n, s.cfg.MaxInflightPerPeer))
}

// eft is when p is expected to deliver a chunk that is queued behind k
// others of its (counting those already in flight).
func (s *Scheduler) eft(p *peer, k int, now time.Time) time.Time {
	return now.Add(p.lat + time.Duration(p.inflight+k+1)*s.chunkTime(p))
}

// eligible returns the peers not backing off, with their pipeline targets
// and chunk times cached for this Next.
func (s *Scheduler) eligible(now time.Time) []*peer {
	ps := s.psBuf[:0]
	for _, p := range s.order {
		if !now.Before(p.backoffUntil) {
			p.tgt = s.target(p)
			ps = append(ps, p)
		}
	}
	s.psBuf = ps
	return ps
}

// issue records a new request of chunks [first, first+count) on p.
func (s *Scheduler) issue(p *peer, first, count int, dup bool, now time.Time, out []Request) []Request {
	ct := s.chunkTime(p)
	r := &request{
		id:        s.nextID,
		p:         p,
		first:     first,
		count:     count,
		sent:      now,
		perChunk:  ct,
		idleStart: p.inflight == 0,
	}
	s.nextID++
	r.expFirst = now.Add(p.lat + time.Duration(p.inflight+1)*ct)
	exp := r.expected(count - 1).Sub(now)
	r.timeout = now.Add(3*exp + time.Second)
	if p.inflight == 0 {
		p.busySince = now.Add(p.lat)
	}
	for k := 0; k < count; k++ {
		c := first + k
		s.copies[c]++
		s.wanted.clear(c)
		if s.urgent(c) {
			if t := s.lateAt(r, k); t.Before(s.checkAt) {
				s.checkAt = t
			}
		}
	}
	if r.timeout.Before(s.checkAt) {
		s.checkAt = r.timeout
	}
	p.inflight += count
	p.requests++
	s.nreq++
	if dup {
		s.ndupReq++
	}
	s.reqs[r.id] = r
	s.live = append(s.live, r)
	var dl time.Time
	if first >= s.playhead {
		dl = s.deadline(first)
	}
	return append(out, Request{ID: r.id, Peer: p.id, First: first, Count: count, Deadline: dl, Timeout: r.timeout, Dup: dup})
}

// release ends a live request: chunks it did not deliver, and that no
// other request covers, are wanted again.
func (s *Scheduler) release(r *request) {
	if r.done {
		return
	}
	r.done = true
	for k := 0; k < r.count; k++ {
		if r.got&(1<<uint(k)) != 0 {
			continue
		}
		c := r.first + k
		s.copies[c]--
		r.p.inflight--
		if s.copies[c] == 0 && !s.have.get(c) {
			s.setWanted(c)
		}
	}
	delete(s.reqs, r.id)
	s.ndone++
}

// compact drops ended requests from s.live. It must not run while s.live
// is being iterated.
func (s *Scheduler) compact() {
	if s.ndone > 32 && s.ndone > len(s.live)/2 {
		j := 0
		for _, q := range s.live {
			if !q.done {
				s.live[j] = q
				j++
			}
		}
		clear(s.live[j:])
		s.live = s.live[:j]
		s.ndone = 0
	}
}

// lateAt is when chunk k of r counts as late: past its playout deadline
// and past twice the time its peer was expected to take.
func (s *Scheduler) lateAt(r *request, k int) time.Time {
	t := r.sent.Add(2 * r.expected(k).Sub(r.sent))
	if d := s.deadline(r.first + k); d.After(t) {
		t = d
	}
	return t
}

// backoff makes p wait before new requests. Failures while it already
// waits (other streams of the same incident) do not extend the wait.
func (s *Scheduler) backoff(p *peer, now time.Time) {
	if now.Before(p.backoffUntil) {
		return
	}
	p.fails++
	d := backoffMax
	if p.fails <= 16 {
		d = min(backoffMax, backoffBase<<uint(p.fails-1))
	}
	p.backoffUntil = now.Add(d)
}

type cand struct {
	c int
	r *request
	k int
}

// Next returns the requests to issue now, most urgent first. It returns
// nothing when there are no usable peers; wanted chunks then wait.
func (s *Scheduler) Next(now time.Time) []Request {
	var out []Request
	var late []cand
	s.compact()
	if s.rescan || !now.Before(s.checkAt) {
		late = s.scan(now)
	}
	ps := s.eligible(now)
	if len(ps) == 0 {
		if len(late) > 0 {
			s.rescan = true
		}
		return nil
	}
	if len(late) > 0 {
		out = s.dupLate(late, ps, now, out)
	}
	out, exhausted := s.assign(ps, now, out)
	if exhausted && s.hiEnd() == s.cfg.NumChunks {
		out = s.endgame(ps, now, out)
	}
	return out
}

// scan gives up on requests past their timeout, collects urgent chunks
// that are late, and recomputes checkAt.
func (s *Scheduler) scan(now time.Time) []cand {
	s.rescan = false
	next := never
	var late []cand
	for _, r := range s.live {
		if r.done {
			continue
		}
		if !now.Before(r.timeout) {
			s.nexpired++
			p := r.p
			s.release(r)
			p.rateB *= 0.5
			s.backoff(p, now)
			continue
		}
		if r.timeout.Before(next) {
			next = r.timeout
		}
		for k := 0; k < r.count; k++ {
			c := r.first + k
			if (r.got|r.dupDone)&(1<<uint(k)) != 0 || s.have.get(c) || !s.urgent(c) || s.copies[c] >= 2 {
				continue
			}
			t := s.lateAt(r, k)
			if !now.Before(t) {
				late = append(late, cand{c, r, k})
			} else if t.Before(next) {
				next = t
			}
		}
	}
	s.checkAt = next
	sort.Slice(late, func(a, b int) bool {
		if late[a].c != late[b].c {
			return late[a].c < late[b].c
		}
		return late[a].r.id < late[b].r.id
	})
	return late
}

// dupLate re-requests late chunks from other peers.
func (s *Scheduler) dupLate(late []cand, ps []*peer, now time.Time, out []Request) []Request {
	for j := 0; j < len(late); {
		cd := late[j]
		if s.copies[cd.c] >= 2 || s.have.get(cd.c) {
			j++
			continue
		}
		var best *peer
		var bt time.Time
		for _, p := range ps {
			if p == cd.r.p || p.inflight >= p.tgt || p.lacks(cd.c) {
				continue
			}
			if t := s.eft(p, 0, now); best == nil || t.Before(bt) {
				best, bt = p, t
			}
		}
		if best == nil {
			s.rescan = true // try again when a peer frees up
			j++
			continue
		}
		free := best.tgt - best.inflight
		n := 1
		for j+n < len(late) && n < free && n < s.cfg.MaxRangeLen {
			nx := late[j+n]
			if nx.r != cd.r || nx.c != cd.c+n || best.lacks(nx.c) || s.copies[nx.c] >= 2 {
				break
			}
			n++
		}
		for m := 0; m < n; m++ {
			cd.r.dupDone |= 1 << uint(cd.k+m)
		}
		out = s.issue(best, cd.c, n, true, now, out)
		j += n
	}
	return out
}

// assign hands wanted chunks in priority order to peers. exhausted reports
// that no chunk in scope is wanted.
func (s *Scheduler) assign(ps []*peer, now time.Time, out []Request) ([]Request, bool) {
	type seg struct{ lo, hi int }
	segs := []seg{{s.playhead, s.hiEnd()}}
	if s.cfg.Store && s.playhead > 0 {
		segs = append(segs, seg{0, s.playhead})
	}
	exhausted := true
	skips := 0
	for si, sg := range segs {
		pos := sg.lo
		if si == 0 {
			pos = max(pos, s.scanHi)
		} else {
			pos = max(pos, s.scanLo)
		}
		first := true
		for {
			c := s.wanted.next(pos, sg.hi)
			if first {
				first = false
				h := c
				if h < 0 {
					h = sg.hi
				}
				if si == 0 {
					s.scanHi = h
				} else {
					s.scanLo = h
				}
			}
			if c < 0 {
				break
			}
			exhausted = false
			urg := s.urgent(c)
			var best *peer
			var bt time.Time
			lacking := false
			for _, p := range ps {
				tg := p.tgt
				free := tg - p.inflight
				if free <= 0 {
					continue
				}
				if !urg && p.inflight > 0 && free < min(s.cfg.MaxRangeLen, (tg+1)/2) {
					continue // wait until a full range fits
				}
				if p.lacks(c) {
					lacking = true
					continue
				}
				if t := s.eft(p, 0, now); best == nil || t.Before(bt) {
					best, bt = p, t
				}
			}
			if best == nil {
				if lacking && skips < maxSkips {
					skips++
					pos = c + 1
					continue
				}
				return out, false
			}
			free := best.tgt - best.inflight
			n := 1
			for n < free && n < s.cfg.MaxRangeLen && c+n < sg.hi {
				nx := c + n
				if !s.wanted.get(nx) || best.lacks(nx) {
					break
				}
				if s.urgent(nx) && s.eft(best, n, now).After(s.deadline(nx)) {
					break // leave it to a peer that may make its deadline
				}
				n++
			}
			out = s.issue(best, c, n, false, now, out)
			pos = c + n
		}
	}
	return out, exhausted
}

// endgame gives idle peers duplicates of in-flight chunks they are expected
// to deliver sooner than the peer that has them.
func (s *Scheduler) endgame(ps []*peer, now time.Time, out []Request) []Request {
	var idle []*peer
	for _, p := range ps {
		if p.inflight == 0 {
			idle = append(idle, p)
		}
	}
	if len(idle) == 0 {
		return out
	}
	var cs []cand
	for _, r := range s.live {
		if r.done {
			continue
		}
		for k := 0; k < r.count; k++ {
			c := r.first + k
			if r.got&(1<<uint(k)) == 0 && !s.have.get(c) && s.copies[c] == 1 {
				cs = append(cs, cand{c, r, k})
			}
		}
	}
	if len(cs) == 0 {
		return out
	}
	sort.Slice(cs, func(a, b int) bool { return s.prio(cs[a].c) < s.prio(cs[b].c) })
	sort.SliceStable(idle, func(a, b int) bool { return idle[a].rate() > idle[b].rate() })
	for _, p := range idle {
		tg := p.tgt
		for j := 0; j < len(cs); j++ {
			cd := cs[j]
			if cd.r.p == p || s.copies[cd.c] != 1 || p.lacks(cd.c) {
				continue
			}
			exp := cd.r.expected(cd.k)
			if !exp.Before(now) && !s.eft(p, 0, now).Before(exp) {
				continue // would not help
			}
			n := 1
			for n < tg && n < s.cfg.MaxRangeLen && cd.k+n < cd.r.count {
				c := cd.c + n
				if cd.r.got&(1<<uint(cd.k+n)) != 0 || s.have.get(c) || s.copies[c] != 1 || p.lacks(c) {
					break
				}
				n++
			}
			for m := 0; m < n; m++ {
				cd.r.dupDone |= 1 << uint(cd.k+m)
			}
			out = s.issue(p, cd.c, n, true, now, out)
			break
		}
	}
	return out
}

// OnChunk reports that chunk i (n bytes) of request reqID arrived from p and
// verified. It returns dup = true if the chunk was already held: the
// caller should drop it. Chunks of requests the scheduler has given up on
// (or never issued) are accepted too.
func (s *Scheduler) OnChunk(reqID uint64, p PeerID, i int, n int, now time.Time) (dup bool) {
	if i < 0 || i >= s.cfg.NumChunks {
		return true
	}
	pr := s.peers[p]
	if pr != nil {
		s.sample(pr, n, now)
		pr.fails = 0
		pr.chunks++
		pr.bytes += int64(n)
	}
	r := s.reqs[reqID]
	if r != nil && r.p == pr && i >= r.first && i < r.first+r.count && r.got&(1<<uint(i-r.first)) == 0 {
		k := i - r.first
		if r.got == 0 && r.idleStart && pr != nil {
			ls := now.Sub(r.sent) - s.chunkTime(pr)
			ls = max(0, min(ls, 10*time.Second))
			pr.lat = (3*pr.lat + ls) / 4
		}
		r.got |= 1 << uint(k)
		s.copies[i]--
		pr.inflight--
		if r.got == 1<<uint(r.count)-1 { // (1<<64)-1 is all ones for uint64

			s.release(r)
		}
	} else {
		r = nil
	}
	if s.have.get(i) {
		s.dupChunks++
		s.dupBytes += int64(n)
		if pr != nil {
			pr.dups++
		}
		return true
	}
	s.have.set(i)
	s.held++
	s.wanted.clear(i)
	if s.copies[i] > 0 && r != nil {
		// Others still have it in flight: those sent before the winner lag.
		for _, q := range s.live {
			if q.done || q == r || q.penalized || q.sent.After(r.sent) || q.sent.Equal(r.sent) && q.id > r.id {
				continue
			}
			if i >= q.first && i < q.first+q.count && q.got&(1<<uint(i-q.first)) == 0 {
				q.penalized = true
				q.p.rateB *= 0.8
			}
		}
	}
	return false
}

// sample feeds one arrival into p's rate estimate: bytes over the time
// since the previous arrival or the start of the busy period.
func (s *Scheduler) sample(p *peer, n int, now time.Time) {
	start := p.lastArrival
	if p.busySince.After(start) {
		start = p.busySince
	}
	p.lastArrival = now
	if d := now.Sub(start); d > 0 {
		p.rateB = p.rateB*rateDecay + float64(n)
		p.rateT = p.rateT*rateDecay + d.Seconds()
	}
}

// OnDone reports that request reqID ended normally (status OK or PARTIAL).
// Chunks it did not deliver are wanted again and are taken as not held by p.
func (s *Scheduler) OnDone(reqID uint64, p PeerID, now time.Time) {
	r := s.reqs[reqID]
	if r == nil || r.p.id != p {
		return
	}
	for k := 0; k < r.count; k++ {
		if r.got&(1<<uint(k)) == 0 && !s.have.get(r.first+k) {
			s.markMissing(r.p, r.first+k)
		}
	}
	s.release(r)
}

// ForgetMissing forgets which chunks peer p said it does not hold: a peer
// that is itself downloading gains chunks, so the caller calls this now and
// then (hivecast's node every few seconds).
func (s *Scheduler) ForgetMissing(p PeerID) {
	for _, pr := range s.order {
		if pr.id == p {
			pr.missing = nil
		}
	}
}

func (s *Scheduler) markMissing(p *peer, i int) {
	if p.missing == nil {
		p.missing = newBitset(s.cfg.NumChunks)
	}
	p.missing.set(i)
}

// OnError reports that request reqID failed. Its undelivered chunks are
// wanted again at once and p backs off exponentially (reset by its next
// delivered chunk). Reports about requests already given up on are ignored.
func (s *Scheduler) OnError(reqID uint64, p PeerID, err Kind, now time.Time) {
	r := s.reqs[reqID]
	if r == nil || r.p.id != p {
		return
	}
	pr := r.p
	if err == ErrNotFound {
		for k := 0; k < r.count; k++ {
			if r.got&(1<<uint(k)) == 0 {
				s.markMissing(pr, r.first+k)
			}
		}
	}
	if err == ErrTimeout {
		pr.rateB *= 0.5
	}
	s.release(r)
	s.backoff(pr, now)
}

// NextWake returns when Next may have new work without any other event
// (a timeout, a late chunk, a backoff ending), or the zero time if none.
func (s *Scheduler) NextWake(now time.Time) time.Time {
	w := s.checkAt
	for _, p := range s.order {
		if p.backoffUntil.After(now) && p.backoffUntil.Before(w) {
			w = p.backoffUntil
		}
	}
	if !w.Before(never) {
		return time.Time{}
	}
	if w.Before(now) {
		return now
	}
	return w
}

// Stats returns a snapshot of the download and of every peer. It walks
// all chunks (about 30 µs at 100k chunks): fine for metrics, not per chunk.
func (s *Scheduler) Stats() Stats {
	st := Stats{
		NumChunks:   s.cfg.NumChunks,
		Held:        s.held,
		Playhead:    s.playhead,
		DupChunks:   s.dupChunks,
		DupBytes:    s.dupBytes,
		Requests:    s.nreq,
		DupRequests: s.ndupReq,
		Expired:     s.nexpired,
	}
	for i, c := range s.copies {
		if c > 0 && !s.have.get(i) {
			st.Inflight++
		}
	}
	if s.cfg.NumChunks > 0 {
		end := s.have.nextClear(s.playhead, s.cfg.NumChunks)
		st.BufferedAhead = time.Duration(end-s.playhead) * s.cfg.ChunkDuration
	}
	for _, p := range s.order {
		st.Peers = append(st.Peers, PeerStats{
			ID: p.id, Rate: p.rate(), Latency: p.lat, Target: s.target(p), Inflight: p.inflight,
			Requests: p.requests, Chunks: p.chunks, Dups: p.dups, Bytes: p.bytes,
			Fails: p.fails, BackoffUntil: p.backoffUntil,
		})
	}
	return st
}
