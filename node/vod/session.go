package vod

import (
	"context"
	"encoding/binary"
	"errors"
	"github.com/hivecast/hivecast/node"
	"sort"
	"sync"
	"time"

	"github.com/hivecast/hivecast/node/bwlimit"
	"github.com/hivecast/hivecast/node/store"
	"github.com/hivecast/hivecast/player"
	"github.com/hivecast/hivecast/protocol/chunk"
	"github.com/hivecast/hivecast/protocol/manifest"
	"github.com/hivecast/hivecast/protocol/pex"
	"github.com/hivecast/hivecast/protocol/sched"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// noStoreWindow is how many chunks a --no-store session keeps in memory.
const noStoreWindow = 64

// Session is the download and playback of one file.
type Session struct {
	svc     *Service
	id      cid.Cid
	m       *manifest.Manifest
	vod     *player.VOD
	entry   *store.Entry
	fb      *fallbackStore // nil unless caching to disk
	noStore bool
	local   bool // served from this node's own share: nothing to download

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events chan event
	wants  chan int

	mu        sync.Mutex
	providers map[peer.ID]bool
	banned    map[peer.ID]bool
	stats     SessionStats
	down      int64
	started   time.Time
	closeOnce sync.Once
}

// SessionStats is what `play` shows and the API reports.
type SessionStats struct {
	ID            string      `json:"id"`
	Name          string      `json:"name"`
	Size          int64       `json:"size"`
	Mime          string      `json:"mime"`
	Chunks        int         `json:"chunks"`
	Held          int         `json:"held"`
	Percent       float64     `json:"percent"`
	Complete      bool        `json:"complete"`
	NoStore       bool        `json:"no_store"`
	DownBytes     int64       `json:"down_bytes"`
	DownRate      float64     `json:"down_bps"` // bits/s, last second
	UpRate        float64     `json:"up_bps"`   // bits/s of the whole node
	Providers     int         `json:"providers"`
	Banned        int         `json:"banned"`
	BufferedAhead float64     `json:"buffered_ahead_s"`
	Readers       int         `json:"readers"`
	Peers         []PeerStats `json:"peers"`
}

// PeerStats is one provider's part of a download.
type PeerStats struct {
	ID       string  `json:"id"`
	Rate     float64 `json:"rate_bps"`
	Bytes    int64   `json:"bytes"`
	Chunks   int     `json:"chunks"`
	Inflight int     `json:"inflight"`
}

type event struct {
	kind  int // evChunk, evDone, evPeer
	req   uint64
	peer  peer.ID
	index int
	n     int
	err   error
}

const (
	evChunk = iota
	evDone
	evPeer
)

func newSession(s *Service, m *manifest.Manifest, noStore bool, first []peer.ID) (*Session, error) {
	ctx, cancel := context.WithCancel(s.ctx)
	ss := &Session{
		svc: s, id: m.ID(), m: m, noStore: noStore,
		ctx: ctx, cancel: cancel,
		events:    make(chan event, 256),
		wants:     make(chan int, 16),
		providers: map[peer.ID]bool{},
		banned:    map[peer.ID]bool{},
		started:   time.Now(),
	}
	var cs player.ChunkStore
	if s.st.Shared(m.ID()) {
		ss.local = true
		cs = &shareStore{st: s.st, id: m.ID(), n: m.NumChunks()}
	} else if noStore {
		cs = player.NewMemWindow(noStoreWindow)
	} else {
		e, err := s.st.Cache(m)
		if err != nil {
			cancel()
			return nil, err
		}
		ss.entry = e
		ss.fb = &fallbackStore{disk: e, mem: player.NewMemWindow(noStoreWindow), log: func(err error) {
			s.log.Error("cache write failed; keeping this download in memory only", "id", m.ID().String(), "err", err.Error())
		}}
		cs = ss.fb
	}
	vod, err := player.NewVOD(m.Size(), m.ChunkSize(), cs, player.VODOptions{
		Name: m.Name(), MIME: m.Mime(),
		OnWant: func(i int) {
			select {
			case ss.wants <- i:
			default:
			}
		},
	})
	if err != nil {
		cancel()
		if ss.entry != nil {
			ss.entry.Release()
		}
		return nil, err
	}
	ss.vod = vod
	for _, p := range first {
		ss.providers[p] = true
	}
	ss.stats = SessionStats{ID: m.ID().String(), Name: m.Name(), Size: m.Size(), Mime: m.Mime(), Chunks: m.NumChunks(), NoStore: noStore}
	if !ss.local {
		ss.wg.Add(2)
		go ss.run(first)
		go ss.discover()
	} else {
		ss.stats.Held, ss.stats.Percent, ss.stats.Complete = m.NumChunks(), 100, true
	}
	return ss, nil
}

// ID is the content ID.
func (ss *Session) ID() cid.Cid { return ss.id }

// Manifest is the verified manifest.
func (ss *Session) Manifest() *manifest.Manifest { return ss.m }

// VOD is the playback pipeline players read from.
func (ss *Session) VOD() *player.VOD { return ss.vod }

// Stats returns a snapshot.
func (ss *Session) Stats() SessionStats {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	st := ss.stats
	st.Peers = append([]PeerStats(nil), ss.stats.Peers...)
	st.Readers = len(ss.vod.Playheads())
	return st
}

// Close stops the download and releases the session's resources.
func (ss *Session) Close() {
	ss.closeOnce.Do(func() {
		ss.cancel()
		ss.wg.Wait()
		ss.vod.Close()
		if ss.entry != nil {
			ss.entry.Release()
		}
		ss.svc.endSession(ss)
	})
}

func (ss *Session) providerList() []peer.ID {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := make([]peer.ID, 0, len(ss.providers))
	for p := range ss.providers {
		out = append(out, p)
	}
	return out
}

func (ss *Session) send(ev event) {
	select {
	case ss.events <- ev:
	case <-ss.ctx.Done():
	}
}

// discover finds providers: the DHT now and every 30 s, and peer exchange
// with the providers it has every 10 s. New ones join the download at once.
func (ss *Session) discover() {
	defer ss.wg.Done()
	h := ss.svc.h
	add := func(p peer.ID) {
		if p == h.ID() {
			return
		}
		ss.mu.Lock()
		known := ss.providers[p] || ss.banned[p]
		if !known {
			ss.providers[p] = true
		}
		ss.mu.Unlock()
		if !known {
			ss.send(event{kind: evPeer, peer: p})
		}
	}
	lastDHT := time.Time{}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	pexAt := map[peer.ID]time.Time{}
	for {
		if time.Since(lastDHT) > 30*time.Second && ss.svc.n.DHT().RoutingTable().Size() > 0 {
			lastDHT = time.Now()
			ctx, cancel := context.WithTimeout(ss.ctx, 20*time.Second)
			for ai := range ss.svc.n.DHT().FindProvidersAsync(ctx, ss.id, 0) {
				h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
				add(ai.ID)
			}
			cancel()
		}
		for _, p := range ss.providerList() {
			if time.Since(pexAt[p]) < 10*time.Second || h.Network().Connectedness(p) != network.Connected {
				continue
			}
			pexAt[p] = time.Now()
			for _, rec := range ss.pex(p) {
				ai, err := node.AddrInfoFromRecord(rec)
				if err != nil {
					continue
				}
				h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
				add(ai.ID)
			}
		}
		select {
		case <-ss.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (ss *Session) pex(p peer.ID) []*pb.PeerRecord {
	ctx, cancel := context.WithTimeout(ss.ctx, 5*time.Second)
	defer cancel()
	st, err := ss.svc.h.NewStream(ctx, p, PexID)
	if err != nil {
		return nil
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	recs, err := pex.Request(st, ss.id, 32)
	if err != nil {
		st.Reset()
		return nil
	}
	st.Close()
	return recs
}

// run owns the scheduler: it issues requests, feeds outcomes back, follows
// the playhead, and keeps the stats.
func (ss *Session) run(first []peer.ID) {
	defer ss.wg.Done()
	now := time.Now()
	sc := sched.New(sched.Config{NumChunks: ss.m.NumChunks(), ChunkSize: ss.m.ChunkSize(), Store: !ss.noStore}, now)
	if ss.entry != nil {
		for _, i := range ss.entry.Held() {
			sc.SetHave(i)
		}
	}
	for _, p := range first {
		sc.AddPeer(sched.PeerID(p), now)
	}
	inflight := map[uint64]context.CancelFunc{}
	var fetches sync.WaitGroup
	defer func() {
		for _, c := range inflight {
			c()
		}
		fetches.Wait()
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	playhead := -1
	lastDown, lastTick := int64(0), now
	idleSince := time.Time{}
	announced := false
	lastForget := now
	cm := ss.svc.h.ConnManager()
	for {
		now = time.Now()
		// Complete: done, unless the disk failed and some chunks live only
		// in the bounded memory window (they may have to be fetched again).
		if !ss.noStore && sc.Complete() && !ss.fb.isFailed() {
			ss.updateStats(sc, now, &lastDown, &lastTick)
			ss.svc.log.Info("download complete", "id", ss.id.String(), "name", ss.m.Name(), "seconds", time.Since(ss.started).Seconds())
			ss.svc.poke()
			ss.lingerComplete(tick.C)
			return
		}
		for _, r := range sc.Next(now) {
			ctx, cancel := context.WithDeadline(ss.ctx, r.Timeout)
			inflight[r.ID] = cancel
			fetches.Add(1)
			cm.Protect(peer.ID(r.Peer), protectTag)
			go func(r sched.Request) {
				defer fetches.Done()
				defer cancel()
				err := ss.fetch(ctx, r)
				ss.send(event{kind: evDone, req: r.ID, peer: peer.ID(r.Peer), err: err})
			}(r)
		}
		if w := sc.NextWake(now); !w.IsZero() {
			timer.Reset(max(time.Until(w), time.Millisecond))
		}
		select {
		case <-ss.ctx.Done():
			return
		case ev := <-ss.events:
			now = time.Now()
			switch ev.kind {
			case evPeer:
				sc.AddPeer(sched.PeerID(ev.peer), now)
			case evChunk:
				sc.OnChunk(ev.req, sched.PeerID(ev.peer), ev.index, ev.n, now)
				ss.mu.Lock()
				ss.down += int64(ev.n)
				ss.mu.Unlock()
				if !announced && !ss.noStore {
					announced = true
					ss.svc.poke() // a viewer becomes a provider
				}
			case evDone:
				if c := inflight[ev.req]; c != nil {
					c()
					delete(inflight, ev.req)
				}
				ss.outcome(sc, ev, now)
			}
		case i := <-ss.wants:
			ss.refetch(sc, i)
			for _, id := range sc.Seek(i, time.Now()) {
				if c := inflight[id]; c != nil {
					c()
				}
			}
			playhead = i
		case <-timer.C:
		case <-tick.C:
			if now.Sub(lastForget) > 3*time.Second {
				// Providers that are downloading too gain chunks: ask
				// again what they answered NOT_FOUND to before.
				lastForget = now
				for _, p := range ss.providerList() {
					sc.ForgetMissing(sched.PeerID(p))
				}
			}
			if p := ss.urgentPlayhead(); p >= 0 && p != playhead {
				playhead = p
				ss.refetch(sc, p)
				for _, id := range sc.Seek(p, now) {
					if c := inflight[id]; c != nil {
						c()
					}
				}
			}
			ss.updateStats(sc, now, &lastDown, &lastTick)
			if ss.noStore {
				if len(ss.vod.Playheads()) == 0 {
					if idleSince.IsZero() {
						idleSince = now
					} else if now.Sub(idleSince) > ss.svc.cfg.IdleTimeout {
						go ss.Close() // Close waits for this goroutine
						return
					}
				} else {
					idleSince = time.Time{}
				}
			}
		}
	}
}

// refetch makes the scheduler fetch again the chunks from i on (up to the
// memory window) that it counts as held but the player's store no longer
// has: a bounded memory window dropped them (--no-store, or a full disk),
// and a reader came back to them.
func (ss *Session) refetch(sc *sched.Scheduler, i int) {
	for j := i; j < min(i+noStoreWindow/2, ss.m.NumChunks()); j++ {
		if sc.Has(j) && !ss.vod.Has(j) {
			sc.Forget(j)
		}
	}
}

// lingerComplete keeps a finished session open while players read it, and
// ends it IdleTimeout after the last reader left, which unpins its cache
// entry so that the cache can evict it under --cache-size. The cache keeps
// serving (and announcing) it as long as it stays.
func (ss *Session) lingerComplete(tick <-chan time.Time) {
	var idleSince time.Time
	for {
		select {
		case <-ss.ctx.Done():
			return
		case <-tick:
		}
		if len(ss.vod.Playheads()) > 0 {
			idleSince = time.Time{}
			continue
		}
		if idleSince.IsZero() {
			idleSince = time.Now()
		} else if time.Since(idleSince) > ss.svc.cfg.IdleTimeout {
			go ss.Close() // Close waits for this goroutine to return
			return
		}
	}
}

// urgentPlayhead is the chunk of the reader with the least buffered ahead.
func (ss *Session) urgentPlayhead() int {
	best, bestAhead := -1, int64(-1)
	for _, ph := range ss.vod.Playheads() {
		if ph.Chunk >= ss.m.NumChunks() {
			continue
		}
		if best < 0 || ph.Ahead < bestAhead {
			best, bestAhead = ph.Chunk, ph.Ahead
		}
	}
	return best
}

func (ss *Session) outcome(sc *sched.Scheduler, ev event, now time.Time) {
	p := sched.PeerID(ev.peer)
	var verr *chunk.VerifyError
	switch {
	case ev.err == nil, errors.Is(ev.err, chunk.ErrPartial):
		sc.OnDone(ev.req, p, now)
	case errors.As(ev.err, &verr), errors.Is(ev.err, chunk.ErrProtocol):
		ss.svc.log.Warn("peer sent data that does not verify; dropped for this content", "peer", ev.peer.String(), "id", ss.id.String(), "err", ev.err.Error())
		sc.Ban(p, now)
		ss.mu.Lock()
		ss.banned[ev.peer] = true
		delete(ss.providers, ev.peer)
		ss.mu.Unlock()
	case errors.Is(ev.err, chunk.ErrNotFound):
		sc.OnError(ev.req, p, sched.ErrNotFound, now)
	case errors.Is(ev.err, chunk.ErrBusy):
		sc.OnError(ev.req, p, sched.ErrBusy, now)
	case errors.Is(ev.err, context.DeadlineExceeded):
		sc.OnError(ev.req, p, sched.ErrTimeout, now)
	case errors.Is(ev.err, context.Canceled):
		sc.OnError(ev.req, p, sched.ErrOther, now)
	default:
		sc.OnError(ev.req, p, sched.ErrReset, now)
		if ss.svc.h.Network().Connectedness(ev.peer) != network.Connected {
			// Gone: forget it; discovery adds it back if it returns.
			sc.RemovePeer(p, now)
			ss.mu.Lock()
			delete(ss.providers, ev.peer)
			ss.mu.Unlock()
		}
	}
}

// fetch runs one range request against one peer.
func (ss *Session) fetch(ctx context.Context, r sched.Request) error {
	p := peer.ID(r.Peer)
	st, err := ss.svc.h.NewStream(ctx, p, ChunkID)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	_ = st.Scope().SetService("hivecast.chunk")
	rw := struct {
		readerFunc
		writerFunc
	}{readerFunc(bwlimit.Reader(ctx, st, ss.svc.cfg.Download).Read), writerFunc(st.Write)}
	err = chunk.FetchRange(rw, ss.m, uint64(r.First), r.Count, func(index uint64, data []byte) error {
		if !ss.vod.Has(int(index)) {
			if perr := ss.vod.Put(int(index), data); perr != nil && !errors.Is(perr, player.ErrFull) {
				return perr
			}
		}
		ss.send(event{kind: evChunk, req: r.ID, peer: p, index: int(index), n: len(data)})
		return ctx.Err()
	})
	if err != nil {
		st.Reset()
		if ctx.Err() != nil && !errors.Is(err, chunk.ErrProtocol) {
			return ctx.Err()
		}
		return err
	}
	st.Close()
	return nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (ss *Session) updateStats(sc *sched.Scheduler, now time.Time, lastDown *int64, lastTick *time.Time) {
	s := sc.Stats()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	dt := now.Sub(*lastTick).Seconds()
	if dt > 0.2 {
		ss.stats.DownRate = float64(ss.down-*lastDown) * 8 / dt
		*lastDown, *lastTick = ss.down, now
	}
	ss.stats.Held = s.Held
	ss.stats.Percent = 100 * float64(s.Held) / float64(max(1, s.NumChunks))
	ss.stats.Complete = s.Held == s.NumChunks
	ss.stats.DownBytes = ss.down
	ss.stats.UpRate = ss.svc.n.Status().RateOut
	ss.stats.Providers = len(ss.providers)
	ss.stats.Banned = len(ss.banned)
	ss.stats.BufferedAhead = s.BufferedAhead.Seconds()
	ss.stats.Peers = ss.stats.Peers[:0]
	for _, p := range s.Peers {
		ss.stats.Peers = append(ss.stats.Peers, PeerStats{ID: string(p.ID), Rate: p.Rate * 8, Bytes: p.Bytes, Chunks: p.Chunks, Inflight: p.Inflight})
	}
	sort.Slice(ss.stats.Peers, func(i, j int) bool { return ss.stats.Peers[i].Bytes > ss.stats.Peers[j].Bytes })
	for i := range ss.stats.Peers {
		ss.stats.Peers[i].ID = peer.ID(ss.stats.Peers[i].ID).String()
	}
}

// shareStore reads a file this node shares itself.
type shareStore struct {
	st *store.Store
	id cid.Cid
	n  int
}

func (s *shareStore) Get(i int, buf []byte) ([]byte, bool) {
	b, err := s.st.Chunk(s.id, uint64(i), buf)
	return b, err == nil
}
func (s *shareStore) Put(int, []byte) error { return nil }
func (s *shareStore) Has(i int) bool        { return i >= 0 && i < s.n }
func (s *shareStore) Delete(int)            {}

// fallbackStore writes to the disk cache and, if the disk fails (full),
// keeps playing from a bounded memory window: nothing is lost but the cache.
type fallbackStore struct {
	disk *store.Entry
	mem  *player.MemWindow
	log  func(error)

	mu     sync.Mutex
	failed bool
}

func (f *fallbackStore) Get(i int, buf []byte) ([]byte, bool) {
	if b, ok := f.disk.Get(i, buf); ok {
		return b, true
	}
	return f.mem.Get(i, buf)
}

func (f *fallbackStore) Put(i int, data []byte) error {
	f.mu.Lock()
	failed := f.failed
	f.mu.Unlock()
	if !failed {
		err := f.disk.Put(i, data)
		if err == nil {
			return nil
		}
		f.mu.Lock()
		f.failed = true
		f.mu.Unlock()
		f.log(err)
	}
	return f.mem.Put(i, data)
}

func (f *fallbackStore) isFailed() bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

func (f *fallbackStore) Has(i int) bool { return f.disk.Has(i) || f.mem.Has(i) }
func (f *fallbackStore) Delete(i int)   { f.disk.Delete(i); f.mem.Delete(i) }

// SetPlayheads lets the memory window drop what every reader has passed.
func (f *fallbackStore) SetPlayheads(chunks []int) { f.mem.SetPlayheads(chunks) }

// peekContent decodes the content ID of a ChunkRequest frame once the whole
// frame is in b.
func peekContent(b []byte) (cid.Cid, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > wire.MaxRequest || uint64(len(b)-k) < n {
		return cid.Undef, false
	}
	var req pb.ChunkRequest
	if proto.Unmarshal(b[k:k+int(n)], &req) != nil {
		return cid.Undef, false
	}
	id, err := wire.ParseContent(req.Content)
	return id, err == nil
}
