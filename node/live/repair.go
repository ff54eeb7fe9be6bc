package live

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/hivecast/hivecast/node/bwlimit"
	"github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// Repair fetches. With K stripes a viewer has K parents, and each of them
// holds the whole stream, not only the stripe it feeds us. When one stripe
// stops (its parent, or an ancestor, died: a failover takes the stall
// timeout plus a probe and a round trip, far more than the jitter target
// leaves) or has not started yet (a join whose subscription for that
// stripe was refused), the holes it leaves are chunks the other parents
// already have. The viewer asks one of them for exactly those chunks
// (LiveRequest.fetch, docs/protocol.md §8.5), but only for a starving
// stripe (starvingLocked) and only while they can still play. The push
// tree stays the only steady path; the fetch only covers the gap.
const (
	// repairTick is how often a viewer looks for overdue holes.
	repairTick = 20 * time.Millisecond
	// repairMargin: a hole of a stripe whose live parent has nothing
	// newer is overdue once the chunks after it came this much longer ago
	// than the stripe's usual delay. Lower repairs sooner and fetches more
	// chunks that were merely slow.
	repairMargin = 60 * time.Millisecond
	// repairRetry: a chunk asked for is not asked for again sooner (then
	// from another parent).
	repairRetry = 250 * time.Millisecond
	// repairSilence: a stripe whose parent has sent no status (its
	// heartbeat) for this long, or whose newest chunk has not moved on for
	// this long while the parent has nothing newer, is starving.
	repairSilence = 200 * time.Millisecond
	// fetchBurstMin is the least a node answers at once to fetches: a
	// chunk larger than that is never fetched (hivecast cuts chunks at
	// 64 KiB by default, 8 KB with stripes).
	fetchBurstMin = 128 << 10
	// fetchTimeout bounds a fetch: its answer is useless later.
	fetchTimeout = time.Second
)

// usualWindow is how long an arrival counts toward its stripe's usual
// delay: the fastest arrival of the window, as the jitter buffer's
// schedule follows (player.JitterConfig.Adaptive). A backlog or a repair
// ends with chunks that came at the stripe's own pace, so a burst does not
// make the stripe look slow for long.
const usualWindow = 2 * time.Second

// usualLocked is the stripe's fastest arrival delay of the last
// usualWindow; false if none came in it.
func (f *feed) usualLocked(now time.Time) (time.Duration, bool) {
	return f.fast.Min(now, usualWindow)
}

// starvingLocked reports whether stripe f is cut off: no parent (a join
// refused, a failover under way), a parent silent for repairSilence (dead:
// heartbeats skip every queue), or a parent that has had nothing newer for
// us for repairSilence (it lost its own feed). A parent that holds chunks
// it has not sent yet is busy, not starving: fetching would load the
// uplinks that are already late.
func (f *feed) starvingLocked(now time.Time) bool {
	if f.parent == "" {
		return true
	}
	if now.Sub(f.statusAt) >= repairSilence {
		return true
	}
	k := uint64(max(f.st.k, 1))
	return now.Sub(f.newAt) >= repairSilence && f.parentLatest < f.latest+k
}

// fetchPlan is one fetch: the chunks to ask peer for.
type fetchPlan struct {
	peer peer.ID
	seqs []uint64
}

// asked is a chunk this viewer fetched: when, and how many times.
type asked struct {
	at time.Time
	n  int
}

// repairPlanLocked lists the fetches to send now: the holes of starving
// stripes (chunks missing between the first one a stripe subscription
// starts at and the newest held, with a chunk held within 2K after them)
// that can still play. A hole whose stripe still has a live parent is
// fetched only once overdue (the chunks after it came longer ago than the
// stripe's usual delay plus repairMargin); the others at once. Each goes
// to a parent of another stripe (never the source: its uplink carries
// every tree's top), the one with the smallest usual delay first and
// another one on a retry, at most MaxFetch chunks per fetch, none to a
// peer busy with one.
func (st *Stream) repairPlanLocked(now time.Time, busy map[peer.ID]bool) []fetchPlan {
	k := uint64(max(st.k, 1))
	if k <= 1 || !st.have || st.verifier == nil || st.ended {
		return nil
	}
	if st.asked == nil {
		st.asked = map[uint64]asked{}
	}
	// The playout budget: a chunk captured longer ago than the slowest
	// stripe's usual delay plus the jitter target is too late to play
	// (the jitter buffer's schedule).
	usual := make([]time.Duration, len(st.feeds))
	heard := make([]bool, len(st.feeds))
	starving := make([]bool, len(st.feeds))
	var slowest time.Duration
	anyStarving := false
	for i, f := range st.feeds {
		starving[i] = f.starvingLocked(now)
		anyStarving = anyStarving || starving[i]
		usual[i], heard[i] = f.usualLocked(now)
		if heard[i] {
			slowest = max(slowest, usual[i])
		}
	}
	if !anyStarving {
		return nil // every hole is on its way
	}
	budget := slowest + st.svc.cfg.Latency
	lo := st.baseSeq
	if w := uint64(len(st.ring)) / 2; st.latest > w && lo < st.latest-w {
		lo = st.latest - w
	}
	for q := range st.asked {
		if q < lo {
			delete(st.asked, q)
		}
	}
	src := st.sourceLocked()
	plans := map[peer.ID][]uint64{}
	var order []peer.ID
	// capAbove is the capture time of the next chunk held above q (within
	// 2K), scanning down so that it is known for each q in turn.
	var capAbove int64
	haveAbove := false
	aboveSeq := st.latest
	for q := st.latest; q >= lo && q <= st.latest; q-- {
		if c := st.getLocked(q); c != nil {
			if now.Sub(time.UnixMicro(c.CaptureUnixMicros)) > budget {
				break // what is older can no longer play: the scan stops here
			}
			capAbove, haveAbove, aboveSeq = c.CaptureUnixMicros, true, q
			continue
		}
		if !haveAbove || aboveSeq-q > 2*k {
			continue
		}
		captured := time.UnixMicro(capAbove)
		age := now.Sub(captured)
		if age > budget {
			break // this one and every older one can no longer play
		}
		f := st.feeds[q%k]
		if !starving[q%k] {
			continue // its parent is on it; a fetch would only duplicate it
		}
		if f.parent != "" && q > f.latest && now.Sub(f.statusAt) < repairSilence {
			// Its parent is alive but has had nothing newer for a while (it
			// lost its own feed): q may still come from it, late, once that
			// parent has failed over; fetch it once it is overdue.
			d := usual[q%k]
			if !heard[q%k] {
				d = slowest
			}
			if age < d+repairMargin {
				continue
			}
		}
		// Otherwise (no parent, a silent parent, or a hole the stripe has
		// moved past) nothing is on its way: fetch it now.
		a := st.asked[q]
		if !a.at.IsZero() && now.Sub(a.at) < repairRetry {
			continue
		}
		p := st.repairPeerLocked(f, src, q, a.n, busy, usual, heard)
		if p == "" {
			continue
		}
		if len(plans[p]) >= live.MaxFetch {
			continue
		}
		if plans[p] == nil {
			order = append(order, p)
		}
		plans[p] = append(plans[p], q)
		st.asked[q] = asked{at: now, n: a.n + 1}
	}
	out := make([]fetchPlan, 0, len(order))
	for _, p := range order {
		seqs := plans[p]
		slices.Sort(seqs)
		out = append(out, fetchPlan{p, seqs})
	}
	return out
}

// repairPeerLocked picks who to fetch chunk q (of stripe f) from on its
// try-th attempt: the parents of the other stripes that hold chunks newer
// than q and were heard from lately, the one with the smallest usual delay
// first (usual and heard: each stripe's, as repairPlanLocked took them),
// not the source, not one busy with a fetch.
func (st *Stream) repairPeerLocked(f *feed, src peer.ID, q uint64, try int, busy map[peer.ID]bool, usual []time.Duration, heard []bool) peer.ID {
	var list []*feed
	for _, g := range st.feeds {
		if g == f || g.parent == "" || g.parent == src || busy[g.parent] || !g.have || g.latest <= q || !heard[g.idx] {
			continue
		}
		if g.parent == f.parent && f.parent != "" {
			continue // the parent that has not sent it
		}
		if slices.ContainsFunc(list, func(h *feed) bool { return h.parent == g.parent }) {
			continue
		}
		list = append(list, g)
	}
	if len(list) == 0 {
		return ""
	}
	sort.Slice(list, func(i, j int) bool {
		if di, dj := usual[list[i].idx], usual[list[j].idx]; di != dj {
			return di < dj
		}
		return list[i].idx < list[j].idx
	})
	return list[try%len(list)].parent
}

// repair sends the repair fetches of a striped stream, one at a time per
// peer, until the stream closes.
func (st *Stream) repair() {
	defer st.wg.Done()
	t := time.NewTicker(repairTick)
	defer t.Stop()
	busy := map[peer.ID]bool{}
	done := make(chan peer.ID)
	inflight := 0
	defer func() {
		for ; inflight > 0; inflight-- {
			<-done
		}
	}()
	for {
		select {
		case <-st.ctx.Done():
			return
		case p := <-done:
			delete(busy, p)
			inflight--
			continue
		case <-t.C:
		}
		st.mu.Lock()
		plans := st.repairPlanLocked(st.svc.cfg.Now(), busy)
		st.mu.Unlock()
		for _, pl := range plans {
			busy[pl.peer] = true
			inflight++
			go func(pl fetchPlan) {
				st.fetch(pl.peer, pl.seqs)
				done <- pl.peer
			}(pl)
		}
	}
}

// errUnasked: a fetch answer held a chunk that was not asked for.
var errUnasked = errors.New("repair fetch: a chunk that was not asked for")

// fetch asks p, a peer we are connected to, for the chunks seqs and adds
// those it sends (verified, as every chunk) to the stream.
func (st *Stream) fetch(p peer.ID, seqs []uint64) {
	ctx, cancel := context.WithTimeout(network.WithNoDial(st.ctx, "repair fetch"), fetchTimeout)
	defer cancel()
	ns, err := st.svc.h.NewStream(ctx, p, ID)
	if err != nil {
		return
	}
	defer ns.Reset()
	_ = ns.Scope().SetService("hivecast.live")
	_ = ns.SetDeadline(time.Now().Add(fetchTimeout))
	st.mu.Lock()
	st.fetchesOut++
	v := st.verifier
	st.mu.Unlock()
	if err := wire.WriteMsg(ns, &pb.LiveRequest{Stream: st.id.Bytes(), Fetch: seqs}); err != nil {
		return
	}
	_ = ns.CloseWrite()
	got := 0
	defer func() {
		if got == len(seqs) {
			return
		}
		// What p did not have may be asked of the next parent at once.
		st.mu.Lock()
		for _, q := range seqs {
			if a, ok := st.asked[q]; ok && st.getLocked(q) == nil {
				st.asked[q] = asked{at: a.at.Add(-repairRetry), n: a.n}
			}
		}
		st.mu.Unlock()
	}()
	r := wire.NewReader(ns)
	for range len(seqs) + 1 {
		m, err := st.readFrom(r, p)
		if err != nil {
			return
		}
		switch x := m.Msg.(type) {
		case *pb.LiveMessage_Chunk:
			if !slices.Contains(seqs, x.Chunk.Seq) {
				st.ban(p, errUnasked)
				return
			}
			if err := v.Verify(x.Chunk); err != nil {
				st.ban(p, err)
				return
			}
			got++
			if st.addChunk(x.Chunk, true) {
				st.mu.Lock()
				st.repaired++
				st.mu.Unlock()
			}
		case *pb.LiveMessage_End:
			return
		default:
			return // nothing else belongs in a fetch's answer
		}
	}
}

// serveFetch answers a repair fetch: the chunks held among seqs, through
// the upload limiter, then Status OK. It takes no child slot. A node sends
// at most a second of the stream at once and half the stream's rate over
// all its peers (the rest of a request is left out), so fetches cannot
// take the uplink from the children's video.
func (st *Stream) serveFetch(ns network.Stream, seqs []uint64) {
	defer ns.Close()
	now := st.svc.cfg.Now()
	st.mu.Lock()
	st.fetchesIn++
	var out []*pb.LiveChunk
	if st.info != nil {
		if st.fetchLim == nil {
			// Half the stream's rate, a second of it at once (at least
			// fetchBurstMin, so that a large chunk can pass at all).
			r := max(float64(st.info.Bitrate)/8, 64<<10)
			st.fetchLim = rate.NewLimiter(rate.Limit(r/2), max(int(r), fetchBurstMin))
		}
		for _, q := range seqs {
			c := st.getLocked(q)
			if c == nil || slices.Contains(out, c) {
				continue
			}
			if !st.fetchLim.AllowN(now, len(c.Data)) {
				break
			}
			out = append(out, c)
		}
	}
	st.mu.Unlock()
	// A fetch answer is urgent (the asker's playout deadline is near) and
	// the copies booked ahead of it on the uplink have slack: it is charged
	// to the upload limit, which the later copies then wait for, but does
	// not queue behind them.
	lim := st.svc.cfg.Upload
	w := bwlimit.Writer(st.ctx, ns, lim)
	_ = ns.SetWriteDeadline(time.Now().Add(fetchTimeout))
	var sent uint64
	for _, c := range out {
		buf, err := wire.AppendFrame(nil, &pb.LiveMessage{Msg: &pb.LiveMessage_Chunk{Chunk: c}})
		if err != nil {
			return
		}
		dst := w
		if lim != nil {
			if r := lim.ReserveN(time.Now(), len(buf)); r.OK() {
				dst = ns
			}
		}
		if _, err := dst.Write(buf); err != nil {
			return
		}
		sent += uint64(len(buf))
	}
	st.mu.Lock()
	st.noteSentLocked(int(sent))
	st.fetchBytesOut += sent
	st.mu.Unlock()
	_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{Code: pb.Code_OK, Message: "fetch"}}})
}
