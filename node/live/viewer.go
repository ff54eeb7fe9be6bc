package live

import (
	"context"
	"errors"
	"fmt"
	"github.com/hivecast/hivecast/node"
	"sort"
	"sync"
	"time"

	"github.com/hivecast/hivecast/player"
	"github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/manifest"
	"github.com/hivecast/hivecast/protocol/pex"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
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
	st.play = player.NewLive(newMultiSink(sinks), player.LiveOptions{Jitter: player.JitterConfig{TargetLatency: s.cfg.Latency, Adaptive: true}})
	got, err := s.add(st)
	if err != nil {
		st.play.Close()
		return nil, err
	}
	if got != st {
		st.play.Close()
		st = got
	} else {
		for _, p := range opts.Peers {
			st.addCandidate(p, -1, -1)
		}
		st.wg.Add(3)
		go st.feed()
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

func (st *Stream) addCandidate(p peer.ID, depth, spare int) {
	if p == st.svc.h.ID() {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.banned[p] {
		return
	}
	c := st.cands[p]
	if c == nil {
		c = &candidate{depth: -1, spare: -1}
		st.cands[p] = c
	}
	if depth >= 0 {
		c.depth = depth
	}
	if spare >= 0 {
		c.spare = spare
	}
}

// pick chooses the next parent: the candidate closest to the source (unknown
// depth counts as deep), with room, not one of our children, not failed in the
// last few seconds.
func (st *Stream) pick(now time.Time) (peer.ID, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	type scored struct {
		id    peer.ID
		score int
	}
	var list []scored
	for id, c := range st.cands {
		if _, isChild := st.children[id]; isChild {
			continue
		}
		backoff := time.Duration(min(c.fails, 5)) * 500 * time.Millisecond
		if c.fails > 0 && now.Sub(c.failedAt) < backoff {
			continue
		}
		d := c.depth
		if d < 0 {
			d = 32
		}
		score := d * 4
		if c.spare == 0 {
			score += 64
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
		list = append(list, scored{id, score})
	}
	if len(list) == 0 {
		return "", false
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].score != list[j].score {
			return list[i].score < list[j].score
		}
		return list[i].id < list[j].id
	})
	return list[0].id, true
}

// feed keeps one parent feeding us: it subscribes to the best candidate and,
// when that parent stalls, fails or redirects us, moves to the next.
func (st *Stream) feed() {
	defer st.wg.Done()
	lostParent := false
	for st.ctx.Err() == nil {
		st.mu.Lock()
		ended := st.ended
		st.mu.Unlock()
		if ended {
			return
		}
		st.mu.Lock()
		attached := st.parent != ""
		st.mu.Unlock()
		if !attached {
			if !lostParent {
				st.probeUnknown(8)
			} else {
				// Failover: the standbys were alive a second ago, but hosts
				// that die together (a rack, a NAT, a third of a swarm) die
				// together: check the best few at once, briefly; a live peer
				// on a LAN answers in milliseconds.
				st.probeStandbysWithin(4, failoverProbe)
			}
		}
		p, ok := st.nextMoveTarget()
		if !ok {
			p, ok = st.pick(st.svc.cfg.Now())
		}
		if !ok {
			select {
			case <-st.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		st.svc.log.Debug("subscribing", "stream", st.id.String(), "parent", p.String())
		err := st.subscribe(p)
		st.mu.Lock()
		if st.parent == p {
			st.parent = ""
		}
		c := st.cands[p]
		voluntary := errors.Is(err, errMove)
		lostParent = err != nil && !voluntary && !errors.Is(err, errBusy)
		if p == st.moveTo {
			st.moveTo = ""
			if !errors.Is(err, errBusy) {
				st.moveBack = "" // it took us: no going back
			}
		}
		if err != nil && c != nil && !voluntary {
			c.fails++
			c.failedAt = st.svc.cfg.Now()
		}
		st.mu.Unlock()
		if err != nil && st.ctx.Err() == nil && !errors.Is(err, errEnded) {
			st.svc.log.Debug("parent lost", "stream", st.id.String(), "peer", p.String(), "err", err.Error())
		}
	}
}

// nextMoveTarget returns the parent a move goes to, then (if that one had
// no room) the parent it left, whose slot we just freed.
func (st *Stream) nextMoveTarget() (peer.ID, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.moveTo != "" {
		return st.moveTo, true
	}
	if st.moveBack != "" {
		p := st.moveBack
		st.moveBack = ""
		return p, true
	}
	return "", false
}

// failoverProbe bounds the check of standby parents after a parent is lost.
const failoverProbe = 150 * time.Millisecond

var (
	errStall = errors.New("parent stalled")
	errLoop  = errors.New("parent is fed by us (loop)")
	errBusy  = errors.New("parent has no room")
	errMove  = errors.New("moving to a parent closer to the source")
)

// subscribe receives the stream from p until it stalls, fails or ends.
func (st *Stream) subscribe(p peer.ID) error {
	cfg := st.svc.cfg
	ctx, cancel := context.WithCancelCause(st.ctx)
	defer cancel(nil)
	st.mu.Lock()
	st.move = func() { cancel(errMove) }
	st.mu.Unlock()
	defer func() {
		st.mu.Lock()
		st.move = nil
		st.mu.Unlock()
	}()
	// Opening a stream on a live connection is immediate; dialling a peer
	// on a LAN takes milliseconds. Give up quickly: the jitter buffer has
	// only a few hundred milliseconds to spare after a parent is lost.
	octx, ocancel := context.WithTimeout(ctx, time.Second)
	ns, err := st.svc.h.NewStream(octx, p, ID)
	ocancel()
	if err != nil {
		return err
	}
	defer ns.Reset()
	_ = ns.Scope().SetService("hivecast.live")
	st.mu.Lock()
	req := &pb.LiveRequest{Stream: st.id.Bytes()}
	if st.have {
		req.FromSeq = st.latest + 1
	} else {
		req.FromLatest = true
	}
	st.mu.Unlock()
	if err := wire.WriteMsg(ns, req); err != nil {
		return err
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
	// Watchdog: a parent that sends nothing (no chunk, no heartbeat) for
	// StallTimeout, or only heartbeats while it has chunks we lack, is
	// dropped.
	lastMsg := make(chan bool, 64) // true: a new chunk
	stalled := make(chan struct{})
	go func() {
		first := time.Second // the first answer comes at once from a live parent
		t := time.NewTimer(first)
		defer t.Stop()
		lastChunk := cfg.Now()
		for {
			select {
			case <-ctx.Done():
				ns.Reset()
				return
			case isChunk := <-lastMsg:
				if isChunk {
					lastChunk = cfg.Now()
				}
				st.mu.Lock()
				// Before our first chunk the parent may be waiting for the next
				// start point; heartbeats alone keep it then.
				behind := st.have && st.parentAhead()
				st.mu.Unlock()
				if behind && cfg.Now().Sub(lastChunk) > cfg.StallTimeout {
					close(stalled)
					ns.Reset()
					return
				}
				if !t.Stop() {
					select {
					case <-t.C:
					default:
					}
				}
				t.Reset(cfg.StallTimeout)
			case <-t.C:
				close(stalled)
				ns.Reset()
				return
			}
		}
	}()
	r := wire.NewReader(ns)
	var parentLatest uint64
	for {
		m, err := live.ReadMessage(r)
		if err != nil {
			select {
			case <-stalled:
				return errStall
			default:
			}
			if errors.Is(context.Cause(ctx), errMove) {
				return errMove
			}
			if errors.Is(err, live.ErrBadPush) {
				st.ban(p, err)
			}
			return err
		}
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
			isChunk = st.add(x.Chunk) || isChunk
			if x.Chunk.Seq > parentLatest {
				parentLatest = x.Chunk.Seq
			}
			if st.firstFrom(p) {
				st.svc.provide(st)
			}
		case *pb.LiveMessage_Status:
			if containsPeer(x.Status.Ancestors, st.svc.h.ID()) {
				return errLoop
			}
			st.mu.Lock()
			if st.parent != p {
				if st.parent != "" || st.switchesBase {
					st.switches++
				}
				st.switchesBase = true
				st.parent, st.parentAt = p, cfg.Now()
			}
			st.depth = int(x.Status.Depth) + 1
			st.ancestors = st.ancestors[:0]
			for _, a := range x.Status.Ancestors {
				if id, err := peer.IDFromBytes(a); err == nil {
					st.ancestors = append(st.ancestors, id)
				}
			}
			st.parentLatest = x.Status.LatestSeq
			if b := x.Status.Bitrate; b > 0 && st.info != nil && st.info.Bitrate != b {
				// The source's measured rate, relayed down the tree (a hint that
				// sizes our own number of children).
				info := proto.Clone(st.info).(*pb.StreamInfo)
				info.Bitrate = b
				st.info = info
			}
			if c := st.cands[p]; c != nil {
				c.depth = int(x.Status.Depth)
				c.spare = int(x.Status.MaxChildren) - int(x.Status.Children)
				c.fails = 0
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
				if c := st.cands[p]; c != nil {
					c.spare = 0
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

// parentAhead reports whether the parent announced chunks we do not have.
func (st *Stream) parentAhead() bool {
	return st.parentLatest > st.latest+1
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

// ban drops p for this stream: it sent something that does not verify.
func (st *Stream) ban(p peer.ID, why error) {
	st.svc.log.Warn("peer sent invalid live data; dropped for this stream", "peer", p.String(), "stream", st.id.String(), "err", why.Error())
	st.mu.Lock()
	st.banned[p] = true
	delete(st.cands, p)
	if k := st.children[p]; k != nil {
		st.mu.Unlock()
		k.once()
		return
	}
	st.mu.Unlock()
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
	for {
		st.mu.Lock()
		n := len(st.cands)
		parent := st.parent
		st.mu.Unlock()
		interval := 10 * time.Second
		if n == 0 {
			interval = time.Second
		}
		if n < minCandidates && time.Since(lastDHT) >= interval && d.RoutingTable().Size() > 0 {
			lastDHT = time.Now()
			ctx, cancel := context.WithTimeout(st.ctx, 10*time.Second)
			for ai := range d.FindProvidersAsync(ctx, st.id, 20) {
				st.svc.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
				st.addCandidate(ai.ID, -1, -1)
			}
			cancel()
		}
		if parent != "" && time.Since(lastPex) >= pexInterval {
			lastPex = time.Now()
			st.exchange(parent)
		}
		select {
		case <-st.ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
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
	if st.parent != "" {
		ids = append(ids, st.parent)
	}
	for p := range st.children {
		ids = append(ids, p)
	}
	var cands []peer.ID
	for p, c := range st.cands {
		if c.fails == 0 {
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

// provide announces in the DHT that this node has the stream, so that
// later viewers find it (and spread over the tree instead of all asking the
// source).
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

// probe asks p where it stands in the stream's tree without subscribing.
func (st *Stream) probe(p peer.ID) { st.probeWithin(p, time.Second) }

// probeWithin probes p, giving up (and counting a failure) after timeout.
func (st *Stream) probeWithin(p peer.ID, timeout time.Duration) {
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
	if err := wire.WriteMsg(ns, &pb.LiveRequest{Stream: st.id.Bytes(), Probe: true}); err != nil {
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
		m, err := live.ReadMessage(r)
		if err != nil {
			if errors.Is(err, live.ErrBadPush) {
				st.ban(p, err)
			}
			return
		}
		switch x := m.Msg.(type) {
		case *pb.LiveMessage_Status:
			answered = true
			st.mu.Lock()
			if c := st.cands[p]; c != nil {
				c.fails = 0
				c.depth = int(x.Status.Depth)
				c.spare = int(x.Status.MaxChildren) - int(x.Status.Children)
				if containsPeer(x.Status.Ancestors, st.svc.h.ID()) {
					c.spare = 0 // fed through us: never our parent
				}
				c.probedAt = st.svc.cfg.Now()
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
		// children's room): it must not override what a recent probe or
		// subscription told us, or a join walks through full peers one
		// round trip at a time.
		spare := int(lp.Spare)
		st.mu.Lock()
		if c := st.cands[id]; c != nil && c.spare >= 0 && st.svc.cfg.Now().Sub(c.probedAt) < 3*time.Second {
			spare = -1
		}
		st.mu.Unlock()
		st.addCandidate(id, int(lp.Depth), spare)
	}
}

// probeUnknown probes, in parallel, up to n candidates not probed recently.
func (st *Stream) probeUnknown(n int) {
	now := st.svc.cfg.Now()
	st.mu.Lock()
	var ids []peer.ID
	for id, c := range st.cands {
		if now.Sub(c.probedAt) > 5*time.Second {
			ids = append(ids, id)
		}
	}
	st.mu.Unlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if len(ids) > n {
		ids = ids[:n]
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func(id peer.ID) {
			defer wg.Done()
			st.probe(id)
		}(id)
	}
	wg.Wait()
}

// probeStandbys probes the n best candidates other than the parent.
func (st *Stream) probeStandbys(n int) { st.probeStandbysWithin(n, time.Second) }

// probeStandbysWithin probes the n best candidates in parallel, each within
// timeout.
func (st *Stream) probeStandbysWithin(n int, timeout time.Duration) {
	st.mu.Lock()
	parent := st.parent
	type cand struct {
		id    peer.ID
		score int
	}
	var list []cand
	for id, c := range st.cands {
		if _, isChild := st.children[id]; isChild || id == parent {
			continue
		}
		d := c.depth
		if d < 0 {
			d = 32
		}
		sc := d*4 + c.fails*8
		if c.spare == 0 {
			sc += 64
		}
		list = append(list, cand{id, sc})
	}
	st.mu.Unlock()
	sort.Slice(list, func(i, j int) bool {
		if list[i].score != list[j].score {
			return list[i].score < list[j].score
		}
		return list[i].id < list[j].id
	})
	if len(list) > n {
		list = list[:n]
	}
	var wg sync.WaitGroup
	for _, c := range list {
		wg.Add(1)
		go func(id peer.ID) {
			defer wg.Done()
			st.probeWithin(id, timeout)
		}(c.id)
	}
	wg.Wait()
}

// optimize moves the viewer up the tree: every few seconds it probes a few
// candidates and, if one with room is at least two hops closer to the source
// than its parent, switches to it (resuming at the next chunk, so nothing is
// lost). Hysteresis keeps the tree from churning.
func (st *Stream) optimize() {
	defer st.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastMove := time.Time{}
	for tick := 0; ; tick++ {
		select {
		case <-st.ctx.Done():
			return
		case <-t.C:
		}
		// Keep the best two standby parents known to be alive, so that a
		// failover goes to a live peer at the first try (after a host dies,
		// its connections look open until liveness pings time out).
		st.probeStandbys(2)
		if tick%3 != 0 {
			continue
		}
		st.probeUnknown(4)
		now := st.svc.cfg.Now()
		st.mu.Lock()
		depth := st.depth
		var target peer.ID
		bestDepth := 0
		if st.parent != "" && depth > 1 && now.Sub(lastMove) > 10*time.Second {
			for id, c := range st.cands {
				if _, isChild := st.children[id]; isChild || id == st.parent {
					continue
				}
				// At least two levels closer (hysteresis), the closest first.
				if c.depth >= 0 && c.depth+1 <= depth-2 && c.spare > 0 && c.fails == 0 &&
					(target == "" || c.depth < bestDepth || (c.depth == bestDepth && id < target)) {
					target, bestDepth = id, c.depth
				}
			}
		}
		st.mu.Unlock()
		if target == "" {
			continue
		}
		// The candidate's room may be stale (a redirect, an old probe):
		// ask again just before leaving a parent that works, so that our
		// children do not starve while we walk through full parents.
		st.probeWithin(target, 500*time.Millisecond)
		st.mu.Lock()
		c := st.cands[target]
		ok := c != nil && c.fails == 0 && c.spare > 0 && c.depth >= 0 && c.depth+1 <= st.depth-2 && st.parent != ""
		move := st.move
		if ok && move != nil {
			st.moveTo, st.moveBack = target, st.parent
		}
		st.mu.Unlock()
		if ok && move != nil {
			lastMove = now
			move()
		}
	}
}
