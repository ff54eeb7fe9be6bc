package live

import (
	"errors"
	"io"
	"math"
	"math/bits"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/hivecast/hivecast/node"

	"github.com/hivecast/hivecast/node/bwlimit"
	"github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// childQueue is how many chunks may wait for one child; a child that falls
// that far behind (its link is slower than the stream) is dropped, so that it
// finds a better parent and never holds back the others.
const childQueue = 128

const protectTag = "hivecast-live"

// child is a peer this node feeds, with the stripes it takes from us.
type child struct {
	id      peer.ID
	set     live.Stripes
	home    int // the child's home stripe of set.K (live.Home), computed once
	q       chan queued
	gone    chan struct{} // closed when the child is dropped
	evicted chan struct{} // closed when a peer of its stripe's tree takes its slot
	once    func()
	// waiting: the child waits for the next start point; chunks before it
	// are not sent, so no uplink is booked for them (a booking given back
	// after later ones were made is lost to the later ones).
	waiting atomic.Bool
}

// queued is a chunk waiting for a child, with its frame: encoded once in
// Stream.add and written as is to every child.
type queued struct {
	c      *pb.LiveChunk
	frame  []byte
	booked *rate.Reservation // the uplink booked for it (with an upload limit)
}

// interior reports whether the child forwards chunk seq further: it is in
// the child's home stripe (live.Home), or the child takes the whole stream.
func (k *child) interior(seq uint64) bool {
	if k.set.K <= 1 {
		return true
	}
	return k.set.Has(seq) && k.home == int(seq%uint64(k.set.K))
}

// push queues c for the child; it reports whether the child was dropped
// for being too slow (its queue full).
func (k *child) push(c queued) (dropped bool) {
	select {
	case k.q <- c:
		return false
	case <-k.gone:
	default:
		k.once() // too slow: drop it
		dropped = true
	}
	c.cancel()
	return dropped
}

func (q queued) cancel() {
	if q.booked != nil {
		q.booked.Cancel()
	}
}

// handlePush serves one child: it validates the request, takes the child or
// redirects it, then pushes chunks until either side closes.
func (s *Service) handlePush(ns network.Stream) {
	p := ns.Conn().RemotePeer()
	if err := ns.Scope().SetService("hivecast.live"); err != nil {
		ns.Reset()
		return
	}
	_ = ns.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := wire.NewReader(ns)
	req, id, err := live.ReadRequest(r)
	if err != nil {
		s.log.Debug("bad live request", "peer", p.String(), "err", err.Error())
		_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{Code: pb.Code_BAD_REQUEST, Message: "malformed request"}}})
		ns.Reset()
		return
	}
	_ = ns.SetReadDeadline(time.Time{})
	st := s.Stream(id)
	if st == nil {
		_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{Code: pb.Code_NOT_FOUND, Message: "not taking part in that stream"}}})
		ns.Close()
		return
	}
	st.serveChild(ns, r, p, req)
}

// Children take at most 1/headroom of the upload rate; the rest is for
// framing, QUIC, heartbeats, probes and bursts. With stripes a parent feeds
// more children, in bursts (a chunk to each in turn), and queueing at 80 %
// made one stripe's path late every few chunks in the simulator (24
// viewers: continuity 0.82 at 1.25, 0.86 at 1.5; docs/benchmarks.md).
const (
	uploadHeadroom        = 1.25
	uploadHeadroomStriped = 1.5
)

// capacityLocked is how much of the stream this node forwards, in streams:
// MaxChildren, or less if the upload rate fits fewer copies of the stream's
// measured bit rate (with some headroom). Children count by the share of the
// stream they take (a child of one stripe of four counts 1/4).
func (st *Stream) capacityLocked() float64 {
	max := float64(st.svc.cfg.MaxChildren)
	if up := st.svc.cfg.UploadRate; up > 0 {
		if st.info == nil || st.info.Bitrate == 0 {
			return min(max, 1) // rate unknown yet: one stream's worth
		}
		h := uploadHeadroom
		if st.k > 1 {
			h = uploadHeadroomStriped
		}
		if byRate := up * 8 / float64(st.info.Bitrate) / h; byRate < max {
			max = byRate
		}
	}
	return max
}

// loadLocked is the share of the stream forwarded to children now.
func (st *Stream) loadLocked() float64 {
	var l float64
	for _, k := range st.children {
		l += k.set.Share()
	}
	return l
}

// slotsLocked reports, in stripes of set.K, the room for children and
// what children take now.
func (st *Stream) slotsLocked(set live.Stripes) (max, used int) {
	k := float64(set.K)
	return int(st.capacityLocked()*k + 1e-9), int(math.Ceil(st.loadLocked()*k - 1e-9))
}

// relevantLocked returns the feeds that bring the stripes of set: one feed
// when set is one of our own stripes, all of them otherwise.
func (st *Stream) relevantLocked(set live.Stripes) []*feed {
	if st.source {
		return nil
	}
	if int(set.K) == st.k && set.Count() == 1 {
		return st.feeds[set.First() : set.First()+1]
	}
	return st.feeds
}

// depthLocked is this node's depth in the delivery trees: 0 for the
// source, the deepest stripe's for a viewer, -1 if a stripe has no parent.
func (st *Stream) depthLocked() int {
	return depthOf(st.source, st.feeds)
}

func depthOf(source bool, feeds []*feed) int {
	if source {
		return 0
	}
	d := 0
	for _, f := range feeds {
		if f.depth < 0 {
			return -1
		}
		d = max(d, f.depth)
	}
	return d
}

// statusLocked tells a child (or a prober) where this node stands for the
// stripes of set.
func (st *Stream) statusLocked(set live.Stripes) *pb.LiveStatus {
	maxSlots, used := st.slotsLocked(set)
	ls := &pb.LiveStatus{LatestSeq: st.latestOfLocked(set), Children: uint32(used), MaxChildren: uint32(maxSlots)}
	if set.K > 1 {
		ls.Pushable = uint32(st.pushableLocked())
	}
	if st.info != nil {
		ls.Bitrate = st.info.Bitrate
	}
	feeds := st.relevantLocked(set)
	if d := depthOf(st.source, feeds); d >= 0 {
		ls.Depth = uint32(d)
	} else {
		ls.Depth = live.MaxAncestors + 1 // not attached: nobody should count on us
	}
	for _, f := range feeds {
		for _, a := range f.ancestors {
			ls.Ancestors = append(ls.Ancestors, []byte(a))
		}
		if f.parent != "" {
			ls.Ancestors = append(ls.Ancestors, []byte(f.parent))
		}
	}
	if len(ls.Ancestors) > live.MaxAncestors {
		ls.Ancestors = ls.Ancestors[len(ls.Ancestors)-live.MaxAncestors:]
	}
	return ls
}

// latestOfLocked is the newest chunk held of the stripes of set. (The
// newest chunk of any stripe would make a parent that is itself looking for
// a new parent of one stripe look stalled to all its children of that
// stripe, who would then all leave it at once.)
func (st *Stream) latestOfLocked(set live.Stripes) uint64 {
	if !st.have {
		return 0
	}
	for q, n := st.latest, 0; n < live.MaxStripes; q, n = q-1, n+1 {
		if set.Has(q) && st.getLocked(q) != nil {
			return q
		}
		if q == 0 {
			break
		}
	}
	return 0
}

// redirectLocked lists our children for a child we cannot take: first those
// whose home stripe is the one it asks for (they forward it).
func (st *Stream) redirectLocked(set live.Stripes, n int) *pb.Redirect {
	type alt struct {
		id   peer.ID
		home bool
	}
	var alts []alt
	seen := map[peer.ID]bool{}
	for key := range st.children {
		if id := key.id; !seen[id] {
			seen[id] = true
			alts = append(alts, alt{id, live.Home([]byte(id), int(set.K)) == set.First()})
		}
	}
	sort.Slice(alts, func(i, j int) bool {
		if alts[i].home != alts[j].home {
			return alts[i].home
		}
		return alts[i].id < alts[j].id
	})
	depth := depthOf(st.source, st.relevantLocked(set)) + 1
	rd := &pb.Redirect{}
	for _, a := range alts {
		if len(rd.Peers) >= min(n, live.MaxRedirect) {
			break
		}
		rd.Peers = append(rd.Peers, &pb.LivePeer{Peer: node.PeerRecord(st.svc.h, a.id), Depth: uint32(max(depth, 0)), Spare: 1})
	}
	return rd
}

// attachedLocked reports whether this node receives every stripe of set
// (or has received some of it): it must not take children for a stripe it
// is still looking for, or two such peers could feed each other nothing.
func (st *Stream) attachedLocked(set live.Stripes) bool {
	for _, f := range st.relevantLocked(set) {
		if f.parent == "" && !f.have {
			return false
		}
	}
	return true
}

// How many peers a redirect lists: a probe is frequent and only needs a few
// to learn of (every standby probe of every viewer would otherwise carry the
// prober's whole list of children, kilobytes from the busiest peers); a
// refused child needs enough to find room one level down.
const (
	probeRedirect   = 4
	refusalRedirect = 16
)

// maxQueuedAge: a chunk captured this much before the newest chunk held is
// not sent to a child any more (source clock differences only).
const maxQueuedAge = time.Second

// childKeepalive: a child sends an empty LiveRequest every heartbeat; one
// silent this long is gone (a host that dies does not close its
// connections), and its slot is freed for the orphans looking for a parent.
// Shorter than a striped child's stall timeout (500 ms and the stripes'
// spacing), so that the slot is free when the dead child's own children
// fail over and ask for it first (standbys); at 1 s they found it taken and
// settled deeper, and the source's freed slots stayed idle (docs/benchmarks.md,
// 2026-12-08).
const childKeepalive = 500 * time.Millisecond

// childKey names one subscription: a peer may take different stripes from
// us over different subscriptions.
type childKey struct {
	id   peer.ID
	k    uint32
	mask uint32
}

// evictableLocked returns a child subscription that may make room for p's
// subscription to set, or nil: p must be asking for its home stripe, and the
// victim be a child of a single stripe that is not its own home stripe
// (one of set's stripe first).
//
// At the source, the children are the roots of the stripes' trees: the only
// child of a stripe is never pushed down (every peer of that stripe hangs
// from it), and a request for a stripe that has no child here (its root
// left or vanished) takes the slot of a child of a stripe with two or more,
// whatever the requester's home stripe, so that no stripe stays without a
// tree while viewers leave the source alone.
func (st *Stream) evictableLocked(p peer.ID, set live.Stripes) *childKey {
	if set.K <= 1 || set.Count() != 1 {
		return nil
	}
	var t takers
	if st.source {
		t = st.takersLocked()
	}
	rootless := st.source && t.of(set) == 0
	if !rootless && live.Home([]byte(p), int(set.K)) != set.First() {
		return nil
	}
	var best *childKey
	bestSame, bestPush := false, false
	for key, k := range st.children {
		push := k.pushable()
		single := k.set.K == set.K && k.set.Count() == 1
		if !push && !(rootless && single) {
			continue
		}
		if st.source && t.of(k.set) <= 1 {
			continue // a stripe's only root
		}
		same := k.set.K == set.K && k.set.Mask == set.Mask
		better := best == nil ||
			(push && !bestPush) ||
			(push == bestPush && same && !bestSame) ||
			(push == bestPush && same == bestSame && key.id < best.id)
		if better {
			key := key
			best, bestSame, bestPush = &key, same, push
		}
	}
	return best
}

// takers counts the children taking each stripe: those of the whole
// stream take every stripe, the others by (K, stripe index).
type takers struct {
	whole int
	by    map[[2]uint32]int
}

// of counts the children taking the first stripe of set.
func (t takers) of(set live.Stripes) int {
	return t.whole + t.by[[2]uint32{set.K, uint32(set.First())}]
}

// takersLocked counts, once per decision, the children taking each stripe.
func (st *Stream) takersLocked() takers {
	t := takers{by: map[[2]uint32]int{}}
	for _, k := range st.children {
		if k.set.K <= 1 {
			t.whole++
			continue
		}
		for m := k.set.Mask; m != 0; m &= m - 1 {
			t.by[[2]uint32{k.set.K, uint32(bits.TrailingZeros32(m))}]++
		}
	}
	return t
}

// pushable reports whether a peer asking for its own home stripe may take
// k's slot: k takes one stripe here, not its home stripe.
func (k *child) pushable() bool {
	return k.set.K > 1 && k.set.Count() == 1 && k.home != k.set.First()
}

// pushableLocked counts the children a peer asking for its own home stripe
// could push down (LiveStatus.pushable).
func (st *Stream) pushableLocked() int {
	var t takers
	if st.source {
		t = st.takersLocked() // its only root of a stripe is not pushable
	}
	n := 0
	for _, k := range st.children {
		if k.pushable() && !(st.source && t.of(k.set) <= 1) {
			n++
		}
	}
	return n
}

// isChildLocked reports whether p takes any stripe from us.
func (st *Stream) isChildLocked(p peer.ID) bool {
	for key := range st.children {
		if key.id == p {
			return true
		}
	}
	return false
}

func (st *Stream) serveChild(ns network.Stream, r *wire.Reader, p peer.ID, req *pb.LiveRequest) {
	if len(req.Fetch) > 0 {
		st.serveFetch(ns, req.Fetch)
		return
	}
	set := live.StripeSet(req.Stripes, req.StripeMask)
	st.mu.Lock()
	if req.Probe {
		st.probesIn++
		status, rd := st.statusLocked(set), st.redirectLocked(set, probeRedirect)
		if st.info == nil {
			status.Depth = live.MaxAncestors + 1
		}
		st.mu.Unlock()
		_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_Status{Status: status}})
		_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_Redirect{Redirect: rd}})
		_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{Code: pb.Code_OK, Message: "probe"}}})
		ns.Close()
		return
	}
	isAncestor := false
	for _, f := range st.relevantLocked(set) {
		if p == f.parent || slices.Contains(f.ancestors, p) {
			isAncestor = true
		}
	}
	already := false
	for key, k := range st.children {
		if key.id == p && (key.k != set.K || k.set.Mask&set.Mask != 0) {
			already = true // a peer takes each stripe from one parent
		}
	}
	attached := st.info != nil && st.attachedLocked(set)
	maxSlots, used := st.slotsLocked(set)
	if used+set.Count() > maxSlots && attached && !isAncestor && !already {
		// Full. A peer whose home stripe this is forwards it further: it
		// takes the slot of a child that only consumes a stripe here (that
		// one moves to a peer of its stripe's tree; SplitStream's pushdown).
		if v := st.evictableLocked(p, set); v != nil {
			st.evictions++
			close(st.children[*v].evicted)
			delete(st.children, *v)
			maxSlots, used = st.slotsLocked(set)
		}
	}
	if !attached || isAncestor || already || used+set.Count() > maxSlots || st.ctx.Err() != nil {
		why := "no room"
		switch {
		case !attached:
			why = "not receiving the stream yet"
		case isAncestor:
			why = "you feed this node: that would be a loop"
		case already:
			why = "already feeding you"
		}
		st.refusals++
		st.svc.log.Debug("subscription refused", "peer", p.String(), "why", why, "slots_used", used, "slots", maxSlots, "from_latest", req.FromLatest)
		rd := st.redirectLocked(set, refusalRedirect)
		st.mu.Unlock()
		_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_Redirect{Redirect: rd}})
		_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{Code: pb.Code_BUSY, Message: why}}})
		ns.Close()
		return
	}
	key := childKey{id: p, k: set.K, mask: set.Mask}
	k := &child{id: p, set: set, home: live.Home([]byte(p), int(set.K)), q: make(chan queued, childQueue), gone: make(chan struct{}), evicted: make(chan struct{})}
	var dropOnce bool
	k.once = func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		if !dropOnce {
			dropOnce = true
			close(k.gone)
			delete(st.children, key)
		}
	}
	info := st.info
	backlog := st.backlogLocked(req.FromSeq, req.FromLatest)
	// A child starting at the newest start point waits for the next one if
	// there is none to start from: whichever stripe it falls in.
	waitStart := req.FromLatest && len(backlog) == 0
	k.waiting.Store(waitStart)
	backlog = slices.DeleteFunc(backlog, func(c *pb.LiveChunk) bool { return !set.Has(c.Seq) })
	status := st.statusLocked(set)
	st.children[key] = k
	st.subsIn++
	st.wg.Add(1)
	st.mu.Unlock()
	st.svc.h.ConnManager().Protect(p, protectTag)
	defer st.wg.Done()
	defer func() {
		k.once()
		for drained := false; !drained; { // give back the uplink booked for what will not be sent
			select {
			case q := <-k.q:
				q.cancel()
			default:
				drained = true
			}
		}
		st.mu.Lock()
		still := st.isChildLocked(p) // another subscription of p (another stripe)
		st.mu.Unlock()
		if !still {
			st.svc.h.ConnManager().Unprotect(p, protectTag)
		}
	}()

	// Notice the child leaving: it closes the stream, or stops sending its
	// keepalives.
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer k.once()
		for {
			_ = ns.SetReadDeadline(time.Now().Add(childKeepalive))
			if err := r.ReadMsg(&pb.LiveRequest{}, live.MaxPushRequest); err != nil {
				return
			}
		}
	}()
	defer func() {
		select {
		case <-readerDone:
		case <-time.After(2 * time.Second):
		}
		ns.Reset()
		<-readerDone
	}()

	// Chunks go through the upload limiter (w), unless their uplink was
	// booked in Stream.forward; control messages (heartbeats) skip it.
	w := bwlimit.Writer(st.ctx, ns, st.svc.cfg.Upload)
	write := func(dst io.Writer, buf []byte, chunk bool) error {
		_ = ns.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := dst.Write(buf)
		if chunk && err == nil {
			st.mu.Lock()
			st.noteSentLocked(len(buf))
			st.mu.Unlock()
		}
		return err
	}
	sendVia := func(dst io.Writer, m *pb.LiveMessage) error {
		buf, err := wire.AppendFrame(nil, m)
		if err != nil {
			return err
		}
		return write(dst, buf, m.GetChunk() != nil)
	}
	send := func(m *pb.LiveMessage) error { return sendVia(w, m) }
	fail := func(err error) {
		if !errors.Is(err, errEnded) {
			st.svc.log.Debug("child dropped", "peer", p.String(), "err", err.Error())
		}
		ns.Reset()
	}
	if err := send(&pb.LiveMessage{Msg: &pb.LiveMessage_Info{Info: info}}); err != nil {
		fail(err)
		return
	}
	if err := send(&pb.LiveMessage{Msg: &pb.LiveMessage_Status{Status: status}}); err != nil {
		fail(err)
		return
	}
	next := uint64(0)
	sent := false
	var backlogBytes uint64
	for _, c := range backlog {
		if err := send(&pb.LiveMessage{Msg: &pb.LiveMessage_Chunk{Chunk: c}}); err != nil {
			fail(err)
			return
		}
		backlogBytes += uint64(len(c.Data))
		next, sent = c.Seq+1, true
	}
	st.mu.Lock()
	st.backlogOut += backlogBytes
	st.mu.Unlock()
	hb := time.NewTicker(st.svc.cfg.Heartbeat)
	defer hb.Stop()
	// deliver writes a chunk's frame (past the limiter if its uplink is
	// booked) and reports whether the subscription is over (the End chunk).
	deliver := func(qc queued) (bool, error) {
		dst := w
		if qc.booked != nil {
			dst = ns
		}
		if err := write(dst, qc.frame, true); err != nil {
			return true, err
		}
		if qc.c.Seq >= next {
			next, sent = qc.c.Seq+1, true
		}
		if qc.c.Flags&live.FlagEnd != 0 {
			_ = send(&pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{Code: pb.Code_OK, Message: "end of stream"}}})
			_ = ns.CloseWrite()
			return true, nil
		}
		return false, nil
	}
	// A chunk waiting for its booked turn on the uplink; heartbeats go on
	// meanwhile (a child that hears nothing for its stall timeout leaves).
	var pend queued
	var pendC <-chan time.Time
	pendT := time.NewTimer(time.Hour)
	pendT.Stop()
	defer pendT.Stop()
	for {
		q := k.q
		if pendC != nil {
			q = nil
		}
		select {
		case <-st.ctx.Done():
			ns.Reset()
			return
		case <-k.gone:
			ns.Reset()
			return
		case <-k.evicted:
			st.mu.Lock()
			rd := st.redirectLocked(set, refusalRedirect)
			st.mu.Unlock()
			_ = send(&pb.LiveMessage{Msg: &pb.LiveMessage_Redirect{Redirect: rd}})
			_ = send(&pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{Code: pb.Code_BUSY, Message: "slot taken by a peer that forwards this stripe"}}})
			_ = ns.CloseWrite()
			return
		case <-pendC:
			pendC = nil
			if done, err := deliver(pend); done {
				if err != nil {
					fail(err)
				}
				return
			}
		case qc := <-q:
			c := qc.c
			if c.Flags&live.FlagEnd == 0 {
				st.mu.Lock()
				stale := st.staleLocked(c)
				if stale {
					st.staleSkips++
				}
				st.mu.Unlock()
				if stale {
					// Chunks much older than the newest we hold came in a
					// burst (our parent catching up after a stall): sending
					// them on would pass the burst down the tree, each level
					// at its fan-out, and hold every later chunk behind them.
					qc.cancel()
					continue
				}
			}
			if sent && c.Seq < next && c.Flags&live.FlagEnd == 0 {
				qc.cancel()
				continue // already in the backlog
			}
			if waitStart {
				if c.Flags&(live.FlagStart|live.FlagEnd) == 0 {
					qc.cancel()
					continue
				}
				waitStart = false
				k.waiting.Store(false)
			}
			if c.Flags&live.FlagEnd == 0 && !set.Has(c.Seq) {
				qc.cancel()
				continue // another stripe
			}
			if qc.booked != nil {
				// Its turn on the uplink, booked in Stream.forward.
				if d := qc.booked.Delay(); d > 0 {
					pend = qc
					pendT.Reset(d)
					pendC = pendT.C
					continue
				}
			}
			if done, err := deliver(qc); done {
				if err != nil {
					fail(err)
				}
				return
			}
		case <-hb.C:
			st.mu.Lock()
			status := st.statusLocked(set)
			st.mu.Unlock()
			// Heartbeats skip the upload limiter: they are tiny, and one
			// queued behind the chunks booked for other children would
			// make this child think us stalled.
			if err := sendVia(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_Status{Status: status}}); err != nil {
				fail(err)
				return
			}
		}
	}
}
