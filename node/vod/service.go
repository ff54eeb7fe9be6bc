// Package vod wires on-demand video to libp2p: it serves the chunk protocol
// and peer exchange from the node's store, announces what the node holds in
// the DHT, and runs download sessions that pull a file from every provider at
// once (protocol/sched decides what to ask of whom) into the playback
// pipeline (player.VOD), which players read over HTTP.
package vod

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/hivecast/hivecast/node"
	"github.com/hivecast/hivecast/node/bwlimit"
	"github.com/hivecast/hivecast/node/store"
	"github.com/hivecast/hivecast/protocol/chunk"
	"github.com/hivecast/hivecast/protocol/manifest"
	"github.com/hivecast/hivecast/protocol/pex"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"
)

// Protocol IDs as libp2p sees them.
const (
	ChunkID protocol.ID = chunk.ID
	PexID   protocol.ID = pex.ID
)

// Defaults.
const (
	// ProvideInterval: provider records live 48 h in the DHT; re-announce
	// well before (kubo uses 22 h).
	ProvideInterval = 12 * time.Hour
	// MaxServeStreams bounds the chunk requests one peer may have open here.
	MaxServeStreams = 16
	// DefaultFindTimeout bounds the wait for a first provider.
	DefaultFindTimeout = 20 * time.Second
	serveTimeout       = 60 * time.Second
	protectTag         = "hivecast-vod"
)

// Config tunes the service.
type Config struct {
	Upload, Download *rate.Limiter // nil: unlimited
	FindTimeout      time.Duration
	// IdleTimeout ends a --no-store session this long after its last reader left.
	IdleTimeout time.Duration
	// Live serves GET /stream/{id} for live stream IDs (the live service).
	Live http.Handler
	// LivePeers answers peer exchange for live stream IDs.
	LivePeers func(id cid.Cid, max int) []*pb.PeerRecord
}

// Service is the on-demand video service of one node.
type Service struct {
	n   *node.Node
	h   host.Host
	st  *store.Store
	cfg Config
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[cid.Cid]*Session
	serving  map[peer.ID]int
	known    map[cid.Cid]map[peer.ID]time.Time // peers seen holding or fetching content
	provided map[cid.Cid]time.Time
	kick     chan struct{}
	upBytes  int64
	closed   bool
}

// New starts the service on n: it registers the chunk and PEX stream handlers
// and the provide loop.
func New(n *node.Node, st *store.Store, cfg Config) *Service {
	if cfg.FindTimeout <= 0 {
		cfg.FindTimeout = DefaultFindTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithCancel(n.Context())
	s := &Service{
		n: n, h: n.Host(), st: st, cfg: cfg, log: n.Logger().With("svc", "vod"),
		ctx: ctx, cancel: cancel,
		sessions: map[cid.Cid]*Session{},
		serving:  map[peer.ID]int{},
		known:    map[cid.Cid]map[peer.ID]time.Time{},
		provided: map[cid.Cid]time.Time{},
		kick:     make(chan struct{}, 1),
	}
	s.h.SetStreamHandler(ChunkID, s.handleChunk)
	s.h.SetStreamHandler(PexID, s.handlePex)
	s.wg.Add(1)
	go s.provideLoop()
	return s
}

// Close stops every session and the service's goroutines.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	sessions := make([]*Session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	s.h.RemoveStreamHandler(ChunkID)
	s.h.RemoveStreamHandler(PexID)
	for _, ss := range sessions {
		ss.Close()
	}
	s.cancel()
	s.wg.Wait()
	return nil
}

// Store is the service's store.
func (s *Service) Store() *store.Store { return s.st }

// Share shares the file at path and announces it.
func (s *Service) Share(path, name string, chunkSize int) (*manifest.Manifest, error) {
	if chunkSize == 0 {
		chunkSize = manifest.DefaultChunkSize
	}
	m, err := s.st.Share(path, name, chunkSize)
	if err != nil {
		return nil, err
	}
	s.log.Info("sharing", "id", m.ID().String(), "name", m.Name(), "size", m.Size())
	s.mu.Lock()
	delete(s.provided, m.ID())
	s.mu.Unlock()
	s.poke()
	return m, nil
}

// Unshare stops sharing id (and drops it from the cache).
func (s *Service) Unshare(id cid.Cid) error {
	s.mu.Lock()
	ss := s.sessions[id]
	s.mu.Unlock()
	if ss != nil {
		ss.Close()
	}
	if err := s.st.Unshare(id); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.provided, id)
	s.mu.Unlock()
	return nil
}

func (s *Service) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// provideLoop announces every held ID in the DHT at once and again before
// the records expire.
func (s *Service) provideLoop() {
	defer s.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		pending := false
		for _, id := range s.st.Held() {
			s.mu.Lock()
			last, ok := s.provided[id]
			s.mu.Unlock()
			if ok && time.Since(last) < ProvideInterval {
				continue
			}
			if s.n.DHT().RoutingTable().Size() == 0 {
				pending = true // nobody to tell yet: retry soon
				break
			}
			ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
			err := s.n.DHT().Provide(ctx, id, true)
			cancel()
			if s.ctx.Err() != nil {
				return
			}
			if err != nil {
				s.log.Warn("announce failed", "id", id.String(), "err", err.Error())
				continue
			}
			s.mu.Lock()
			s.provided[id] = time.Now()
			s.mu.Unlock()
			s.log.Debug("announced", "id", id.String())
		}
		var retry <-chan time.Time
		if pending {
			retry = time.After(time.Second)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		case <-retry:
		}
	}
}

// Announced reports whether id has been announced in the DHT.
func (s *Service) Announced(id cid.Cid) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.provided[id]
	return ok
}

func (s *Service) note(id cid.Cid, p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.known[id]
	if m == nil {
		m = map[peer.ID]time.Time{}
		s.known[id] = m
	}
	m[p] = time.Now()
	if len(m) > 256 { // forget the oldest
		var oldest peer.ID
		var ot time.Time
		for q, t := range m {
			if oldest == "" || t.Before(ot) {
				oldest, ot = q, t
			}
		}
		delete(m, oldest)
	}
}

func (s *Service) handleChunk(st network.Stream) {
	p := st.Conn().RemotePeer()
	if err := st.Scope().SetService("hivecast.chunk"); err != nil {
		st.Reset()
		return
	}
	s.mu.Lock()
	if s.closed || s.serving[p] >= MaxServeStreams {
		s.mu.Unlock()
		_ = wire.WriteMsg(st, &pb.ChunkResponse{Msg: &pb.ChunkResponse_End{End: &pb.Status{Code: pb.Code_BUSY, Message: "too many requests in flight"}}})
		st.Close()
		return
	}
	s.serving[p]++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.serving[p]--; s.serving[p] <= 0 {
			delete(s.serving, p)
		}
		s.mu.Unlock()
	}()
	_ = st.SetDeadline(time.Now().Add(serveTimeout))
	cw := &countingWriter{w: bwlimit.Writer(s.ctx, st, s.cfg.Upload)}
	rw := &noteRW{r: st, w: cw, onContent: func(id cid.Cid) { s.note(id, p) }}
	err := chunk.Serve(rw, s.st)
	s.mu.Lock()
	s.upBytes += cw.n
	s.mu.Unlock()
	if err != nil {
		s.log.Debug("chunk request", "peer", p.String(), "err", err.Error())
		st.Reset()
		return
	}
	st.Close()
}

// UploadedBytes is the payload this node has served.
func (s *Service) UploadedBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upBytes
}

// Peers implements pex.Source: peers known to hold or fetch content, with
// their addresses.
func (s *Service) Peers(content cid.Cid, max int) []*pb.PeerRecord {
	if content.Prefix().Codec == manifest.CodecLive && s.cfg.LivePeers != nil {
		return s.cfg.LivePeers(content, max)
	}
	var ids []peer.ID
	if _, held := s.st.Lookup(content); held {
		ids = append(ids, s.h.ID()) // the asker may not know we hold it
	}
	s.mu.Lock()
	for p := range s.known[content] {
		ids = append(ids, p)
	}
	if ss := s.sessions[content]; ss != nil {
		ids = append(ids, ss.providerList()...)
	}
	s.mu.Unlock()
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

func (s *Service) handlePex(st network.Stream) {
	if err := st.Scope().SetService("hivecast.pex"); err != nil {
		st.Reset()
		return
	}
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	if err := pex.Serve(st, s); err != nil {
		st.Reset()
		return
	}
	st.Close()
}

// Session returns the running session of id, if any.
func (s *Service) Session(id cid.Cid) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// Play returns the session of id, starting one if needed: it finds
// providers, fetches and verifies the manifest (waiting at most FindTimeout)
// and starts downloading. noStore keeps only a bounded window in memory.
func (s *Service) Play(ctx context.Context, id cid.Cid, noStore bool) (*Session, error) {
	return s.PlayWithin(ctx, id, noStore, s.cfg.FindTimeout)
}

// PlayWithin is Play with its own bound on the wait for a first provider.
func (s *Service) PlayWithin(ctx context.Context, id cid.Cid, noStore bool, findTimeout time.Duration) (*Session, error) {
	kind, err := manifest.KindOf(id)
	if err != nil {
		return nil, err
	}
	if kind != manifest.KindFile {
		return nil, errors.New("that ID names a live stream, not a file")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("service closed")
	}
	if ss := s.sessions[id]; ss != nil {
		s.mu.Unlock()
		return ss, nil
	}
	s.mu.Unlock()

	m, local := s.st.Lookup(id)
	var first []peer.ID
	if !local {
		m, first, err = s.findManifest(ctx, id, findTimeout)
		if err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss := s.sessions[id]; ss != nil { // raced with another Play
		return ss, nil
	}
	ss, err := newSession(s, m, noStore, first)
	if err != nil {
		return nil, err
	}
	s.sessions[id] = ss
	return ss, nil
}

func (s *Service) endSession(ss *Session) {
	s.mu.Lock()
	if s.sessions[ss.id] == ss {
		delete(s.sessions, ss.id)
	}
	s.mu.Unlock()
}

// ErrNoProviders: nobody in the swarm provides the ID.
var ErrNoProviders = errors.New("no providers found")

// findManifest looks up providers and fetches the manifest from the first
// one that delivers a valid one.
func (s *Service) findManifest(ctx context.Context, id cid.Cid, timeout time.Duration) (*manifest.Manifest, []peer.ID, error) {
	if timeout <= 0 {
		timeout = s.cfg.FindTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tried := map[peer.ID]bool{}
	var found []peer.ID
	var lastErr error
	for ctx.Err() == nil {
		if s.n.DHT().RoutingTable().Size() == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		try := func(ai peer.AddrInfo) *manifest.Manifest {
			if ai.ID == s.h.ID() || tried[ai.ID] {
				return nil
			}
			tried[ai.ID] = true
			found = append(found, ai.ID)
			s.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
			m, err := s.fetchManifest(ctx, ai.ID, id)
			if err != nil {
				lastErr = err
				s.log.Debug("manifest fetch failed", "peer", ai.ID.String(), "err", err.Error())
				return nil
			}
			return m
		}
		// One DHT round, bounded: a lookup whose closest peers are out of
		// reach (a partition) must not use up the whole wait.
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		for ai := range s.n.DHT().FindProvidersAsync(rctx, id, 0) {
			if m := try(ai); m != nil {
				rcancel()
				return m, found, nil
			}
		}
		rcancel()
		// Then ask the peers we are connected to (peer exchange): a holder
		// names itself, and others name holders they know.
		for _, ai := range s.askNeighbours(ctx, id) {
			if m := try(ai); m != nil {
				return m, found, nil
			}
		}
		if ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	if lastErr != nil {
		return nil, nil, fmt.Errorf("%w that serve %s (last error: %v)", ErrNoProviders, id, lastErr)
	}
	return nil, nil, fmt.Errorf("%w for %s after %v", ErrNoProviders, id, timeout)
}

// askNeighbours asks up to 8 connected peers, in parallel, which peers hold id.
func (s *Service) askNeighbours(ctx context.Context, id cid.Cid) []peer.AddrInfo {
	peers := s.h.Network().Peers()
	if len(peers) > 8 {
		peers = peers[:8]
	}
	var mu sync.Mutex
	var out []peer.AddrInfo
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func(p peer.ID) {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			st, err := s.h.NewStream(pctx, p, PexID)
			if err != nil {
				return
			}
			stop := context.AfterFunc(pctx, func() { st.Reset() })
			defer stop()
			recs, err := pex.Request(st, id, 16)
			if err != nil {
				st.Reset()
				return
			}
			st.Close()
			for _, rec := range recs {
				ai, err := node.AddrInfoFromRecord(rec)
				if err != nil {
					continue
				}
				mu.Lock()
				out = append(out, ai)
				mu.Unlock()
			}
		}(p)
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *Service) fetchManifest(ctx context.Context, p peer.ID, id cid.Cid) (*manifest.Manifest, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := s.h.NewStream(ctx, p, ChunkID)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	m, err := chunk.FetchManifest(st, id)
	if err != nil {
		st.Reset()
		return nil, err
	}
	st.Close()
	return m, nil
}

type countingWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// noteRW peeks at the request to learn which content the peer asks for.
type noteRW struct {
	r         interface{ Read([]byte) (int, error) }
	w         interface{ Write([]byte) (int, error) }
	onContent func(cid.Cid)
	buf       []byte
	done      bool
}

func (n *noteRW) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	if !n.done && k > 0 {
		n.buf = append(n.buf, p[:k]...)
		if id, ok := peekContent(n.buf); ok {
			n.done = true
			n.onContent(id)
		} else if len(n.buf) > wire.MaxRequest+16 {
			n.done = true
		}
	}
	return k, err
}

func (n *noteRW) Write(p []byte) (int, error) { return n.w.Write(p) }
