// Package live wires live streams to libp2p: a source ingests MPEG-TS,
// chunks and signs it; every node that takes part in a stream keeps a window
// of recent chunks, pushes each new verified chunk to its children over the
// live push protocol (/hivecast/live/1.0.0), and, if it is a viewer, pulls
// the stream from one parent, switching parent within a fraction of a second
// when the parent stalls. docs/architecture.md explains the delivery design.
package live

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/hivecast/hivecast/node"
	"github.com/hivecast/hivecast/protocol/live"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"
)

// ID is the live push protocol as libp2p sees it.
const ID protocol.ID = live.PushID

// Config tunes the live service. Zero fields take defaults.
type Config struct {
	// MaxChildren bounds how many peers this node feeds per stream
	// (default 4). With an upload limit, the node also stops taking
	// children once their share of the limit would drop below the stream's
	// measured bit rate.
	MaxChildren int
	// Upload caps this node's upload (shared with file sharing); nil: none.
	Upload *rate.Limiter
	// UploadRate is Upload's rate in bytes/s (0: unlimited), used to size
	// the number of children.
	UploadRate float64
	// Latency is the viewer's jitter buffer target (default 500 ms): the
	// delay added on top of the network's so that late chunks still play.
	Latency time.Duration
	// Heartbeat is how often a parent tells a child where it stands (default
	// 100 ms); StallTimeout is how long a child waits for a chunk or a
	// heartbeat before it switches parent (default stallTimeout's: 350 ms
	// with one stripe, 500 ms with stripes).
	Heartbeat    time.Duration
	StallTimeout time.Duration
	// Window is how many recent chunks each node keeps for children that
	// join or repair (default 30 s of chunks, at least 300).
	Window int
	// MaxJoinLag: a new child starts at the newest start point if it is at
	// most this far behind the newest chunk, else at the next start point
	// (default 200 ms). Lower means less delay, higher a faster start.
	MaxJoinLag time.Duration
	// ChunkMaxBytes bounds a chunk's size (a multiple of 188; default the
	// chunker's, 64 KiB): a keyframe larger than that is cut into several
	// chunks, which spreads it over the stripes instead of one stripe's
	// path carrying it all.
	ChunkMaxBytes int
	// ChunkDuration is the source's target chunk duration (default 50 ms).
	ChunkDuration time.Duration
	// Stripes cuts the stream into this many stripes (default 1: the
	// whole stream from one parent): stripe i is the chunks with seq % K
	// == i, and a viewer takes each stripe from its own parent. A node
	// forwards its home stripe (live.Home) first, so each stripe's tree has
	// a fan-out of about uplink / (bitrate / K) instead of uplink / bitrate.
	// Experimental: in the simulator, K = 4 with 8 KB chunks
	// (ChunkMaxBytes) cuts p99 from 1.15 s to 0.77 s at 24 viewers with
	// continuity 1.0, but its trees churn at 100 (docs/benchmarks.md).
	Stripes int
	// Clock is the source of time; the simulator passes virtual time by
	// running the node inside a synctest bubble, so the default suffices.
	Now func() time.Time
}

// stallTimeout is the default stall timeout for a stream of k stripes.
// With one stripe, a failover (the stall timeout, a standby probe of at
// most 150 ms and a round trip) must fit in the jitter target (500 ms) for
// a parent's death to cost no chunk: 350 ms (200 ms made saturated
// simulated uplinks churn: 56 switches at 24 viewers). With stripes, the
// holes of a starving stripe are fetched from the other parents after
// repairSilence whatever the stall timeout, and a parent silent for 350 ms
// in a crowd is mostly congested, not dead: 500 ms halved the failovers
// at 100 and 1,000 simulated viewers, measured continuity 0.988-0.994 at
// 1,000 against 0.975-0.990, and the same continuity over a fifth of the
// viewers vanishing (docs/benchmarks.md, 2026-12-07 and 12-08).
func stallTimeout(k int) time.Duration {
	if k > 1 {
		return 500 * time.Millisecond
	}
	return 350 * time.Millisecond
}

func (c *Config) defaults() {
	if c.MaxChildren <= 0 {
		c.MaxChildren = 4
	}
	if c.Latency <= 0 {
		c.Latency = 500 * time.Millisecond
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 100 * time.Millisecond
	}
	if c.MaxJoinLag <= 0 {
		c.MaxJoinLag = 200 * time.Millisecond
	}
	if c.ChunkDuration <= 0 {
		// 50 ms: half the store-and-forward delay per hop of 100 ms chunks
		// (issue 5's simulator, 24 viewers: p50 964 -> 836 ms) for ~0.2 %
		// more overhead.
		c.ChunkDuration = 50 * time.Millisecond
	}
	if c.Window <= 0 {
		c.Window = max(300, int(30*time.Second/c.ChunkDuration))
	}
	if c.Stripes <= 0 {
		c.Stripes = 1
	}
	c.Stripes = min(c.Stripes, live.MaxStripes)
	if c.StallTimeout <= 0 {
		c.StallTimeout = stallTimeout(c.Stripes)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Service is the live service of one node.
type Service struct {
	n   *node.Node
	h   host.Host
	key crypto.PrivKey
	cfg Config
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	streams map[cid.Cid]*Stream
	sources map[cid.Cid]*Source // broadcasts waiting for or reading input
	closed  bool
}

// New starts the live service on n; key signs the streams this node
// broadcasts (the node's identity key).
func New(n *node.Node, key crypto.PrivKey, cfg Config) *Service {
	cfg.defaults()
	ctx, cancel := context.WithCancel(n.Context())
	s := &Service{n: n, h: n.Host(), key: key, cfg: cfg, log: n.Logger().With("svc", "live"),
		ctx: ctx, cancel: cancel, streams: map[cid.Cid]*Stream{}, sources: map[cid.Cid]*Source{}}
	s.h.SetStreamHandler(ID, s.handlePush)
	return s
}

// Close ends every stream this node takes part in.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	list := make([]*Stream, 0, len(s.streams))
	for _, st := range s.streams {
		list = append(list, st)
	}
	s.mu.Unlock()
	s.h.RemoveStreamHandler(ID)
	for _, st := range list {
		st.Close()
	}
	s.cancel()
	s.wg.Wait()
	return nil
}

// Stream returns the stream id this node takes part in, if any.
func (s *Service) Stream(id cid.Cid) *Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[id]
}

// Streams lists the stats of every stream this node takes part in.
func (s *Service) Streams() []Stats {
	s.mu.Lock()
	list := make([]*Stream, 0, len(s.streams))
	for _, st := range s.streams {
		list = append(list, st)
	}
	s.mu.Unlock()
	out := make([]Stats, 0, len(list))
	for _, st := range list {
		out = append(out, st.Stats())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

var errClosed = errors.New("live service closed")

func (s *Service) add(st *Stream) (*Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if old := s.streams[st.id]; old != nil {
		return old, nil
	}
	s.streams[st.id] = st
	return st, nil
}

func (s *Service) remove(st *Stream) {
	s.mu.Lock()
	if s.streams[st.id] == st {
		delete(s.streams, st.id)
	}
	s.mu.Unlock()
}
