package player

import (
	"slices"
	"time"
)

// Chunk is one piece of a live stream, as the node hands it over after
// verifying it.
type Chunk struct {
	Seq     uint64
	Capture time.Time // source clock when the source read the chunk's first byte
	Start   bool      // a decoder can start here (PAT/PMT + keyframe)
	End     bool      // last chunk of the stream
	// Repair: the chunk came by a repair fetch, not its path's usual
	// delivery; its arrival does not move the Adaptive schedule.
	Repair bool
	Data   []byte // MPEG-TS packets
}

// JitterConfig configures a Jitter buffer. Zero fields take defaults.
type JitterConfig struct {
	// TargetLatency is how long after its arrival the first chunk is played;
	// every later chunk plays at the same offset from its capture time.
	// Default 500ms.
	TargetLatency time.Duration
	// StallAfter: when nothing has been played for this long while playing,
	// the buffer counts a stall and re-anchors at the next start point (so the
	// viewer catches up with the live edge instead of drifting behind).
	// It must exceed the chunk duration. Default 2s.
	StallAfter time.Duration
	// MaxBuffered bounds the chunks held; beyond it the lowest-numbered is
	// dropped (counted in Overflow). Default 1024.
	MaxBuffered int
	// Delay receives each chunk's source-to-end delay (hand-off time minus
	// Capture; across machines this includes their clock offset). Default
	// NewRingHistogram(4096).
	Delay Histogram
	// Adaptive makes the playout schedule follow the delivery: every chunk
	// plays TargetLatency after the slowest path's usual arrival delay
	// (arrival − capture), rather than after the first chunk's. A path's
	// usual delay is its fastest arrival of the last AdaptWindow: a burst
	// (a join's backlog, the repair after a parent switch) ends with chunks
	// that came at the path's own pace, so it does not hold the schedule
	// back, while a path that got slower (a deeper parent) moves the
	// schedule later at its first late chunk (the path's usual delay then
	// restarts from that arrival). Chunks come over Paths interleaved
	// paths (chunk seq over path seq % Paths: a striped stream's substreams,
	// each from its own parent); the slowest path sets the schedule, so
	// that a stripe deeper in its tree than the one the viewer anchored on
	// is not late forever. Neither a Repair chunk nor one under half the
	// size of the stream's recent large chunks counts toward a usual delay
	// (a fetched chunk did not come by the path; a short one comes sooner
	// than the chunks that fill it).
	Adaptive bool
	// AdaptWindow is how long an arrival counts toward its path's usual
	// delay. Default 2s.
	AdaptWindow time.Duration
	// Paths is the number of interleaved delivery paths (Adaptive; default 1).
	Paths int
}

func (c *JitterConfig) defaults() {
	if c.TargetLatency <= 0 {
		c.TargetLatency = 500 * time.Millisecond
	}
	if c.StallAfter <= 0 {
		c.StallAfter = 2 * time.Second
	}
	if c.MaxBuffered <= 0 {
		c.MaxBuffered = 1024
	}
	if c.AdaptWindow <= 0 {
		c.AdaptWindow = 2 * time.Second
	}
	if c.Paths <= 0 {
		c.Paths = 1
	}
	if c.Delay == nil {
		c.Delay = NewRingHistogram(4096)
	}
}

// JitterStats are a Jitter buffer's counters.
type JitterStats struct {
	Delivered  uint64 // chunks played (returned by Pop)
	Missed     uint64 // chunks skipped because they were not there at their deadline
	Late       uint64 // chunks that arrived after their deadline and were dropped (also counted in Missed)
	Duplicates uint64 // chunks pushed again
	Overflow   uint64 // chunks dropped because MaxBuffered was exceeded
	Stalls     uint64 // times nothing played for StallAfter (each led to a re-anchor)
	CatchUps   uint64 // times the buffer, far behind live, jumped to the newest start point
	Bytes      uint64 // bytes played
	// Continuity is Delivered / (Delivered + Missed), 1 before anything was due.
	Continuity float64
	// Startup is the time from the first Push to the first chunk played, 0
	// before that.
	Startup time.Duration
	// DelayP50..P99: source-to-end delay quantiles.
	DelayP50, DelayP95, DelayP99 time.Duration
	// Playout is the current schedule's delay (capture to playout, clock
	// offset included), 0 before anchoring.
	Playout time.Duration
}

// Jitter is a live reorder buffer with playout deadlines. It is pure: the
// caller passes the time, and it is not safe for concurrent use (Live wraps
// it with a goroutine and a clock).
//
// Timing: the buffer anchors on a start point. The chunk it anchors on
// plays TargetLatency after the moment it anchored (localBase = the Push or
// Pop that anchored, captureBase = the chunk's Capture), and chunk c plays at
//
//	playout(c) = localBase + (c.Capture - captureBase) + TargetLatency
//
// With Adaptive, localBase then follows the slowest path's usual arrival
// delay (see JitterConfig.Adaptive).
//
// Only differences of capture times are used, so the source's clock need not
// agree with ours. The node should push the newest start point it has first
// (it anchors on the first start point pushed); chunks before the anchor are
// dropped.
//
// Chunks are played in Seq order, each at its playout time. If the next
// chunk is missing when a later one is due, the missing ones are skipped
// (Missed); a chunk pushed after its playout time is dropped (Late). After
// StallAfter without playing anything, the buffer counts a stall and waits for
// a start point to re-anchor on: it takes the newest one it holds, or the
// next one pushed.
type Jitter struct {
	cfg JitterConfig

	pending []Chunk // sorted by Seq, all >= next

	anchored     bool
	everAnchored bool
	next         uint64 // next Seq to play
	anchorSeq    uint64 // Seq of the start point anchored on last
	localBase    time.Time
	captureBase  time.Time
	lastOut      time.Time // last time something was played (or the anchor's playout time)

	// seqs below next that were skipped: 1 = never arrived, 2 = arrived late.
	lost map[uint64]uint8
	// seqs >= next dropped as late, so that their duplicates are not counted late twice.
	lateAhead map[uint64]struct{}

	// fast[p] is the sliding minimum of path p's arrival delays (arrival −
	// capture, clock offset included) over AdaptWindow (Adaptive).
	fast []MinWindow
	// bigSize follows the size of the stream's large chunks (small).
	bigSize int

	firstPush time.Time
	pushed    bool
	ended     bool
	st        JitterStats
}

// NewJitter returns an empty buffer.
func NewJitter(cfg JitterConfig) *Jitter {
	cfg.defaults()
	return &Jitter{cfg: cfg, lost: make(map[uint64]uint8), lateAhead: make(map[uint64]struct{})}
}

// Config returns the configuration in use, with defaults filled in.
func (j *Jitter) Config() JitterConfig { return j.cfg }

// PushResult says what Push did with a chunk.
type PushResult int

const (
	Buffered  PushResult = iota // held for playout
	Duplicate                   // already held, played or dropped
	Late                        // its deadline had passed; dropped
	Stale                       // before the current anchor (e.g. older than the start point); dropped
	Ignored                     // the stream has ended
)

func (r PushResult) String() string {
	switch r {
	case Buffered:
		return "buffered"
	case Duplicate:
		return "duplicate"
	case Late:
		return "late"
	case Stale:
		return "stale"
	case Ignored:
		return "ignored"
	}
	return "?"
}

// observe records chunk c's arrival (Adaptive) and moves the schedule so
// that chunks play TargetLatency after the slowest path's usual delay.
func (j *Jitter) observe(c *Chunk, now time.Time) {
	if !j.anchored || !j.cfg.Adaptive || c.Repair || j.small(c) {
		return
	}
	j.path(c).Add(now, now.Sub(c.Capture))
	j.reschedule(now)
}

// path returns the arrival window of c's delivery path.
func (j *Jitter) path(c *Chunk) *MinWindow {
	if j.fast == nil {
		j.fast = make([]MinWindow, j.cfg.Paths)
	}
	return &j.fast[c.Seq%uint64(j.cfg.Paths)]
}

// observeLate records chunk c, which came after its playout time: its path
// is slower now than its fastest arrival of the window says (a parent
// switch to a deeper parent, a parent's uplink filling up). The path's
// usual delay restarts from this arrival, so the schedule moves later at
// once rather than when the faster arrivals leave the window (until
// 2026-12-02 that cost every chunk of the path for up to AdaptWindow after
// such a switch). A one-off late chunk moves it back at the next faster
// arrival of the path.
func (j *Jitter) observeLate(c *Chunk, now time.Time) {
	if !j.anchored || !j.cfg.Adaptive || c.Repair {
		return
	}
	j.path(c).Restart(now, now.Sub(c.Capture))
	j.reschedule(now)
}

// small reports whether c is less than half the size of the stream's
// recent large chunks, and notes its size. A short chunk (the one a
// source cuts early before a keyframe, say) waited less at the source and
// takes less time on every hop: its arrival says the path is faster than
// it is for the chunks that fill the stream, and a schedule that followed
// it would make those late (a dip of 100 ms and more in the simulator).
func (j *Jitter) small(c *Chunk) bool {
	n := len(c.Data)
	j.bigSize -= j.bigSize / 64 // forget sizes of long ago, slowly
	if n > j.bigSize {
		j.bigSize = n
	}
	return n < j.bigSize/2
}

// reschedule moves the schedule to TargetLatency after the slowest path's
// usual delay.
func (j *Jitter) reschedule(now time.Time) {
	// The slowest path's usual delay, over the paths heard from lately.
	var slowest time.Duration
	heard := false
	for p := range j.fast {
		if d, ok := j.fast[p].Min(now, j.cfg.AdaptWindow); ok && (!heard || d > slowest) {
			slowest, heard = d, true
		}
	}
	// The schedule puts chunk x at localBase + (x.Capture − captureBase) +
	// TargetLatency: a chunk delayed by slowest plays TargetLatency after
	// it came when localBase = captureBase + slowest.
	base := j.captureBase.Add(slowest)
	if diff := base.Sub(j.localBase); diff > adaptiveDeadband || diff < -adaptiveDeadband {
		j.localBase = base
	}
}

// adaptiveDeadband ignores tiny variations of delivery time.
const adaptiveDeadband = 5 * time.Millisecond

func (j *Jitter) playout(c *Chunk) time.Time {
	return j.localBase.Add(c.Capture.Sub(j.captureBase) + j.cfg.TargetLatency)
}

// find returns the index of seq in pending and whether it is there.
func (j *Jitter) find(seq uint64) (int, bool) {
	return slices.BinarySearchFunc(j.pending, seq, func(c Chunk, s uint64) int {
		switch {
		case c.Seq < s:
			return -1
		case c.Seq > s:
			return 1
		}
		return 0
	})
}

// Push offers a chunk that arrived at now.
func (j *Jitter) Push(c Chunk, now time.Time) PushResult {
	if !j.pushed {
		j.pushed, j.firstPush = true, now
	}
	if j.ended {
		return Ignored
	}
	if j.everAnchored && c.Seq < j.next {
		switch j.lost[c.Seq] {
		case 1:
			j.lost[c.Seq] = 2
			j.st.Late++
			// Too late for this one, but its path is that slow: the
			// chunks after it get the time it needed.
			j.observeLate(&c, now)
			return Late
		case 2:
			j.st.Duplicates++
			return Duplicate
		}
		if c.Seq >= j.anchorSeq {
			j.st.Duplicates++ // played already
			return Duplicate
		}
		return Stale
	}
	if _, ok := j.lateAhead[c.Seq]; ok {
		j.st.Duplicates++
		return Duplicate
	}
	i, found := j.find(c.Seq)
	if found {
		j.st.Duplicates++
		return Duplicate
	}
	j.observe(&c, now)
	if j.anchored && now.After(j.playout(&c)) {
		j.lateAhead[c.Seq] = struct{}{}
		j.st.Late++
		j.observeLate(&c, now)
		return Late
	}
	j.pending = slices.Insert(j.pending, i, c)
	if j.anchored && j.cfg.Adaptive && now.Sub(j.playout(&j.pending[0])) > j.cfg.TargetLatency {
		// Far behind live (we anchored on an old start point from a
		// backlog, say, and the schedule has since moved to the live
		// edge): jump to the newest start point held instead of playing
		// seconds of old video in a burst.
		j.catchUp()
	}
	if len(j.pending) > j.cfg.MaxBuffered {
		j.pending = slices.Delete(j.pending, 0, 1)
		j.st.Overflow++
	}
	if !j.anchored && c.Start {
		j.anchor(now)
	}
	return Buffered
}

// catchUp drops the pending chunks before the newest start point held,
// counting them missed, so playout resumes there.
func (j *Jitter) catchUp() {
	newest := -1
	for i := len(j.pending) - 1; i > 0; i-- {
		if j.pending[i].Start {
			newest = i
			break
		}
	}
	if newest <= 0 {
		return // no later start point to jump to yet
	}
	seq := j.pending[newest].Seq
	j.pending = slices.Delete(j.pending, 0, newest)
	j.skipTo(seq)
	j.st.CatchUps++
}

// anchor starts (or restarts) playout at the newest start point held.
func (j *Jitter) anchor(now time.Time) bool {
	k := -1
	for i := len(j.pending) - 1; i >= 0; i-- {
		if j.pending[i].Start {
			k = i
			break
		}
	}
	if k < 0 {
		return false
	}
	s := j.pending[k]
	if j.everAnchored && s.Seq > j.next {
		// Everything between the old position and the new start point is
		// lost; what of it we held is dropped now.
		j.skipTo(s.Seq)
	}
	j.pending = slices.Delete(j.pending, 0, k)
	j.anchored, j.everAnchored = true, true
	j.next, j.anchorSeq = s.Seq, s.Seq
	j.localBase, j.captureBase = now, s.Capture
	j.fast = nil
	j.observe(&s, now)
	// The stall clock starts when the start point is due.
	j.lastOut = now.Add(j.cfg.TargetLatency)
	clear(j.lateAhead)
	return true
}

// skipTo counts seqs [next, seq) not played as missed and moves next to seq.
func (j *Jitter) skipTo(seq uint64) {
	if seq <= j.next {
		return
	}
	j.st.Missed += seq - j.next
	from := j.next
	if seq-from > 4096 { // remember only the most recent ones
		from = seq - 4096
	}
	for s := from; s < seq; s++ {
		if _, ok := j.lateAhead[s]; ok {
			j.lost[s] = 2
			delete(j.lateAhead, s)
		} else {
			j.lost[s] = 1
		}
	}
	j.next = seq
	if len(j.lost) > 8192 {
		for s := range j.lost {
			if s+4096 < j.next {
				delete(j.lost, s)
			}
		}
	}
}

// Pop returns, in Seq order, the chunks whose playout time is at or before
// now, skipping missing ones whose turn has passed. It records stats as if
// they were handed to the player at now.
func (j *Jitter) Pop(now time.Time) []Chunk {
	var out []Chunk
	if !j.anchored {
		if j.everAnchored && !j.ended {
			j.anchor(now)
		}
		if !j.anchored {
			return nil
		}
	}
	for len(j.pending) > 0 && !j.ended {
		c := j.pending[0]
		if now.Before(j.playout(&c)) {
			break
		}
		if c.Seq > j.next {
			j.skipTo(c.Seq)
		}
		j.pending = j.pending[1:]
		j.next = c.Seq + 1
		j.deliver(c, now)
		out = append(out, c)
		if c.End {
			j.ended = true
			j.pending = nil
		}
	}
	if len(out) > 0 {
		j.lastOut = now
	} else if !j.ended && now.Sub(j.lastOut) >= j.cfg.StallAfter {
		j.st.Stalls++
		j.anchored = false
		j.anchor(now)
	}
	return out
}

func (j *Jitter) deliver(c Chunk, now time.Time) {
	if j.st.Delivered == 0 {
		j.st.Startup = now.Sub(j.firstPush)
	}
	j.st.Delivered++
	j.st.Bytes += uint64(len(c.Data))
	j.cfg.Delay.Observe(now.Sub(c.Capture))
}

// NextDeadline returns when Pop next has something to do: the playout time of
// the first chunk held, or the moment a stall would be declared. ok is false
// when only a Push can change anything.
func (j *Jitter) NextDeadline() (t time.Time, ok bool) {
	if !j.anchored || j.ended {
		return time.Time{}, false
	}
	stall := j.lastOut.Add(j.cfg.StallAfter)
	if len(j.pending) == 0 {
		return stall, true
	}
	// The chunk held with the lowest Seq plays first; a later one with an
	// earlier capture time cannot play before it.
	p := j.playout(&j.pending[0])
	if p.Before(stall) {
		return p, true
	}
	return stall, true
}

// Ended reports whether the End chunk has been played.
func (j *Jitter) Ended() bool { return j.ended }

// Buffered returns the number of chunks held.
func (j *Jitter) Buffered() int { return len(j.pending) }

// Stats returns the counters so far.
func (j *Jitter) Stats() JitterStats {
	s := j.st
	s.Continuity = 1
	if d := s.Delivered + s.Missed; d > 0 {
		s.Continuity = float64(s.Delivered) / float64(d)
	}
	s.DelayP50 = j.cfg.Delay.Quantile(0.50)
	s.DelayP95 = j.cfg.Delay.Quantile(0.95)
	s.DelayP99 = j.cfg.Delay.Quantile(0.99)
	if j.anchored {
		s.Playout = j.localBase.Sub(j.captureBase) + j.cfg.TargetLatency
	}
	return s
}
