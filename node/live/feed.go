package live

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/hivecast/hivecast/player"
	"github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// feed keeps one stripe of a viewer's stream coming: one parent at a time,
// switched when it stalls, fails, redirects us or a better one has room.
// Its fields are guarded by the stream's mutex.
type feed struct {
	st  *Stream
	idx int // the stripe
	// own: this stripe is our home stripe (K > 1), the one a full parent
	// makes room in for us by pushing a child down (setOwnHome).
	own bool

	parent       peer.ID
	depth        int // hops from the source in this stripe's tree; -1 unknown
	ancestors    []peer.ID
	parentLatest uint64 // newest chunk of this stripe the parent announced
	latest       uint64 // newest chunk of this stripe we hold
	latestCap    int64  // its capture time, µs (source clock)
	have         bool
	// delay is a moving average of this stripe's arrival delay (arrival −
	// capture; across machines it includes their clock offset).
	delay      time.Duration
	everParent bool
	move       func() // cancels the current subscription to move up the tree
	// moveTo is the parent a move goes to (checked by a probe just before);
	// moveBack the parent left, tried next if moveTo turned out full.
	moveTo, moveBack peer.ID
	// lost is the parent this stripe last lost (it stalled or failed):
	// until the stripe has a parent again, candidates fed through it are
	// orphans too, and tried last.
	lost peer.ID
	// seeking: since when the stripe has had no parent (zero while it has
	// one); one seeking for sourceAfter may ask the source.
	seeking time.Time
	// Join steps (Stats): when the stripe's first chunk came, and how many
	// subscriptions it tried before that (refused, failed or stalled ones
	// included).
	firstAt time.Time
	tries   int
	// statusAt: the parent's last status (its heartbeat); newAt: when the
	// stripe's newest chunk last moved on (repair.go's starving).
	statusAt, newAt time.Time
	// fast is the sliding minimum of the stripe's arrival delays: its
	// usual delay (usualLocked, repair.go).
	fast player.MinWindow
}

// orphanedLocked reports whether candidate c was, when last probed, fed
// through the parent this stripe has just lost. Hosts die together (a
// relay's children are the obvious standbys of each other, and all lost
// the same parent): subscribing to a sibling orphan waits for its own
// failover, and what it then sends is late.
//
// A candidate probed since the loss that holds nothing newer than we do is
// starving too (it lost its own parent in the same event, a parent we did
// not know it had).
func (f *feed) orphanedLocked(c *candidate) bool {
	st := f.st
	if f.lost == "" || f.parent != "" {
		return false
	}
	if slices.Contains(c.path, f.lost) {
		return true
	}
	fresh := st.svc.cfg.Now().Sub(c.probedAt) < time.Second
	return fresh && st.have && c.depth != 0 && c.latest+uint64(max(st.k, 1)-1) <= st.latest
}

func (f *feed) set() live.Stripes { return live.One(f.idx, f.st.k) }

// roomLocked is candidate c's room for this stripe, as last probed (-1:
// unknown): its free slots, and when this stripe is our own home stripe
// also the children it would push down to take us (SplitStream's
// pushdown: a peer that forwards the stripe belongs higher in its tree
// than one that only consumes it).
func (f *feed) roomLocked(c *candidate) int {
	if c.spare < 0 {
		return -1
	}
	if f.own {
		return c.spare + c.pushable
	}
	return c.spare
}

// freshRoomLocked reports whether candidate c said it has room for this
// stripe in a probe answer younger than probeFresh, and has not refused or
// failed us since.
func (f *feed) freshRoomLocked(c *candidate, now time.Time) bool {
	return c.fails == 0 && f.roomLocked(c) > 0 && !c.probedAt.IsZero() && now.Sub(c.probedAt) < probeFresh
}

// setOwnHome marks the feed of self's home stripe (striped streams only).
func (st *Stream) setOwnHome(self peer.ID) {
	if st.k <= 1 {
		return
	}
	home := live.Home([]byte(self), st.k)
	for _, f := range st.feeds {
		f.own = f.idx == home
	}
}

// homeOf reports whether stripe f is candidate c's home stripe, or c is
// the source (depth 0 in every stripe): a parent that forwards this stripe
// first.
func (f *feed) homeOf(c *candidate) bool {
	return c.home == f.idx || c.depth == 0
}

// scored is a candidate parent and its score (lower is better); tie orders
// equal scores (pairHash: each viewer its own order).
type scored struct {
	id    peer.ID
	score int
	tie   uint32
}

// byScore returns the ids of the n best of list (n < 0: all), best first,
// equal scores by tie, then by peer ID so that every run orders them alike.
func byScore(list []scored, n int) []peer.ID {
	sort.Slice(list, func(i, j int) bool {
		if list[i].score != list[j].score {
			return list[i].score < list[j].score
		}
		if list[i].tie != list[j].tie {
			return list[i].tie < list[j].tie
		}
		return list[i].id < list[j].id
	})
	if n < 0 || n > len(list) {
		n = len(list)
	}
	ids := make([]peer.ID, 0, n)
	for _, c := range list[:n] {
		ids = append(ids, c.id)
	}
	return ids
}

// pick chooses the next parent for the stripe: a peer whose home stripe it
// is and closest to the source (unknown depth counts as deep), with room,
// not one of our children, not failed in the last few seconds. Peers of
// other home stripes are the fallback.
func (f *feed) pick(now time.Time) (peer.ID, bool) {
	st := f.st
	self := st.svc.h.ID()
	st.mu.Lock()
	defer st.mu.Unlock()
	var list []scored
	for id, c := range st.cands {
		if st.isChildLocked(id) || st.skipSourceLocked(id, c, f, now) {
			continue
		}
		backoff := time.Duration(min(c.fails, 5)) * 500 * time.Millisecond
		if c.fails > 0 && now.Sub(c.failedAt) < backoff {
			continue
		}
		home := f.homeOf(c)
		d, spare := c.depth, f.roomLocked(c)
		if home && spare <= 0 && recentlyFullLocked(c, now) {
			// Known to have no room: asking would only be refused (and a
			// flash crowd asking the source again and again took its
			// uplink from the video; docs/benchmarks.md).
			continue
		}
		if !home {
			// Its depth and room are those of its own home stripe.
			d, spare = -1, -1
		}
		if d < 0 {
			d = 32
		}
		score := d * 4
		if !home {
			score += 16
		}
		if spare == 0 {
			score += 64
		}
		if f.orphanedLocked(c) {
			score += 256
		}
		if f.lost != "" && f.parent == "" && now.Sub(c.probedAt) > failoverProbe+100*time.Millisecond {
			// Failing over: those that just answered the standby check
			// first; one that did not may be as dead as our parent.
			score += 32
		}
		score += c.fails * 8
		if now.Sub(c.probedAt) > 3*time.Second {
			score += 8 // not known to be alive lately
		}
		if st.svc.h.Network().Connectedness(id) != network.Connected {
			// A peer we have no connection to may be gone (a killed host
			// does not close its connections); try live ones first, since
			// a dial to a dead address costs the dial timeout.
			score += 16
		}
		// Among equals, an order of our own: a flash crowd that probed the
		// same peers would otherwise all ask the same one, and all but the
		// first few be refused.
		list = append(list, scored{id, score, pairHash(self, id)})
	}
	if best := byScore(list, 1); len(best) > 0 {
		return best[0], true
	}
	return "", false
}

// run keeps one parent feeding the stripe: it subscribes to the best
// candidate and, when that parent stalls, fails or redirects us, moves to
// the next.
func (f *feed) run() {
	st := f.st
	defer st.wg.Done()
	lostParent := false
	for st.ctx.Err() == nil {
		st.mu.Lock()
		ended, attached := st.ended, f.parent != ""
		if !attached && f.seeking.IsZero() {
			f.seeking = st.svc.cfg.Now()
		}
		st.mu.Unlock()
		if ended {
			return
		}
		// Taken before looking at the candidates, so that one added
		// meanwhile is not missed.
		added := st.candsAddedChan()
		var standby peer.ID
		if !attached {
			if !lostParent {
				now := st.svc.cfg.Now()
				if known, at := f.roomKnown(now); !known {
					st.joinProbe(f, joinProbes)
				} else if wait := joinProbeGrace - now.Sub(at); wait > 0 {
					// Room is known from an answer just in (a neighbour's,
					// asked beside the DHT lookup): give the peers asked
					// with it the grace a join probe gives, since one
					// closer to the source may be about to answer. Without
					// it, a viewer took the first neighbour that answered
					// one hop below a source with room, and stayed there.
					select {
					case <-st.ctx.Done():
						return
					case <-time.After(wait):
					}
				}
			} else {
				// Failover: the standbys were alive a second ago, but hosts
				// that die together (a rack, a NAT, a third of a swarm) die
				// together: check the best few at once, briefly; a live peer
				// on a LAN answers in milliseconds.
				standby = st.checkStandbys(f, 8, 2)
				if standby == "" {
					// None of the best eight is alive with room (a third of
					// the swarm may have died at once): check more.
					standby = st.checkStandbys(f, 24, 4)
				}
			}
		}
		p, ok := standby, standby != ""
		if !ok {
			p, ok = f.nextMoveTarget()
		}
		if !ok {
			p, ok = f.pick(st.svc.cfg.Now())
		}
		if !ok {
			// Nobody to try: wait for a candidate (the DHT lookup of a
			// join, a redirect), or retry the backed-off ones in a while
			// (those known full wait for fullRecheck).
			select {
			case <-st.ctx.Done():
				return
			case <-added:
			case <-time.After(pickRetry):
			}
			continue
		}
		if lostParent {
			st.svc.log.Info("failing over", "stream", st.id.String(), "stripe", f.idx, "parent", p.String())
		} else {
			st.svc.log.Debug("subscribing", "stream", st.id.String(), "stripe", f.idx, "parent", p.String())
		}
		st.mu.Lock()
		if f.firstAt.IsZero() {
			f.tries++
		}
		st.mu.Unlock()
		err := f.subscribe(p)
		st.mu.Lock()
		if f.parent == p {
			f.parent = ""
		}
		c := st.cands[p]
		voluntary := errors.Is(err, errMove)
		if !errors.Is(err, errUnreachable) {
			// A peer we could not reach never was our parent: a stripe
			// that was joining goes on joining, one failing over goes on
			// failing over from the parent it lost. Taken as a loss, a
			// joiner's dial that its own peer bound or a full peer refused
			// set off a failover's check of 8 and 24 standbys, most of
			// whose dials were refused in turn: at 100 viewers bound to 32
			// peers, 250 of 260 "failovers" (docs/benchmarks.md).
			lostParent = err != nil && !voluntary && !errors.Is(err, errBusy)
			if lostParent {
				f.lost = p
			}
		}
		if p == f.moveTo {
			f.moveTo = ""
			if !errors.Is(err, errBusy) && !errors.Is(err, errUnreachable) {
				f.moveBack = "" // it took us: no going back
			}
		}
		if err != nil && c != nil && !voluntary {
			c.fails++
			c.failedAt = st.svc.cfg.Now()
		}
		st.mu.Unlock()
		if err != nil && st.ctx.Err() == nil && !errors.Is(err, errEnded) {
			log := st.svc.log.Debug
			if lostParent && f.everParent {
				log = st.svc.log.Info // a failover: worth seeing in a daemon's log
			}
			log("parent lost", "stream", st.id.String(), "stripe", f.idx, "peer", p.String(), "err", err.Error())
		}
	}
}

// roomKnown reports whether a candidate answered a probe lately
// (probeFresh) with room in stripe f, where f is its home, and has not
// failed since: one a join subscribes to without probing more peers. A
// joiner refused by one parent probed eight more before trying the next it
// already knew to have room, each probe of a peer it held no connection to
// a dial and a handshake at both ends: in a flash crowd of 1,000 viewers
// bound to 64 peers, 53,000 join probes in the first 12 s, 93 % of them
// dials (docs/benchmarks.md, 2026-12-06).
func (f *feed) roomKnown(now time.Time) (known bool, first time.Time) {
	st := f.st
	st.mu.Lock()
	defer st.mu.Unlock()
	for id, c := range st.cands {
		if f.homeOf(c) && f.freshRoomLocked(c, now) && !st.isChildLocked(id) && !st.skipSourceLocked(id, c, f, now) {
			if !known || c.probedAt.Before(first) {
				known, first = true, c.probedAt
			}
		}
	}
	return known, first
}

// pickRetry: how long a stripe with no candidate to try waits before
// looking again, if no new candidate comes first.
const pickRetry = 200 * time.Millisecond

// nextMoveTarget returns the parent a move goes to, then (if that one had
// no room) the parent it left, whose slot we just freed.
func (f *feed) nextMoveTarget() (peer.ID, bool) {
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	if f.moveTo != "" {
		return f.moveTo, true
	}
	if f.moveBack != "" {
		p := f.moveBack
		f.moveBack = ""
		return p, true
	}
	return "", false
}

// failoverProbe bounds the check of standby parents after a parent is lost.
const failoverProbe = 150 * time.Millisecond

// checkStandbys checks up to n standby parents of f at once, at most
// strangers of them peers we hold no connection to, and returns the first
// that answers that it has room and chunks newer than ours ("" if none does
// within failoverProbe): a dead standby must not hold up the failover to a
// live one. A stranger costs a handshake at both ends and, at a peer bound,
// a connection each end closes; it seldom answers within failoverProbe
// anyway (a dial and a probe are two round trips), though its answer is
// kept for the next pick. Unbounded, failovers in a crowd of 300 bound to
// 64 peers dialled 1,000-2,700 strangers a second (docs/benchmarks.md).
func (st *Stream) checkStandbys(f *feed, n, strangers int) peer.ID {
	ids, _ := st.fewStrangers(st.standbys(f, -1, false), n, strangers)
	return st.probeFirst(ids, probeFailover, failoverProbe, failoverProbe+20*time.Millisecond, 0, func(c *candidate) bool {
		return c.fails == 0 && f.roomLocked(c) > 0 && f.homeOf(c) && !f.orphanedLocked(c) &&
			st.svc.cfg.Now().Sub(c.probedAt) < failoverProbe+100*time.Millisecond
	})
}

var (
	errStall = errors.New("parent stalled")
	errLoop  = errors.New("parent is fed by us (loop)")
	errBusy  = errors.New("parent has no room")
	errMove  = errors.New("moving to a better parent")
	// No stream to the peer: the dial or the protocol's negotiation
	// failed (a peer bound at either end, a dead or unknown address).
	errUnreachable = errors.New("peer unreachable")
)

// subscribe receives the stripe from p until it stalls, fails or ends.
func (f *feed) subscribe(p peer.ID) error {
	st := f.st
	cfg := st.svc.cfg
	ctx, cancel := context.WithCancelCause(st.ctx)
	defer cancel(nil)
	st.mu.Lock()
	f.move = func() { cancel(errMove) }
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		f.move = nil
		st.mu.Unlock()
	}()
	// The connection to a parent carries video: the connection manager
	// must not trim it when the node has many peers (the parent protects
	// it on its side, but each side's manager trims on its own), and a
	// node at its peer bound dials it all the same (node.PeerCap).
	tag := parentTag(st.id, f.idx)
	st.svc.h.ConnManager().Protect(p, tag)
	defer st.svc.h.ConnManager().Unprotect(p, tag)
	// Opening a stream on a live connection is immediate; dialling a peer
	// on a LAN takes milliseconds. Give up quickly: the jitter buffer has
	// only a few hundred milliseconds to spare after a parent is lost.
	octx, ocancel := context.WithTimeout(ctx, time.Second)
	ns, err := st.svc.h.NewStream(octx, p, ID)
	ocancel()
	if err != nil {
		return fmt.Errorf("%w: %w", errUnreachable, err)
	}
	defer ns.Reset()
	_ = ns.Scope().SetService("hivecast.live")
	set := f.set()
	st.mu.Lock()
	req := &pb.LiveRequest{Stream: st.id.Bytes()}
	if set.K > 1 {
		req.Stripes, req.StripeMask = set.K, set.Mask
	}
	switch {
	case f.have:
		req.FromSeq = f.latest + 1
	case st.have:
		req.FromSeq = st.baseSeq
	default:
		req.FromLatest = true
	}
	if st.have && !req.FromLatest {
		// Never ask for more than the jitter buffer can still play: an old
		// from_seq (a stripe without a parent for a while) would make the
		// parent send seconds of backlog, late for us and delaying all its
		// other children behind it on its uplink.
		back := uint64(max(2*cfg.Latency/max(cfg.ChunkDuration, time.Millisecond), 4))
		if st.latest+1 > back && req.FromSeq < st.latest+1-back {
			req.FromSeq = st.latest + 1 - back
		}
	}
	st.mu.Unlock()
	if err := wire.WriteMsg(ns, req); err != nil {
		return fmt.Errorf("%w: %w", errUnreachable, err)
	}
	// Keepalives: an empty request every heartbeat tells the parent we are
	// still here (it frees the slot of a child that went silent).
	kaDone := make(chan struct{})
	go func() {
		defer close(kaDone)
		t := time.NewTicker(cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if wire.WriteMsg(ns, &pb.LiveRequest{}) != nil {
				return
			}
		}
	}()
	defer func() { cancel(nil); ns.Reset(); <-kaDone }()
	// Watchdog: a parent that sends nothing (not a byte) for StallTimeout,
	// or only heartbeats while it has chunks we lack, is dropped.
	lastMsg := make(chan bool, 64) // true: a new chunk
	// A stripe's chunks come K chunk durations apart.
	stallAfter := cfg.StallTimeout + time.Duration(max(st.k, 1)-1)*cfg.ChunkDuration
	stalled := make(chan struct{})
	var got atomic.Int64 // bytes read from the parent
	go func() {
		var quiet silence
		// The first answer comes at once from a live parent: a stall
		// timeout plus a few round trips. (A dead one looks connected
		// until liveness notices, seconds later.)
		first := min(time.Second, cfg.StallTimeout+4*st.svc.h.Peerstore().LatencyEWMA(p))
		t := time.NewTimer(first)
		defer t.Stop()
		lastChunk := cfg.Now()
		fed := !req.FromLatest
		for {
			select {
			case <-ctx.Done():
				ns.Reset()
				return
			case isChunk := <-lastMsg:
				if isChunk {
					lastChunk, fed = cfg.Now(), true
				}
				st.mu.Lock()
				// Before its first chunk a parent asked for the newest start
				// point may be waiting for the next one; heartbeats alone
				// keep it then (we may hold chunks of the stripe already:
				// repair fetches).
				behind := fed && f.have && f.parentAheadLocked()
				st.mu.Unlock()
				if behind && cfg.Now().Sub(lastChunk) > stallAfter {
					close(stalled)
					ns.Reset()
					return
				}
				quiet.message(got.Load())
				if !t.Stop() {
					select {
					case <-t.C:
					default:
					}
				}
				t.Reset(cfg.StallTimeout)
			case <-t.C:
				if !quiet.silent(got.Load()) {
					// Bytes are coming: a large chunk (a keyframe) paced
					// out by the parent's upload limit, not a silence.
					t.Reset(cfg.StallTimeout)
					continue
				}
				close(stalled)
				ns.Reset()
				return
			}
		}
	}()
	r := wire.NewReader(&countingReader{r: ns, n: &got})
	// A peer that never answered never was our parent (its host may be
	// gone, its connection still looking open).
	answered := false
	for {
		m, err := live.ReadMessage(r)
		if err != nil {
			select {
			case <-stalled:
				err = errStall
			default:
				if errors.Is(context.Cause(ctx), errMove) {
					return errMove
				}
			}
			if errors.Is(err, live.ErrBadPush) {
				st.ban(p, err)
			}
			if !answered {
				return fmt.Errorf("%w: %w", errUnreachable, err)
			}
			return err
		}
		answered = true
		isChunk := false
		switch x := m.Msg.(type) {
		case *pb.LiveMessage_Info:
			st.mu.Lock()
			have := st.verifier != nil
			st.mu.Unlock()
			if !have {
				v, err := live.NewVerifier(st.id, x.Info)
				if err != nil {
					st.ban(p, err)
					return err
				}
				st.setInfo(x.Info, v)
			}
		case *pb.LiveMessage_Chunk:
			st.mu.Lock()
			v := st.verifier
			st.mu.Unlock()
			if v == nil {
				st.ban(p, errors.New("chunk before stream info"))
				return errors.New("protocol violation: chunk before info")
			}
			if err := v.Verify(x.Chunk); err != nil {
				st.ban(p, err)
				return err
			}
			// A chunk we have (a repair fetch brought it first) still
			// shows the parent feeding us.
			st.add(x.Chunk)
			isChunk = true
			if st.firstFrom(p) {
				st.svc.provide(st)
			}
		case *pb.LiveMessage_Status:
			if containsPeer(x.Status.Ancestors, st.svc.h.ID()) {
				return errLoop
			}
			st.mu.Lock()
			if f.parent != p {
				if f.everParent {
					st.switches++
				}
				f.everParent = true
				f.parent = p
			}
			f.seeking = time.Time{}
			f.statusAt = cfg.Now()
			f.depth = int(x.Status.Depth) + 1
			f.ancestors = f.ancestors[:0]
			for _, a := range x.Status.Ancestors {
				if id, err := peer.IDFromBytes(a); err == nil {
					f.ancestors = append(f.ancestors, id)
				}
			}
			f.parentLatest = x.Status.LatestSeq
			if b := x.Status.Bitrate; b > 0 && st.info != nil && st.info.Bitrate != b {
				// The source's measured rate, relayed down the tree (a hint that
				// sizes our own number of children).
				info := proto.Clone(st.info).(*pb.StreamInfo)
				info.Bitrate = b
				st.info = info
			}
			if c := st.cands[p]; c != nil {
				c.fails = 0
				if x.Status.Depth == 0 || c.home == f.idx {
					c.noteRoom(x.Status)
					c.path = append(c.path[:0], f.ancestors...)
				}
			}
			st.mu.Unlock()
		case *pb.LiveMessage_Redirect:
			st.addRedirect(x.Redirect)
		case *pb.LiveMessage_End:
			if x.End.Code == pb.Code_OK {
				return errEnded
			}
			if x.End.Code == pb.Code_BUSY {
				st.mu.Lock()
				if c := st.cands[p]; c != nil && f.homeOf(c) {
					c.spare, c.pushable = 0, 0
					c.probedAt = cfg.Now()
				}
				st.mu.Unlock()
				return errBusy
			}
			return fmt.Errorf("parent ended the subscription: %s %s", x.End.Code, x.End.Message)
		}
		select {
		case lastMsg <- isChunk:
		default:
		}
	}
}

// silence tells a parent's silence from a large message on its way, for
// the stall watchdog: bytes read since the last whole message, or since
// the watchdog last looked, are a message arriving. It once compared only
// with what it had seen when it last fired, so the bytes of every whole
// message since counted as "coming": a dead parent was noticed after twice
// the stall timeout (700 ms, not 350: in the simulator, a fifth of 100
// viewers vanishing at t = 20.63 s, the first stall at 21.26 s).
type silence struct{ seen int64 }

// message notes that a whole message had come when n bytes were read.
func (s *silence) message(n int64) { s.seen = n }

// silent reports, when the watchdog fires with n bytes read, whether
// nothing came since the last message or the last look.
func (s *silence) silent(n int64) bool {
	if n != s.seen {
		s.seen = n
		return false
	}
	return true
}

// parentTag is the connection manager's protection tag of a stripe's parent.
func parentTag(stream cid.Cid, stripe int) string {
	return fmt.Sprintf("%s/parent/%s/%d", protectTag, stream, stripe)
}

// parentAheadLocked reports whether the parent announced chunks of this
// stripe that we do not have (one chunk of slack: a status may overtake
// the chunk it announces). With one stripe: two chunks past ours.
func (f *feed) parentAheadLocked() bool {
	k := uint64(max(f.st.k, 1))
	return f.parentLatest >= f.latest+2*k
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
