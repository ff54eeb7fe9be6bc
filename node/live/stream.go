package live

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hivecast/hivecast/player"
	"github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// Stream is one live stream this node takes part in: as its source, or as a
// viewer (which also relays to its children).
type Stream struct {
	svc    *Service
	id     cid.Cid
	source bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	infoReady chan struct{} // closed once info and verifier are set

	mu        sync.Mutex
	info      *pb.StreamInfo
	verifier  *live.Verifier
	ring      []*pb.LiveChunk // index seq % len(ring)
	lag       time.Duration   // see noteForward
	lagAt     time.Time
	have      bool
	latest    uint64
	latestCap int64 // capture time of the newest chunk, µs (source clock)
	ended     bool
	children  map[childKey]*child
	k         int     // stripes this node subscribes to (viewers)
	feeds     []*feed // one per stripe (viewers); nil on a source
	baseSeq   uint64  // first seq a late stripe subscription asks for
	cands     map[peer.ID]*candidate
	// srcID is the source's peer ID (viewers), known once the stream's
	// info has verified: its key signs the chunks and names the stream.
	// Before that, srcHint is the source as probe answers name it (the
	// first of their ancestors): unverified, but a lie only makes us
	// leave one peer alone.
	srcID, srcHint peer.ID
	// probes holds the probes under way, each closed when it is done: a
	// probe another stripe wants too is waited for, not sent twice.
	probes map[peer.ID]chan struct{}
	// candsAdded is closed, and replaced, when a candidate is added: a
	// stripe with nobody to try waits on the one it saw before it looked.
	candsAdded chan struct{}
	banned     map[peer.ID]bool
	play       *player.Live
	fanout     *player.HTTPFanout
	sinks      []player.Sink
	startedAt  time.Time
	infoAt     time.Time // when the stream's info came (viewers)
	firstChunk time.Time
	chunksIn   uint64
	bytesIn    uint64
	bytesOut   uint64

	// Children accounting: bytes sent as a new subscription's backlog,
	// subscriptions taken, children evicted, children dropped as too slow,
	// chunk copies skipped as stale.
	backlogOut, subsIn, evictions, drops, staleSkips uint64
	probesIn, refusals                               uint64
	// Probes sent, by what they were for, and of them those to peers we
	// held no connection to (each a handshake at both ends).
	probesOut, probeDials [numProbeWhys]uint64
	// DHT provider lookups, and of them those that found no peer the
	// viewer did not know already.
	lookups, lookupsIdle uint64
	// Repair fetches (repair.go): chunks asked for and when; fetches
	// sent and chunks they added; fetches answered, their bytes, and the
	// limit on them.
	asked                    map[uint64]asked
	fetchesOut, repaired     uint64
	fetchesIn, fetchBytesOut uint64
	fetchLim                 *rate.Limiter

	dupIn     uint64
	switches  uint64
	rateIn    rateMeter
	rateOut   rateMeter
	closeOnce sync.Once
	provided  bool
	// candTag is the connection manager tag put on the stream's
	// candidates that answered a probe (see candValue).
	candTag string
	done    chan struct{}
}

// candidate is a peer that may feed us. Its depth and room are those of its
// home stripe (live.Home), where it is an interior node; the source's depth
// is 0 in every stripe.
type candidate struct {
	depth    int       // -1 unknown
	spare    int       // free stripe slots, -1 unknown
	path     []peer.ID // its path from the source (ancestors and parent), as last probed
	latest   uint64    // its newest chunk (of its home stripe), as last probed
	home     int       // its home stripe (live.Home), computed once
	failedAt time.Time
	fails    int
	probedAt time.Time
	// pushable: children it would push down for a peer asking for its own
	// home stripe (LiveStatus.pushable), as last probed.
	pushable int
}

// noteRoom records where c stands by its status: depth, free slots and
// the children it would push down.
func (c *candidate) noteRoom(s *pb.LiveStatus) {
	c.depth = int(s.Depth)
	c.spare = int(s.MaxChildren) - int(s.Children)
	c.pushable = int(s.Pushable)
}

func newStream(svc *Service, id cid.Cid, source bool) *Stream {
	ctx, cancel := context.WithCancel(svc.ctx)
	st := &Stream{
		svc: svc, id: id, source: source, ctx: ctx, cancel: cancel,
		infoReady:  make(chan struct{}),
		ring:       make([]*pb.LiveChunk, svc.cfg.Window),
		children:   map[childKey]*child{},
		cands:      map[peer.ID]*candidate{},
		probes:     map[peer.ID]chan struct{}{},
		candsAdded: make(chan struct{}),
		banned:     map[peer.ID]bool{},
		k:          svc.cfg.Stripes,
		startedAt:  svc.cfg.Now(),
		done:       make(chan struct{}),
		candTag:    fmt.Sprintf("%s/candidate/%s", protectTag, id),
	}
	if !source {
		for i := 0; i < st.k; i++ {
			st.feeds = append(st.feeds, &feed{st: st, idx: i, depth: -1})
		}
	}
	return st
}

// ID is the stream ID.
func (s *Stream) ID() cid.Cid { return s.id }

// Done is closed once the stream has ended here (end of stream, or Close).
func (s *Stream) Done() <-chan struct{} { return s.done }

// HTTP is the stream's HTTP fan-out (viewers only; nil on a source).
func (s *Stream) HTTP() *player.HTTPFanout {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fanout
}

// Close leaves the stream: children are told it ended here, the parent
// connection closes.
func (s *Stream) Close() {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		if !s.source {
			s.untagCandidates()
		}
		s.mu.Lock()
		play := s.play
		s.mu.Unlock()
		if play != nil {
			play.Close()
		}
		s.svc.remove(s)
		close(s.done)
	})
}

func (s *Stream) setInfo(info *pb.StreamInfo, v *live.Verifier) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.info != nil {
		return
	}
	s.info, s.verifier = info, v
	s.infoAt = s.svc.cfg.Now()
	if !s.source {
		// The stream ID commits to this key (the verifier checked), so
		// the source's peer ID is known for sure, not as a peer claims.
		if pk, err := crypto.UnmarshalPublicKey(info.PublicKey); err == nil {
			if id, err := peer.IDFromPublicKey(pk); err == nil {
				s.srcID = id
			}
		}
		s.svc.log.Debug("stream info", "stream", s.id.String(), "after", s.infoAt.Sub(s.startedAt))
	}
	close(s.infoReady)
}

func (s *Stream) getLocked(seq uint64) *pb.LiveChunk {
	c := s.ring[seq%uint64(len(s.ring))]
	if c != nil && c.Seq == seq {
		return c
	}
	return nil
}

// staleLocked reports whether a queued chunk is too old to send on: captured
// over maxQueuedAge before the newest chunk held of its own stripe.
func (s *Stream) staleLocked(c *pb.LiveChunk) bool {
	return s.newestCapLocked(c.Seq)-c.CaptureUnixMicros > maxQueuedAge.Microseconds()
}

// newestCapLocked is the capture time (µs, source clock) of the newest chunk
// held in seq's stripe: a queued chunk far behind it came in a catch-up
// burst. A stripe late as a whole is not a burst: measured against the
// other stripes, all its chunks would be skipped, and every node below
// would starve on that stripe (docs/benchmarks.md).
func (s *Stream) newestCapLocked(seq uint64) int64 {
	if len(s.feeds) > 1 {
		if f := s.feeds[seq%uint64(len(s.feeds))]; f.have {
			return f.latestCap
		}
	}
	return s.latestCap
}

// add stores a verified chunk and forwards it to every child and the local
// player. It reports false for a duplicate or a chunk too old to keep.
func (s *Stream) add(c *pb.LiveChunk) bool { return s.addChunk(c, false) }

// addChunk is add; repaired marks a chunk that a repair fetch brought, whose
// arrival says nothing about its stripe's usual delay (neither the
// stripe's delay figures nor the player's schedule count it).
func (s *Stream) addChunk(c *pb.LiveChunk, repaired bool) bool {
	now := s.svc.cfg.Now()
	s.mu.Lock()
	if s.ended || s.getLocked(c.Seq) != nil || (s.have && c.Seq+uint64(len(s.ring)) <= s.latest) {
		s.dupIn++
		s.mu.Unlock()
		return false
	}
	s.ring[c.Seq%uint64(len(s.ring))] = c
	if !s.have || c.Seq > s.latest {
		s.latest, s.have = c.Seq, true
		s.latestCap = c.CaptureUnixMicros
	}
	if s.firstChunk.IsZero() {
		s.firstChunk = now
		s.svc.log.Debug("first chunk", "stream", s.id.String(), "seq", c.Seq, "after", now.Sub(s.startedAt))
		// Stripes subscribed later start where this one did (its first
		// chunk may follow the start point by up to K-1 chunks).
		s.baseSeq = c.Seq - min(c.Seq, uint64(max(s.k, 1)-1))
	}
	if len(s.feeds) > 0 {
		f := s.feeds[c.Seq%uint64(len(s.feeds))]
		if !f.have || c.Seq > f.latest {
			f.latest, f.latestCap, f.have = c.Seq, c.CaptureUnixMicros, true
			f.newAt = now
		}
		if f.firstAt.IsZero() {
			f.firstAt = now
		}
		if !repaired {
			d := now.Sub(time.UnixMicro(c.CaptureUnixMicros))
			f.fast.Add(now, d)
			if f.delay == 0 {
				f.delay = d
			} else {
				f.delay += (d - f.delay) / 8
			}
		}
	}
	s.chunksIn++
	s.bytesIn += uint64(len(c.Data))
	s.rateIn.add(now, len(c.Data))
	end := c.Flags&live.FlagEnd != 0
	if end {
		s.ended = true
	}
	kids := make([]*child, 0, len(s.children))
	for _, k := range s.children {
		kids = append(kids, k)
	}
	play := s.play
	s.mu.Unlock()
	if len(kids) > 0 {
		// Encode the frame once for every child.
		frame, err := wire.AppendFrame(nil, &pb.LiveMessage{Msg: &pb.LiveMessage_Chunk{Chunk: c}})
		if err == nil {
			s.forward(kids, queued{c: c, frame: frame})
		}
	}
	if play != nil {
		play.Push(player.Chunk{
			Seq:     c.Seq,
			Capture: time.UnixMicro(c.CaptureUnixMicros),
			Start:   c.Flags&live.FlagStart != 0,
			End:     end,
			Repair:  repaired,
			Data:    c.Data,
		})
	}
	return true
}

// forward queues a chunk for the children. With an upload limit, it also
// books the uplink for each copy, interior children first: those whose home
// stripe the chunk is in forward it further, so they get it first (a whole
// frame each, in turn, rather than all copies sharing the uplink and all
// arriving late); leaves, which forward nothing of it, come last.
func (s *Stream) forward(kids []*child, q queued) {
	lim := s.svc.cfg.Upload
	var drops uint64
	if lim == nil {
		for _, k := range kids {
			if k.push(q) {
				drops++
			}
		}
		s.noteForward(drops, 0, false)
		return
	}
	seq := q.c.Seq
	end := q.c.Flags&live.FlagEnd != 0
	var lag time.Duration
	booked := false
	// The order matters only for the booking.
	sort.SliceStable(kids, func(i, j int) bool {
		pi, pj := kids[i].interior(seq), kids[j].interior(seq)
		if pi != pj {
			return pi
		}
		return kids[i].id < kids[j].id
	})
	for _, k := range kids {
		kq := q
		// Book only copies that will be sent: not for a child waiting for
		// the next start point, unless this is one.
		if end || (k.set.Has(seq) && (!k.waiting.Load() || q.c.Flags&live.FlagStart != 0)) {
			if r := lim.ReserveN(time.Now(), len(q.frame)); r.OK() {
				if r.Delay() > s.svc.cfg.StallTimeout && !end {
					// The uplink is booked further ahead than a child
					// waits before it calls us stalled: more children than
					// it carries. Drop this one (leaves come last, so a
					// leaf), which finds a parent with room.
					r.Cancel()
					drops++
					k.once()
					continue
				}
				kq.booked = r
				lag, booked = max(lag, r.Delay()), true
			}
		}
		if k.push(kq) {
			drops++
		}
	}
	s.noteForward(drops, lag, booked)
}

// noteForward records, once per chunk, the children forward dropped and
// how far ahead it found the uplink booked (the longest wait of a chunk
// copy booked in the last two seconds is reported).
func (s *Stream) noteForward(drops uint64, lag time.Duration, booked bool) {
	if drops == 0 && !booked {
		return
	}
	now := s.svc.cfg.Now()
	s.mu.Lock()
	s.drops += drops
	if booked && (lag > s.lag || now.Sub(s.lagAt) > 2*time.Second) {
		s.lag, s.lagAt = lag, now
	}
	s.mu.Unlock()
}

// backlog returns the chunks a new child gets first: from fromSeq, or (if
// fromLatest) from the newest start point no more than MaxJoinLag behind the
// newest chunk. The second result is false when the child should instead
// wait for the next start point.
func (s *Stream) backlogLocked(fromSeq uint64, fromLatest bool) []*pb.LiveChunk {
	if !s.have {
		return nil
	}
	lo := uint64(0)
	if s.latest+1 > uint64(len(s.ring)) {
		lo = s.latest + 1 - uint64(len(s.ring))
	}
	if fromLatest {
		maxLag := s.svc.cfg.MaxJoinLag.Microseconds()
		for q := s.latest; ; q-- {
			c := s.getLocked(q)
			if c == nil || s.latestCap-c.CaptureUnixMicros > maxLag {
				return nil // wait for the next start point
			}
			if c.Flags&live.FlagStart != 0 {
				fromSeq = q
				break
			}
			if q == lo {
				return nil
			}
		}
	}
	if fromSeq < lo {
		fromSeq = lo
	}
	var out []*pb.LiveChunk
	for q := fromSeq; q <= s.latest; q++ {
		if c := s.getLocked(q); c != nil {
			out = append(out, c)
		}
	}
	return out
}

// Stats is what `status --json` reports for a stream.
type Stats struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Role      string   `json:"role"` // "source" or "viewer"
	Ended     bool     `json:"ended"`
	LatestSeq uint64   `json:"latest_seq"`
	Depth     int      `json:"depth"`             // deepest stripe's hops from the source
	Parent    string   `json:"parent,omitempty"`  // stripe 0's parent
	Parents   []string `json:"parents,omitempty"` // each stripe's parent ("" while looking)
	Stripes   int      `json:"stripes"`
	// Each stripe's depth in its tree and moving average of its arrival
	// delay (arrival − capture, ms; includes the source's clock offset).
	StripeDepth   []int     `json:"stripe_depth,omitempty"`
	StripeDelayMS []float64 `json:"stripe_delay_ms,omitempty"`
	// UploadLagMS: how long the longest-waiting chunk copy booked on the
	// uplink in the last two seconds waited for its turn (ms).
	UploadLagMS float64 `json:"upload_lag_ms"`
	// PlayoutMS is the player's current schedule: capture to playout (ms).
	PlayoutMS  float64  `json:"playout_ms"`
	Children   int      `json:"children"` // peers fed (each takes one or more stripes)
	Load       float64  `json:"load"`     // copies of the stream forwarded (a stripe of K counts 1/K)
	Peers      int      `json:"peers"`    // candidates known
	Banned     int      `json:"banned"`   // peers dropped for sending invalid data
	Switches   uint64   `json:"parent_switches"`
	DelayMS    Quantile `json:"delay_ms"`
	Continuity float64  `json:"continuity"`
	StartupMS  float64  `json:"startup_ms"`
	// Join steps of a viewer, from Watch: the stream's info verified (a
	// parent found), the first chunk.
	InfoMS       float64 `json:"info_ms,omitempty"`
	FirstChunkMS float64 `json:"first_chunk_ms,omitempty"`
	// Per stripe: its first chunk (ms from Watch, 0: none yet) and the
	// subscriptions tried until then.
	StripeFirstMS []float64 `json:"stripe_first_chunk_ms,omitempty"`
	StripeTries   []int     `json:"stripe_tries,omitempty"`
	Stalls        uint64    `json:"stalls"`
	Delivered     uint64    `json:"delivered"`
	Missed        uint64    `json:"missed"`
	Late          uint64    `json:"late"`      // chunks that came after their playout time (counted in Missed)
	CatchUps      uint64    `json:"catch_ups"` // jumps to the newest start point, far behind live
	ChunksIn      uint64    `json:"chunks_in"`
	DupIn         uint64    `json:"dup_in"`
	BytesIn       uint64    `json:"bytes_in"`
	BytesOut      uint64    `json:"bytes_out"`
	// Of BytesOut, sent as new subscriptions' backlogs; subscriptions
	// taken, children evicted by pushdown, children dropped as too slow.
	BacklogBytesOut uint64 `json:"backlog_bytes_out"`
	Subscriptions   uint64 `json:"subscriptions"`
	Evictions       uint64 `json:"evictions"`
	ChildDrops      uint64 `json:"child_drops"`
	StaleSkips      uint64 `json:"stale_skips"` // chunk copies not sent: far older than the newest held
	// Probes answered, and subscriptions refused (no room, not attached,
	// a loop): what peers looking for a parent cost this node.
	ProbesIn uint64 `json:"probes_in"`
	Refusals uint64 `json:"refusals"`
	// Probes this viewer sent, by what they were for (join, failover,
	// standby, explore, move), and of them those that had to open a
	// connection first: what its probing costs other peers.
	ProbesOut  map[string]uint64 `json:"probes_out,omitempty"`
	ProbeDials map[string]uint64 `json:"probe_dials,omitempty"`
	// DHT provider lookups this viewer made, and of them those that found
	// no peer it did not know already (each lookup queries a few dozen
	// DHT nodes, most of them dials at a peer bound).
	Lookups     uint64 `json:"dht_lookups"`
	LookupsIdle uint64 `json:"dht_lookups_idle"`
	// Repair fetches (striped streams): sent, and the chunks they added
	// that had not come otherwise; answered, and the bytes sent in them
	// (also counted in BytesOut).
	FetchesOut    uint64  `json:"fetches_out"`
	Repaired      uint64  `json:"repaired"`
	FetchesIn     uint64  `json:"fetches_in"`
	FetchBytesOut uint64  `json:"fetch_bytes_out"`
	RateIn        float64 `json:"down_bps"`
	RateOut       float64 `json:"up_bps"`
	Bitrate       uint64  `json:"bitrate_bps"`
	HTTPPath      string  `json:"http_path,omitempty"`
}

// Quantile holds delay percentiles in milliseconds.
type Quantile struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

func (s *Stream) childPeersLocked() int {
	seen := map[peer.ID]bool{}
	for key := range s.children {
		seen[key.id] = true
	}
	return len(seen)
}

// noteSentLocked counts n bytes of chunks sent (to a child or in a fetch
// answer) in BytesOut and the upload rate.
func (s *Stream) noteSentLocked(n int) {
	s.bytesOut += uint64(n)
	s.rateOut.add(s.svc.cfg.Now(), n)
}

// ms is d in milliseconds, as Stats reports durations.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Stats returns a snapshot.
func (s *Stream) Stats() Stats {
	now := s.svc.cfg.Now()
	s.mu.Lock()
	st := Stats{
		ID: s.id.String(), Role: "viewer", Ended: s.ended, LatestSeq: s.latest, Depth: s.depthLocked(), Stripes: s.k,
		Children: s.childPeersLocked(), Load: s.loadLocked(), Peers: len(s.cands), Banned: len(s.banned), Switches: s.switches,
		ChunksIn: s.chunksIn, DupIn: s.dupIn, BytesIn: s.bytesIn, BytesOut: s.bytesOut,
		BacklogBytesOut: s.backlogOut, Subscriptions: s.subsIn, Evictions: s.evictions, ChildDrops: s.drops, StaleSkips: s.staleSkips,
		ProbesIn: s.probesIn, Refusals: s.refusals, ProbesOut: whyCounts(s.probesOut), ProbeDials: whyCounts(s.probeDials),
		Lookups: s.lookups, LookupsIdle: s.lookupsIdle,
		FetchesOut: s.fetchesOut, Repaired: s.repaired, FetchesIn: s.fetchesIn, FetchBytesOut: s.fetchBytesOut,
		RateIn: s.rateIn.rate(now) * 8, RateOut: s.rateOut.rate(now) * 8, Continuity: 1,
	}
	since := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return ms(t.Sub(s.startedAt))
	}
	if !s.source {
		st.InfoMS, st.FirstChunkMS = since(s.infoAt), since(s.firstChunk)
	}
	if now.Sub(s.lagAt) <= 2*time.Second {
		st.UploadLagMS = ms(s.lag)
	}
	if s.source {
		st.Role = "source"
		st.Depth = 0
	}
	if s.info != nil {
		st.Name = s.info.Name
		st.Bitrate = s.info.Bitrate
	}
	for i, f := range s.feeds {
		p := ""
		if f.parent != "" {
			p = f.parent.String()
		}
		if i == 0 {
			st.Parent = p
		}
		st.Parents = append(st.Parents, p)
		st.StripeDepth = append(st.StripeDepth, f.depth)
		st.StripeDelayMS = append(st.StripeDelayMS, ms(f.delay))
		st.StripeFirstMS = append(st.StripeFirstMS, since(f.firstAt))
		st.StripeTries = append(st.StripeTries, f.tries)
	}
	play := s.play
	s.mu.Unlock()
	if play != nil {
		js := play.Stats()
		st.DelayMS = Quantile{P50: ms(js.DelayP50), P95: ms(js.DelayP95), P99: ms(js.DelayP99)}
		st.Continuity = js.Continuity
		st.StartupMS = ms(js.Startup)
		st.Stalls = js.Stalls
		st.Delivered = js.Delivered
		st.Missed = js.Missed
		st.Late = js.Late
		st.CatchUps = js.CatchUps
		st.PlayoutMS = ms(js.Playout)
		st.HTTPPath = "/stream/" + s.id.String()
	}
	return st
}

// rateMeter is bytes per second over the last two seconds.
type rateMeter struct {
	slots [2]int64
	at    [2]int64 // unix second of each slot
}

func (r *rateMeter) add(now time.Time, n int) {
	sec := now.Unix()
	i := sec % 2
	if r.at[i] != sec {
		r.at[i], r.slots[i] = sec, 0
	}
	r.slots[i] += int64(n)
}

func (r *rateMeter) rate(now time.Time) float64 {
	prev := now.Unix() - 1
	if r.at[prev%2] == prev {
		return float64(r.slots[prev%2])
	}
	return 0
}

var errEnded = errors.New("stream ended")

// probeWhy is what a probe is for.
type probeWhy int

const (
	probeJoin      probeWhy = iota // a stripe looking for its first parent, or a new one after a refusal
	probeFailover                  // the standbys of a stripe that lost its parent
	probeStandby                   // optimize: keeping each stripe's best standby known alive
	probeExplore                   // optimize: candidates not probed lately
	probeMove                      // a better parent, just before moving to it
	probeNeighbour                 // a joiner asking the peers it is connected to
	numProbeWhys
)

var probeWhyNames = [numProbeWhys]string{"join", "failover", "standby", "explore", "move", "neighbour"}

// ProbePurposes names the purposes Stats.ProbesOut and ProbeDials count
// probes by, in a fixed order (for tables).
func ProbePurposes() []string { return slices.Clone(probeWhyNames[:]) }

// whyCounts names the non-zero counts of c by purpose (nil: none).
func whyCounts(c [numProbeWhys]uint64) map[string]uint64 {
	var m map[string]uint64
	for i, n := range c {
		if n > 0 {
			if m == nil {
				m = map[string]uint64{}
			}
			m[probeWhyNames[i]] = n
		}
	}
	return m
}
