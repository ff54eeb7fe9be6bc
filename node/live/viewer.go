package live

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hivecast/hivecast/node"
	"github.com/hivecast/hivecast/player"
	"github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/manifest"
	"github.com/hivecast/hivecast/protocol/pex"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrNoPeers: nobody in the swarm has the stream.
var ErrNoPeers = errors.New("no peers found for that stream")

// WatchOptions configure a viewer.
type WatchOptions struct {
	// FindTimeout bounds the wait for the first chunk (default 20 s).
	FindTimeout time.Duration
	// Sinks receive the played stream besides the HTTP fan-out (e.g. a
	// file for `play -o`).
	Sinks []player.Sink
	// Bootstrap candidates tried before the DHT answers (tests, demo).
	Peers []peer.ID
}

// Watch joins stream id as a viewer (or returns the stream if this node
// already takes part). It returns once the stream's info has been received
// and verified, or with ErrNoPeers after FindTimeout.
func (s *Service) Watch(ctx context.Context, id cid.Cid, opts WatchOptions) (*Stream, error) {
	if k, err := manifest.KindOf(id); err != nil {
		return nil, err
	} else if k != manifest.KindLive {
		return nil, errors.New("that ID names a file, not a live stream")
	}
	if opts.FindTimeout <= 0 {
		opts.FindTimeout = 20 * time.Second
	}
	st := newStream(s, id, false)
	fan := player.NewHTTPFanout(player.FanoutOptions{})
	sinks := append([]player.Sink{fan}, opts.Sinks...)
	st.fanout = fan
	st.play = player.NewLive(newMultiSink(sinks), player.LiveOptions{Jitter: player.JitterConfig{TargetLatency: s.cfg.Latency, Adaptive: true, Paths: max(st.k, 1)}})
	got, err := s.add(st)
	if err != nil {
		st.play.Close()
		return nil, err
	}
	if got != st {
		st.play.Close()
		st = got
	} else {
		st.setOwnHome(s.h.ID())
		for _, p := range opts.Peers {
			st.addCandidate(p, -1, -1)
		}
		st.wg.Add(2 + len(st.feeds))
		for _, f := range st.feeds {
			go f.run()
		}
		if st.k > 1 {
			st.wg.Add(1)
			go st.repair()
		}
		go st.discover()
		go st.optimize()
		s.wg.Add(1)
		go func() { // end the stream here once the player has played the end
			defer s.wg.Done()
			select {
			case <-st.play.Done():
				go st.Close()
			case <-st.ctx.Done():
			}
		}()
	}
	t := time.NewTimer(opts.FindTimeout)
	defer t.Stop()
	select {
	case <-st.infoReady:
		return st, nil
	case <-ctx.Done():
		st.Close()
		return nil, ctx.Err()
	case <-t.C:
		st.Close()
		return nil, fmt.Errorf("%w (%s, waited %v)", ErrNoPeers, id, opts.FindTimeout)
	case <-st.done:
		return nil, errors.New("stream closed")
	}
}

// addCandidate notes p as a peer of the stream (depth and spare room if
// known, else -1) and reports whether it was new to us.
func (st *Stream) addCandidate(p peer.ID, depth, spare int) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.addCandidateLocked(p, depth, spare)
}

// addCandidateLocked is addCandidate with st.mu held.
func (st *Stream) addCandidateLocked(p peer.ID, depth, spare int) bool {
	if p == st.svc.h.ID() || st.banned[p] {
		return false
	}
	c := st.cands[p]
	added := c == nil
	if c == nil {
		c = &candidate{depth: -1, spare: -1, home: live.Home([]byte(p), st.k)}
		st.cands[p] = c
		close(st.candsAdded)
		st.candsAdded = make(chan struct{})
	}
	if depth >= 0 {
		c.depth = depth
	}
	if spare >= 0 {
		c.spare = spare
	}
	return added
}

// firstFrom reports whether this is the first chunk we got at all.
func (st *Stream) firstFrom(p peer.ID) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.provided {
		return false
	}
	st.provided = true
	return true
}

func containsPeer(list [][]byte, id peer.ID) bool {
	for _, a := range list {
		if peer.ID(a) == id {
			return true
		}
	}
	return false
}

// candValue is the connection manager's value of a peer that answered a
// probe for a stream we watch: above a DHT routing-table peer's (kad-dht's
// 5), so that trimming and a full node making room (node.PeerCap) close DHT
// connections first. Parents and children are protected outright.
const candValue = 20

// untagCandidates takes the stream's tag off every candidate (the viewer is
// leaving).
func (st *Stream) untagCandidates() {
	st.mu.Lock()
	ids := make([]peer.ID, 0, len(st.cands))
	for id := range st.cands {
		ids = append(ids, id)
	}
	st.mu.Unlock()
	for _, id := range ids {
		st.svc.h.ConnManager().UntagPeer(id, st.candTag)
	}
}

// readFrom reads p's next live message; a malformed one gets p banned.
func (st *Stream) readFrom(r *wire.Reader, p peer.ID) (*pb.LiveMessage, error) {
	m, err := live.ReadMessage(r)
	if errors.Is(err, live.ErrBadPush) {
		st.ban(p, err)
	}
	return m, err
}

// ban drops p for this stream: it sent something that does not verify.
func (st *Stream) ban(p peer.ID, why error) {
	st.svc.h.ConnManager().UntagPeer(p, st.candTag)
	st.svc.log.Warn("peer sent invalid live data; dropped for this stream", "peer", p.String(), "stream", st.id.String(), "err", why.Error())
	st.mu.Lock()
	st.banned[p] = true
	delete(st.cands, p)
	var drop []*child
	for key, k := range st.children {
		if key.id == p {
			drop = append(drop, k)
		}
	}
	st.mu.Unlock()
	for _, k := range drop {
		k.once()
	}
}

// discover keeps the viewer's list of candidate parents full. The DHT
// answers "who has this stream" when the viewer joins and whenever it knows
// fewer than minCandidates; otherwise peers learn peers from each other (peer
// exchange with the parent every pexInterval), which keeps the DHT off the
// hot path once the viewer is in the swarm.
func (st *Stream) discover() {
	defer st.wg.Done()
	const (
		minCandidates = 4
		pexInterval   = 5 * time.Second
	)
	d := st.svc.n.DHT()
	var lastDHT, lastPex time.Time
	pexTurn := 0
	st.askNeighbours()
	for {
		st.mu.Lock()
		n := len(st.cands)
		usable := 0 // candidates whose last probe or subscription did not fail
		for _, c := range st.cands {
			if c.fails == 0 {
				usable++
			}
		}
		// Peer exchange with each stripe's parent in turn.
		var parent peer.ID
		for i := range st.feeds {
			if p := st.feeds[(pexTurn+i)%len(st.feeds)].parent; p != "" {
				parent = p
				break
			}
		}
		st.mu.Unlock()
		// Look again soon while nobody the viewer knows can feed it (a
		// newcomer whose lookup found only full peers, which refused it),
		// else every 10 s while it knows few. A viewer with a parent counts
		// every candidate it knows, usable or not: peer exchange keeps it
		// supplied, and a thousand viewers looking up every 10 s would be
		// a DHT storm of their own.
		interval := 10 * time.Second
		need := n < minCandidates
		switch {
		case usable == 0:
			interval, need = time.Second, true
		case parent == "":
			interval, need = 2*time.Second, usable < minCandidates
		}
		if need && time.Since(lastDHT) >= interval && d.RoutingTable().Size() > 0 {
			lastDHT = time.Now()
			ctx, cancel := context.WithTimeout(st.ctx, 10*time.Second)
			found, fresh := 0, 0
			for ai := range d.FindProvidersAsync(ctx, st.id, dhtProviders) {
				st.svc.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
				if st.addCandidate(ai.ID, -1, -1) {
					fresh++
				}
				found++
			}
			cancel()
			st.mu.Lock()
			st.lookups++
			if fresh == 0 {
				st.lookupsIdle++
			}
			st.mu.Unlock()
			st.svc.log.Debug("dht provider lookup", "stream", st.id.String(), "found", found, "new", fresh, "took", time.Since(lastDHT).String(), "routing_table", d.RoutingTable().Size(), "peers", len(st.svc.h.Network().Peers()))
		}
		if parent != "" && time.Since(lastPex) >= pexInterval {
			lastPex = time.Now()
			pexTurn++
			st.exchange(parent)
		}
		tick := 200 * time.Millisecond
		if n == 0 {
			tick = 25 * time.Millisecond // joining: query as soon as the DHT knows a peer
		}
		select {
		case <-st.ctx.Done():
			return
		case <-time.After(tick):
		}
	}
}

// neighbourProbes: how many of the peers it is already connected to a
// joining viewer asks whether they take part in the stream, while its DHT
// lookup runs, as Bitswap asks its connected peers before it searches the
// DHT. On a running daemon, connected to the peers of its routing table,
// some of which may watch, that is one round trip on open connections
// instead of a lookup of several (docs/benchmarks.md, 2026-12-07).
const neighbourProbes = 8

// askNeighbours probes up to neighbourProbes connected peers (in an order
// of this node's own, so that a crowd does not ask the same few) in the
// background; those that answer become candidates.
func (st *Stream) askNeighbours() {
	self := st.svc.h.ID()
	peers := st.svc.h.Network().Peers()
	sort.Slice(peers, func(i, j int) bool { return pairHash(self, peers[i]) < pairHash(self, peers[j]) })
	st.mu.Lock()
	var ask []peer.ID
	for _, p := range peers {
		if len(ask) == neighbourProbes {
			break
		}
		if !st.banned[p] && st.cands[p] == nil {
			ask = append(ask, p)
		}
	}
	st.wg.Add(len(ask))
	st.mu.Unlock()
	for _, p := range ask {
		go func() {
			defer st.wg.Done()
			st.probeShared(p, time.Second, probeNeighbour)
		}()
	}
}

// exchange asks p for other peers of the stream (/hivecast/pex/1.0.0).
func (st *Stream) exchange(p peer.ID) {
	ctx, cancel := context.WithTimeout(st.ctx, 2*time.Second)
	defer cancel()
	ns, err := st.svc.h.NewStream(ctx, p, pex.ID)
	if err != nil {
		return
	}
	stop := context.AfterFunc(ctx, func() { ns.Reset() })
	defer stop()
	recs, err := pex.Request(ns, st.id, 32)
	if err != nil {
		ns.Reset()
		return
	}
	ns.Close()
	for _, rec := range recs {
		ai, err := node.AddrInfoFromRecord(rec)
		if err != nil || ai.ID == st.svc.h.ID() {
			continue
		}
		st.svc.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		st.addCandidate(ai.ID, -1, -1)
	}
}

// PexPeers answers peer exchange for a live stream this node takes part in:
// its parent, its children and the candidates it knows, with addresses.
func (s *Service) PexPeers(id cid.Cid, max int) []*pb.PeerRecord {
	st := s.Stream(id)
	if st == nil {
		return nil
	}
	st.mu.Lock()
	var ids []peer.ID
	src := st.sourceLocked() // the source stays out of discovery
	for _, f := range st.feeds {
		if f.parent != "" && f.parent != src {
			ids = append(ids, f.parent)
		}
	}
	var kids []peer.ID
	for key := range st.children {
		kids = append(kids, key.id)
	}
	sort.Slice(kids, func(i, j int) bool { return kids[i] < kids[j] })
	ids = append(ids, kids...)
	var cands []peer.ID
	for p, c := range st.cands {
		if c.fails == 0 && p != src {
			cands = append(cands, p)
		}
	}
	st.mu.Unlock()
	sort.Slice(cands, func(i, j int) bool { return cands[i] < cands[j] })
	ids = append(ids, cands...)
	seen := map[peer.ID]bool{}
	var out []*pb.PeerRecord
	for _, p := range ids {
		if seen[p] || len(out) >= max {
			continue
		}
		seen[p] = true
		out = append(out, node.PeerRecord(s.h, p))
	}
	return out
}

// dhtProviders is how many providers of a stream a viewer looks up.
const dhtProviders = 20

// provide announces in the DHT that this node has the stream, so that
// later viewers find it (and spread over the tree instead of all asking the
// source). Every viewer announces, once (at its first chunk): announcing
// only while the DHT returned fewer than dhtProviders others gave newcomers
// only the earliest viewers, long full, as entry points, and built deeper
// trees (docs/benchmarks.md).
func (s *Service) provide(st *Stream) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for i := 0; i < 5 && st.ctx.Err() == nil; i++ {
			ctx, cancel := context.WithTimeout(st.ctx, 30*time.Second)
			err := s.n.DHT().Provide(ctx, st.id, true)
			cancel()
			if err == nil {
				return
			}
			select {
			case <-st.ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
}

// multiSink hands the played stream to several sinks; a sink that fails is
// dropped and its error kept (a full disk must not stop the HTTP viewers).
type multiSink struct {
	sinks []player.Sink
	errs  []error
}

func newMultiSink(sinks []player.Sink) *multiSink {
	return &multiSink{sinks: sinks, errs: make([]error, len(sinks))}
}

func (m *multiSink) Write(p []byte) error {
	return m.WriteChunk(player.Chunk{Data: p})
}

func (m *multiSink) WriteChunk(c player.Chunk) error {
	for i, s := range m.sinks {
		if m.errs[i] != nil {
			continue
		}
		var err error
		if cs, ok := s.(player.ChunkSink); ok {
			err = cs.WriteChunk(c)
		} else {
			err = s.Write(c.Data)
		}
		m.errs[i] = err
	}
	return nil
}

func (m *multiSink) Close() error {
	var errs []error
	for i, s := range m.sinks {
		errs = append(errs, m.errs[i], s.Close())
	}
	return errors.Join(errs...)
}

// candsAddedChan returns the channel closed when the next candidate is
// added.
func (st *Stream) candsAddedChan() <-chan struct{} {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.candsAdded
}

// probeShared probes p within timeout, or, if a probe of p is already under
// way (the stripes of a join probe the same candidates), waits for that one.
func (st *Stream) probeShared(p peer.ID, timeout time.Duration, why probeWhy) {
	st.mu.Lock()
	ch, busy := st.probes[p]
	if !busy {
		ch = make(chan struct{})
		st.probes[p] = ch
	}
	st.mu.Unlock()
	if busy {
		select {
		case <-ch:
		case <-st.ctx.Done():
		}
		return
	}
	defer func() {
		st.mu.Lock()
		delete(st.probes, p)
		st.mu.Unlock()
		close(ch)
	}()
	st.probeWithin(p, timeout, why)
}

// probeWithin probes p, giving up (and counting a failure) after timeout;
// why is what the probe is for (Stats.ProbesOut).
func (st *Stream) probeWithin(p peer.ID, timeout time.Duration, why probeWhy) {
	stranger := !st.connected(p)
	st.mu.Lock()
	st.probesOut[why]++
	if stranger {
		st.probeDials[why]++
	}
	st.mu.Unlock()
	ctx, cancel := context.WithTimeout(st.ctx, timeout)
	defer cancel()
	ns, err := st.svc.h.NewStream(ctx, p, ID)
	if err != nil {
		st.noteProbeFail(p)
		return
	}
	stop := context.AfterFunc(ctx, func() { ns.Reset() })
	defer stop()
	defer ns.Reset()
	req := &pb.LiveRequest{Stream: st.id.Bytes(), Probe: true}
	if st.k > 1 {
		// Where p stands in its home stripe, the one it forwards first.
		set := live.One(live.Home([]byte(p), st.k), st.k)
		req.Stripes, req.StripeMask = set.K, set.Mask
	}
	if err := wire.WriteMsg(ns, req); err != nil {
		st.noteProbeFail(p)
		return
	}
	r := wire.NewReader(ns)
	answered := false
	defer func() {
		if !answered {
			st.noteProbeFail(p)
		}
	}()
	for {
		m, err := st.readFrom(r, p)
		if err != nil {
			return
		}
		switch x := m.Msg.(type) {
		case *pb.LiveMessage_Status:
			answered = true
			// A live peer of the stream: its connection is worth more to
			// the connection manager than a DHT query's (a standby, a
			// parent to move to).
			st.svc.h.ConnManager().TagPeer(p, st.candTag, candValue)
			st.mu.Lock()
			// A peer that answers is a candidate (a neighbour asked as
			// we join is not one before), unless it was banned meanwhile.
			st.addCandidateLocked(p, -1, -1)
			if c := st.cands[p]; c != nil {
				c.fails = 0
				c.noteRoom(x.Status)
				if containsPeer(x.Status.Ancestors, st.svc.h.ID()) {
					c.spare, c.pushable = 0, 0 // fed through us: never our parent
				}
				c.latest = x.Status.LatestSeq
				c.path = c.path[:0]
				for _, a := range x.Status.Ancestors {
					c.path = append(c.path, peer.ID(a))
				}
				c.probedAt = st.svc.cfg.Now()
			}
			// Who the source is, until the info tells for sure: a peer at
			// depth 0, or the head of a full path (joiners probe before
			// they have the info; a thousand of them probing the source
			// took its uplink).
			if st.srcHint == "" {
				st.srcHint = sourceOf(p, x.Status)
			}
			st.mu.Unlock()
		case *pb.LiveMessage_Redirect:
			st.addRedirect(x.Redirect)
		case *pb.LiveMessage_End:
			return
		}
	}
}

func (st *Stream) noteProbeFail(p peer.ID) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if c := st.cands[p]; c != nil {
		c.fails++
		c.failedAt = st.svc.cfg.Now()
		c.probedAt = st.svc.cfg.Now()
	}
}

func (st *Stream) addRedirect(rd *pb.Redirect) {
	for _, lp := range rd.Peers {
		ai, err := node.AddrInfoFromRecord(lp.Peer)
		if err != nil {
			continue
		}
		id := ai.ID
		st.svc.h.Peerstore().AddAddrs(id, ai.Addrs, time.Hour)
		// A redirect's room is a guess (a parent does not know its
		// children's room): taken as room, it sent a flash crowd of joins
		// through full peers one busy answer at a time (docs/benchmarks.md).
		// Room is learnt by probing; the depth is kept.
		st.addCandidate(id, int(lp.Depth), -1)
	}
}

// fullRecheck: a candidate that answered a probe with no room is not probed
// again for this long, except by a failover. The peers near the top of the
// trees (the source first) are full and known to every viewer: polling
// them every few seconds would make their load grow with the audience
// (docs/benchmarks.md). A slot that frees there is taken by a child's
// child (pushdown) or a joiner.
const fullRecheck = 30 * time.Second

// recentlyFullLocked reports whether c answered its last probe, less than
// fullRecheck ago, that it has no room.
func recentlyFullLocked(c *candidate, now time.Time) bool {
	return c.spare == 0 && c.fails == 0 && !c.probedAt.IsZero() && now.Sub(c.probedAt) < fullRecheck
}

// The source stays out of discovery. Every viewer finds it in the DHT (it
// announced the stream first), and it tops every tree, so it is the first
// peer a viewer would probe. Each probe from a new peer costs it a
// connection: a QUIC handshake, identify and the probe, on the uplink that
// carries the video to its children. A thousand viewers joining within ten
// seconds offered the source's 8 Mbit/s link four times that
// (docs/benchmarks.md). So once a viewer knows which peer the source is
// (srcID, from the verified stream info), it probes it, asks it for a slot
// and hands it out in peer exchange only in stripes where the source is
// its parent or its parent's parent (a slot freed at the source goes to a
// grandchild, by failover or by moving up), in a stripe that has found no
// parent for sourceAfter while every peer of its tree it probed meanwhile is
// starving too (the tree lost its root), or when it knows no other
// candidate. The source's children's children bound who contacts it,
// whatever the size of the audience.

// sourceOf returns the source as peer p's status names it: p itself at
// depth 0, else the head of its path if the path is whole; "" if it does
// not tell.
func sourceOf(p peer.ID, s *pb.LiveStatus) peer.ID {
	if s.Depth == 0 {
		return p
	}
	if n := len(s.Ancestors); n > 0 && n == int(s.Depth) {
		if id, err := peer.IDFromBytes(s.Ancestors[0]); err == nil {
			return id
		}
	}
	return ""
}

// probeFresh: a probe answer younger than this is taken as the peer's
// state now; older, the peer is probed again before it counts.
const probeFresh = 5 * time.Second

// sourceLocked returns the source's peer ID as far as this viewer knows:
// from the verified info, else as probe answers named it, else "".
func (st *Stream) sourceLocked() peer.ID {
	if st.srcID != "" {
		return st.srcID
	}
	return st.srcHint
}

// skipSourceLocked reports whether stripe f should not ask candidate c
// (id) for a slot because it is the source to leave alone: unless c said
// it has room for f in a probe answer younger than probeFresh (a joiner's first
// probes, sent before it knew who the source is, may have asked it; its
// room then is as good as anyone's).
func (st *Stream) skipSourceLocked(id peer.ID, c *candidate, f *feed, now time.Time) bool {
	if !st.leaveSourceLocked(id, f) {
		return false
	}
	return !f.freshRoomLocked(c, now)
}

// sourceAfter: a stripe without a parent for this long, whose tree looks
// rootless, may ask the source.
const sourceAfter = 2 * time.Second

// rootlessLocked reports whether stripe f looks cut from the source: it has
// had no parent for sourceAfter, and the candidates of its tree probed since
// then are all orphans or starving (fed through the parent we lost, or hold
// nothing newer than we do). A stripe whose tree has a live peer only needs
// room, which the source has no more of than anyone: in a flash crowd of a
// thousand, thousands of stripes wait seconds for room, and sending them
// all to the source took its uplink (docs/benchmarks.md).
func (st *Stream) rootlessLocked(f *feed, src peer.ID, now time.Time) bool {
	if f.parent != "" || f.seeking.IsZero() || now.Sub(f.seeking) < sourceAfter {
		return false
	}
	seen := false
	for id, c := range st.cands {
		if id == src || c.home != f.idx || c.fails != 0 || !c.probedAt.After(f.seeking) {
			continue
		}
		if c.depth < 1 || c.depth > live.MaxAncestors {
			continue // not attached itself
		}
		if !f.orphanedLocked(c) {
			return false // a live tree: room is the problem, not the root
		}
		seen = true
	}
	return seen
}

// leaveSourceLocked reports whether id is the source and this viewer
// should leave it alone for stripe f (nil: for every stripe, as a probe
// is).
func (st *Stream) leaveSourceLocked(id peer.ID, f *feed) bool {
	src := st.sourceLocked()
	if src == "" || id != src || len(st.cands) <= 1 {
		return false
	}
	now := st.svc.cfg.Now()
	near := func(f *feed) bool {
		return f.depth == 1 || f.depth == 2 || st.rootlessLocked(f, src, now)
	}
	if f != nil {
		return !near(f)
	}
	return !slices.ContainsFunc(st.feeds, near)
}

// unknown returns up to n candidates not probed in the last 5 s (nor,
// if full then, in the last fullRecheck).
// Those closest to the source, as far as we know (a redirect tells a depth),
// come first; among equals, an order of this node's own (a hash of both
// IDs), so that a flash crowd that learnt the same providers from the DHT
// does not probe the same few of them (docs/benchmarks.md).
func (st *Stream) unknown(n int) []peer.ID {
	return st.unknownWithin(n, -1)
}

// strangersPerTick bounds the background probes (optimize) of peers this
// node holds no connection to: one a second. Without it a viewer of a
// swarm at its peer bound, looking each second for a standby with room
// among peers most of which are full, dialled a stranger per stripe a
// second, and its exploration four more every three seconds: at 300
// viewers bound to 64 peers, 2,600 dials a second, nearly one a probe, and
// a fifth of what viewers sent was handshakes (docs/benchmarks.md).
const strangersPerTick = 1

// connected reports whether this node holds a connection to p.
func (st *Stream) connected(p peer.ID) bool {
	return st.svc.h.Network().Connectedness(p) == network.Connected
}

// unknownWithin is unknown with at most strangers of the n (strangers < 0:
// any number) peers this node holds no connection to: the best n, passing
// over the strangers beyond that many.
func (st *Stream) unknownWithin(n, strangers int) []peer.ID {
	if strangers < 0 {
		return st.unknownFor(nil, n)
	}
	ids, _ := st.fewStrangers(st.unknownFor(nil, -1), n, strangers)
	return ids
}

// fewStrangers returns the first n of ids (n < 0: all), passing over those
// this node holds no connection to once it has taken strangers of them,
// and how many strangers it could still have taken.
func (st *Stream) fewStrangers(ids []peer.ID, n, strangers int) ([]peer.ID, int) {
	var out []peer.ID
	for _, id := range ids {
		if len(out) == n {
			break
		}
		if !st.connected(id) {
			if strangers == 0 {
				continue
			}
			strangers--
		}
		out = append(out, id)
	}
	return out, strangers
}

// unknownFor ranks the candidates unknown returns, best n first (n < 0:
// all), for stripe f: peers whose home stripe is f's come first, as pick
// ranks them (f nil: one order for every stripe).
func (st *Stream) unknownFor(f *feed, n int) []peer.ID {
	now := st.svc.cfg.Now()
	self := st.svc.h.ID()
	st.mu.Lock()
	var list []scored
	for id, c := range st.cands {
		if now.Sub(c.probedAt) > probeFresh && !recentlyFullLocked(c, now) && !st.leaveSourceLocked(id, nil) {
			d := c.depth
			if d < 0 {
				d = 32
			}
			d *= 4
			if f != nil && !f.homeOf(c) {
				d += 16
			}
			list = append(list, scored{id, d, pairHash(self, id)})
		}
	}
	st.mu.Unlock()
	return byScore(list, n)
}

// pairHash orders peer b as seen from peer a: the same for a every time,
// different between the a's.
func pairHash(a, b peer.ID) uint32 {
	h := fnv.New32a()
	h.Write([]byte(a))
	h.Write([]byte(b))
	return h.Sum32()
}

// joinProbe probes, in parallel, up to n candidates not probed recently
// for a joining stripe f, those whose home stripe is f's first. It returns
// joinProbeGrace after one answers with room in f's stripe (it forwards
// that stripe), or after joinProbeWait: a join should not wait for the
// slowest of its probes, whose answers still arrive and are kept.
func (st *Stream) joinProbe(f *feed, n int) {
	st.probeFirst(st.unknownFor(f, n), probeJoin, time.Second, joinProbeWait, joinProbeGrace, func(c *candidate) bool {
		return c.fails == 0 && f.roomLocked(c) > 0 && f.homeOf(c)
	})
}

// probeFirst probes ids in parallel (each within timeout) and returns the
// first whose answer satisfies good, grace after that answer (the best of
// those answering by then is the caller's to pick), or "" when every probe
// has answered without one or wait has passed. Probes still running go on
// in the background, and what they learn is kept.
func (st *Stream) probeFirst(ids []peer.ID, why probeWhy, timeout, wait, grace time.Duration, good func(*candidate) bool) peer.ID {
	if len(ids) == 0 {
		return ""
	}
	goodc := make(chan peer.ID, len(ids))
	done := make(chan struct{}, len(ids))
	for _, id := range ids {
		st.wg.Add(1)
		go func(id peer.ID) {
			defer st.wg.Done()
			defer func() { done <- struct{}{} }()
			st.probeShared(id, timeout, why)
			st.mu.Lock()
			c := st.cands[id]
			ok := c != nil && good(c)
			st.mu.Unlock()
			if ok {
				goodc <- id
			}
		}(id)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	var first peer.ID
	for left := len(ids); left > 0; {
		select {
		case <-done:
			left--
		case id := <-goodc:
			if first == "" {
				first = id
				if grace <= 0 {
					return first
				}
				// Give the others a moment more (one closer to the source
				// may be about to answer), then go.
				t.Reset(grace)
			}
		case <-t.C:
			return first
		case <-st.ctx.Done():
			return first
		}
	}
	return first
}

// joinProbes: how many candidates a joining stripe probes at once. Each
// stripe of a join probes its own, its home stripe's peers first (those it
// can take as a parent first). Eight in one order for all stripes, a
// quarter of them of any one stripe's home, sent a crowd of 100 viewers
// bound to 32 peers into 10,000 join probes, three quarters of them dials;
// four per stripe, with roomKnown, 5,200-5,500 (docs/benchmarks.md,
// 2026-12-06).
const joinProbes = 4

// A join waits for probe answers at most joinProbeWait, and at most
// joinProbeGrace after the first answer with room, before it picks from what
// it knows.
const (
	joinProbeWait  = 300 * time.Millisecond
	joinProbeGrace = 60 * time.Millisecond
)

// standbys returns the n best standby parents of stripe f (peers of that
// home stripe first, not f's parent, not our children); with skipFull,
// those of the n that answered full less than fullRecheck ago are left
// out (a standby known to be full is no standby).
func (st *Stream) standbys(f *feed, n int, skipFull bool) []peer.ID {
	now := st.svc.cfg.Now()
	self := st.svc.h.ID()
	st.mu.Lock()
	defer st.mu.Unlock()
	var grandparent peer.ID // the lost parent's parent, while orphaned
	if f.lost != "" && f.parent == "" && len(f.ancestors) > 0 {
		grandparent = f.ancestors[len(f.ancestors)-1]
	}
	var list []scored
	for id, c := range st.cands {
		if id == f.parent || st.isChildLocked(id) || st.leaveSourceLocked(id, f) {
			continue
		}
		d := c.depth
		if d < 0 {
			d = 32
		}
		sc := d*4 + c.fails*8
		if room := f.roomLocked(c); room == 0 && recentlyFullLocked(c, now) {
			sc += 192 // after every peer of unknown room
		} else if room == 0 {
			sc += 64
		}
		if !f.homeOf(c) {
			sc += 128
		}
		if f.orphanedLocked(c) {
			sc += 256
		}
		if id == grandparent {
			// The lost parent's own parent: the slot it fed that parent
			// from is free once it notices the death (childKeepalive),
			// whatever it last answered. An orphan that takes it takes
			// the dead parent's place, and its subtree with it.
			sc = -1
		}
		if !st.connected(id) {
			// A stranger ranks as a connected peer a level deeper: keeping
			// a connected standby fresh costs a stream, a stranger a
			// handshake at both ends (standbyProbes), and a failover to
			// it a dial.
			sc += 4
		}
		// Siblings that lost the same parent rank the same standbys:
		// each in an order of its own among equals (pairHash).
		list = append(list, scored{id, sc, pairHash(self, id)})
	}
	ids := byScore(list, n)
	if skipFull {
		ids = slices.DeleteFunc(ids, func(id peer.ID) bool { return recentlyFullLocked(st.cands[id], now) })
	}
	return ids
}

func (st *Stream) probeAll(ids []peer.ID, why probeWhy, timeout time.Duration) {
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func(id peer.ID) {
			defer wg.Done()
			st.probeShared(id, timeout, why)
		}(id)
	}
	wg.Wait()
}

// standbyProbes returns the standby parents optimize probes at tick, and
// how many more peers this node holds no connection to it may probe in the
// same tick. A peer we hold no connection to (a stranger) costs a
// handshake at both ends and, at a peer bound, a connection each end
// closes to make room: the background probes take at most strangersPerTick
// of them a tick, the stripes in turn; peers already connected are probed
// freely.
func (st *Stream) standbyProbes(tick int) ([]peer.ID, int) {
	strangers := strangersPerTick
	var ids []peer.ID
	for i := range st.feeds {
		f := st.feeds[(tick+i)%len(st.feeds)]
		fresh := slices.DeleteFunc(st.standbys(f, max(1, 2/len(st.feeds)), true), func(id peer.ID) bool { return slices.Contains(ids, id) })
		var some []peer.ID
		some, strangers = st.fewStrangers(fresh, -1, strangers)
		ids = append(ids, some...)
	}
	return ids, strangers
}

// optimize moves each stripe up its tree: every few seconds it probes a few
// candidates and, if one whose home stripe it is has room and is at least
// two hops closer to the source than the stripe's parent (or as close, when
// the parent forwards the stripe only as a fallback), switches to it
// (resuming at the next chunk, so nothing is lost). Hysteresis keeps the
// trees from churning.
func (st *Stream) optimize() {
	defer st.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastMove := make([]time.Time, len(st.feeds))
	for tick := 0; ; tick++ {
		select {
		case <-st.ctx.Done():
			return
		case <-t.C:
		}
		// Keep the best standby parent of each stripe (two with one stripe)
		// known to be alive, so that a failover goes to a live peer at the
		// first try (after a host dies, its connections look open until
		// liveness pings time out).
		// A standby known to be full is not polled until fullRecheck has
		// passed.
		ids, strangers := st.standbyProbes(tick)
		st.probeAll(ids, probeStandby, time.Second)
		if tick%3 != 0 {
			continue
		}
		st.probeAll(st.unknownWithin(4, strangers), probeExplore, time.Second)
		for i, f := range st.feeds {
			if st.ctx.Err() != nil {
				return
			}
			now := st.svc.cfg.Now()
			if now.Sub(lastMove[i]) > 10*time.Second && st.moveUp(f) {
				lastMove[i] = now
			}
		}
	}
}

// moveUp switches stripe f to a better parent if one is known; it reports
// whether it did.
func (st *Stream) moveUp(f *feed) bool {
	now := st.svc.cfg.Now()
	better := func(id peer.ID, c *candidate) bool {
		if id == f.parent || st.isChildLocked(id) || st.skipSourceLocked(id, c, f, now) || c.depth < 0 || f.roomLocked(c) <= 0 || c.fails != 0 || !f.homeOf(c) {
			return false
		}
		if pc := st.cands[f.parent]; pc != nil && !f.homeOf(pc) {
			return c.depth+1 <= f.depth // off a fallback parent
		}
		return c.depth+1 <= f.depth-2 // at least two levels closer (hysteresis)
	}
	st.mu.Lock()
	var target peer.ID
	bestDepth := 0
	if f.parent != "" && f.depth > 1 {
		for id, c := range st.cands {
			if better(id, c) && (target == "" || c.depth < bestDepth || (c.depth == bestDepth && id < target)) {
				target, bestDepth = id, c.depth
			}
		}
	}
	st.mu.Unlock()
	if target == "" {
		return false
	}
	// The candidate's room may be stale (a redirect, an old probe): ask
	// again just before leaving a parent that works, so that our children
	// do not starve while we walk through full parents.
	st.probeWithin(target, 500*time.Millisecond, probeMove)
	st.mu.Lock()
	c := st.cands[target]
	ok := c != nil && f.parent != "" && better(target, c)
	move := f.move
	if ok && move != nil {
		f.moveTo, f.moveBack = target, f.parent
	}
	st.mu.Unlock()
	if ok && move != nil {
		move()
		return true
	}
	return false
}
