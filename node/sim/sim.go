// Package sim runs real hivecast nodes (node.New + live.New, the code the
// daemon runs) on go-libp2p's simulated network (x/simlibp2p, QUIC over
// simnet: per-node uplink/downlink capacity, per-link latency) inside a
// testing/synctest bubble, in virtual time, and measures a live swarm:
// source-to-player delay, continuity, startup, source load, peer efficiency
// and control overhead, over joins, leaves and the sudden loss of a share
// of the viewers.
//
// Virtual time advances only when every goroutine of the bubble is blocked,
// so CPU time costs nothing in the figures: they do not depend on how loaded
// the machine is. What varies between reruns of one seed is the order in
// which the Go scheduler runs goroutines that become ready at the same
// virtual instant.
package sim

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hivecast/hivecast/node"
	"github.com/hivecast/hivecast/node/live"
	"github.com/hivecast/hivecast/player"
	"github.com/hivecast/hivecast/player/sample"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/marcopolo/simnet"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"
	"golang.org/x/time/rate"
)

// Config describes a scenario. Zero fields take the defaults of issue 5.
type Config struct {
	Viewers int   // default 16
	Seed    int64 // same seed, same scenario (keys, links, join times, losses)

	// Bitrate of the stream in bit/s (default 2 Mbit/s): the sample clip
	// (real H.264, ~0.75 Mbit/s) looped and padded with MPEG-TS null packets.
	Bitrate int
	// Latency is the one-way latency of every link (default 40 ms);
	// LatencySpread adds to each pair of nodes a fixed extra latency drawn
	// uniformly from [0, LatencySpread) (seeded).
	Latency       time.Duration
	LatencySpread time.Duration
	// Link capacities in bit/s. Defaults: viewer up 4 Mbit/s, down 20
	// Mbit/s; source up 8 Mbit/s, down 20 Mbit/s; bootstrap nodes 20/20.
	ViewerUp, ViewerDown int
	SourceUp, SourceDown int

	// Bootstraps is the number of DHT-only bootstrap nodes the source and
	// every viewer dial at start (default 2; -1: none, viewers bootstrap
	// from the source itself).
	Bootstraps int
	// HintSource gives every viewer the source as an initial candidate
	// (WatchOptions.Peers). Off by default: viewers find the stream through
	// the DHT, then through redirects and probes.
	HintSource bool
	// SourceDHTClient runs the source's DHT in client mode: it announces
	// the stream but answers no one's DHT queries (its uplink is the
	// swarm's scarcest).
	SourceDHTClient bool
	// LateRefusal: a node at its peer bound (MaxPeers) refuses a newcomer
	// only after the handshake, in its gater, as before PeerCap's resource
	// manager refused it when the connection opens (for comparison).
	LateRefusal bool
	// MaxPeers, if above 0, bounds each node's connected peers as the
	// daemon's --max-peers does, with its connection manager and gater
	// (daemon.DefaultMaxPeers is 200). 0: libp2p's default manager and no
	// bound. With the daemon's bound on every node, 2 of 200 viewers joining
	// in 4 s found every peer they could reach full and never joined
	// (docs/benchmarks.md): the bootstrap nodes are exempt, as a swarm's
	// well-known bootstrap nodes run with a bound sized for every newcomer
	// dialling them.
	MaxPeers int

	// JoinOver: viewers join at uniformly random times over this span
	// (default 4 s), starting 1 s after the broadcast starts.
	JoinOver time.Duration
	// Online: a viewer's node starts this long before it watches, as a
	// running daemon's has joined the DHT before `hivecast watch` (default
	// 0: the node starts with the watch, so startup includes its bootstrap).
	// Nodes start 1 s after the broadcast at the earliest.
	Online time.Duration
	// Media is the MPEG-TS the source loops (default the sample clip:
	// player/sample, a keyframe every second), MediaBitrate its own bit
	// rate in bit/s (ffprobe's format bit_rate); it is padded to Bitrate.
	Media        []byte
	MediaBitrate int
	// Warmup after the last join before measuring (default 4 s); Measure is
	// the measured span (default 10 s).
	Warmup  time.Duration
	Measure time.Duration

	// Vanish is the share of viewers that disappear at once (their packets
	// are dropped from that instant, then their nodes are closed) at
	// VanishAt into the measured span (default Measure/3).
	Vanish   float64
	VanishAt time.Duration
	// Leave is the share of viewers that leave cleanly (close their node)
	// at random times within the measured span.
	Leave float64

	// Live is the live.Config of every viewer, Source that of the source
	// (zero fields: live's defaults). If MaxChildren is 0 it is set to
	// uplink / bitrate, rounded up; UploadRate to the
	// uplink (it only sizes the number of children: the simulated link is
	// the cap, Upload stays nil).
	Live   live.Config
	Source live.Config

	// Logf, if set, receives progress lines; Verbose adds a line for every
	// viewer below 0.99 continuity.
	Logf    func(format string, args ...any)
	Verbose bool
	// Trace, if set, receives every node's debug log (text, virtual time,
	// n = member index: 0 the source, then bootstraps, then viewers).
	Trace io.Writer
	// HeapProfile, if set, receives a heap profile taken at the end of the
	// measured span, with the whole swarm still running.
	HeapProfile io.Writer
	// CountDials logs, at the end, how many dials to unconnected peers the
	// nodes started, per virtual second and per calling function.
	CountDials bool
}

func (c *Config) defaults() {
	if c.Viewers <= 0 {
		c.Viewers = 16
	}
	if c.Bitrate <= 0 {
		c.Bitrate = 2_000_000
	}
	if c.Latency <= 0 {
		c.Latency = 40 * time.Millisecond
	}
	if c.ViewerUp <= 0 {
		c.ViewerUp = 4_000_000
	}
	if c.ViewerDown <= 0 {
		c.ViewerDown = 20_000_000
	}
	if c.SourceUp <= 0 {
		c.SourceUp = 8_000_000
	}
	if c.SourceDown <= 0 {
		c.SourceDown = 20_000_000
	}
	if c.Bootstraps == 0 {
		c.Bootstraps = 2
	}
	if c.Bootstraps < 0 {
		c.Bootstraps = 0
	}
	if c.JoinOver <= 0 {
		c.JoinOver = 4 * time.Second
	}
	if len(c.Media) == 0 || c.MediaBitrate <= 0 {
		c.Media, c.MediaBitrate = sample.TS, sample.Bitrate
	}
	if c.Warmup <= 0 {
		c.Warmup = 4 * time.Second
	}
	if c.Measure <= 0 {
		c.Measure = 10 * time.Second
	}
	if c.VanishAt <= 0 {
		c.VanishAt = c.Measure / 3
	}
	if c.Live.ChunkDuration <= 0 {
		c.Live.ChunkDuration = 50 * time.Millisecond // live's default
	}
	// Source and viewers must agree on the chunk duration (the source
	// decides it; the viewers' value only matters for what they report).
	if c.Source.ChunkDuration <= 0 {
		c.Source.ChunkDuration = c.Live.ChunkDuration
	}
	// Keep 10 s of chunks per node rather than live's 30 s: children join
	// and repair from the last second or two, and at 1,000 nodes the
	// windows would take gigabytes.
	if c.Live.Window <= 0 {
		c.Live.Window = int(10 * time.Second / c.Live.ChunkDuration)
	}
	if c.Source.Window <= 0 {
		c.Source.Window = c.Live.Window
	}
	// live takes children while their share of UploadRate stays above
	// the measured bit rate + 10 %; until the source has measured it (2 s)
	// and for viewers that subscribed before then, only MaxChildren applies,
	// so it gets the same bound here.
	// Rounded up: the upload rate is the bound once the bit rate is known
	// (children count by the share of the stream they take).
	if c.Live.MaxChildren <= 0 {
		c.Live.MaxChildren = max(1, int(math.Ceil(float64(c.ViewerUp)/float64(c.Bitrate))))
	}
	if c.Source.MaxChildren <= 0 {
		c.Source.MaxChildren = max(1, int(math.Ceil(float64(c.SourceUp)/float64(c.Bitrate))))
	}
	if c.Source.Stripes <= 0 {
		c.Source.Stripes = c.Live.Stripes
	}
	if c.Live.UploadRate == 0 {
		c.Live.UploadRate = float64(c.ViewerUp) / 8
	}
	if c.Source.UploadRate == 0 {
		c.Source.UploadRate = float64(c.SourceUp) / 8
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// Result is what a scenario measured. Delay and continuity cover the
// chunks captured during the measured span, for the viewers that were there
// for all of it (those that vanished or left are not counted; the event
// figures cover the survivors).
type Result struct {
	Config Config

	Viewers  int // viewers measured (survivors)
	Joined   int // viewers that got the stream at all
	DelayP50 time.Duration
	DelayP95 time.Duration
	DelayP99 time.Duration
	DelayMax time.Duration
	// WorstViewerP99 is the highest per-viewer p99.
	WorstViewerP99 time.Duration
	Continuity     float64 // delivered / due, pooled over viewers
	MinContinuity  float64 // the worst viewer's
	StartupP50     time.Duration
	StartupP95     time.Duration
	// StartContinuity is continuity over each viewer's first startSpan of
	// playout (chunks captured in it from the first one played), pooled:
	// how whole a start is, outside the measured span.
	StartContinuity float64
	// WholeP50/P95: from the watch to the first chunk played from which
	// the viewer missed at most one chunk of the next startSpan (when
	// playback became whole), over the viewers whose playback did.
	WholeP50, WholeP95 time.Duration
	// SourceUpload is the source's bytes on the wire during the measured
	// span, as a multiple of the stream's bit rate.
	SourceUpload float64
	// PeerEfficiency: share of the stream bytes viewers received that came
	// from other viewers (1 − source chunk bytes sent / chunk bytes received).
	PeerEfficiency float64
	// ControlOverhead: (all bytes every node sent on the wire − stream bytes
	// the viewers received) / all bytes sent; QUIC, TLS, DHT, pings,
	// heartbeats, framing, signatures and duplicates.
	ControlOverhead float64
	MeanDepth       float64
	MaxDepth        int
	Switches        uint64 // parent switches, all viewers
	// Repair fetches over the whole run, all viewers: sent, chunks they
	// added that had not come otherwise, bytes answered.
	Fetches, Repaired, FetchBytes uint64
	Bitrate                       float64
	ChunkBytes                    float64       // mean chunk size the source cut
	LowerBound                    time.Duration // chunk/bitrate + ceil(log2(N+1)) × (latency + chunk/uplink)

	// Event figures (Vanish > 0): continuity of the survivors over the
	// chunks captured from the event to 3 s after it, and the time from the
	// event to the capture time of the last chunk any survivor missed.
	// Settled is the time from the event to the end of the last half second
	// (by capture time) in which the survivors together played less than
	// 0.99 of the chunks: back to steady state. (Recovery, the last single
	// miss, also counts the occasional miss of the steady state: at
	// continuity 0.9999, 80 viewers miss a chunk every few seconds.)
	Vanished        int
	EventContinuity float64
	Recovery        time.Duration
	Settled         time.Duration

	Wall time.Duration // wall-clock time the run took
}

// Run runs the scenario in a synctest bubble of its own and returns what it
// measured.
func Run(t *testing.T, cfg Config) *Result {
	cfg.defaults()
	var res *Result
	start := time.Now()
	synctest.Test(t, func(t *testing.T) {
		s := &swarm{cfg: cfg, t: t, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5157a11))}
		if cfg.CountDials {
			s.dials = &dialCounts{t0: time.Now(), n: map[dialKey]int{}}
		}
		res = s.run()
	})
	if res != nil {
		res.Wall = time.Since(start)
	}
	return res
}

type member struct {
	idx  int
	h    host.Host
	conn atomic.Pointer[simnet.SimConn]
	n    *node.Node
	lv   *live.Service
	rec  *recorder
	st   atomic.Pointer[live.Stream]
	gone atomic.Bool // vanished or left
	bw   *protoBytes // the source's stream bytes by protocol (Verbose)
	// kinds: the node's datagrams by QUIC packet kind, and for the source
	// by destination (Verbose).
	kinds *wireKinds
	// Inbound connections refused as they opened (the resource manager)
	// and after their handshake (the gater; counted at the source only,
	// with Verbose).
	refusedEarly, refusedLate atomic.Int64
	stop                      sync.Once
}

func (m *member) packetsSent() int64 {
	if c := m.conn.Load(); c != nil {
		return int64(c.Stats().PacketsSent)
	}
	return 0
}

func (m *member) wireSent() int64 {
	if c := m.conn.Load(); c != nil {
		return int64(c.Stats().BytesSent)
	}
	return 0
}

// close leaves the swarm: the live service, the node, the host.
func (m *member) close() {
	m.stop.Do(func() {
		if m.lv != nil {
			m.lv.Close()
		}
		if m.n != nil {
			m.n.Close()
		}
		if m.h != nil {
			m.h.Close()
		}
	})
}

type swarm struct {
	cfg Config
	t   *testing.T
	rng *rand.Rand
	nw  *simnet.Simnet
	log *slog.Logger

	ipIdx sync.Map // ip string → node index
	dead  sync.Map // node index → true: its packets are dropped

	mu      sync.Mutex
	members []*member

	dials *dialCounts // Config.CountDials

	// viewerConns counts the connections the viewers opened (Verbose).
	viewerConns atomic.Int64
}

// Node indexes: 0 is the source, 1..Bootstraps the bootstrap nodes, then
// the viewers.
func (s *swarm) key(idx int) crypto.PrivKey {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(s.cfg.Seed))
	binary.LittleEndian.PutUint64(seed[8:], uint64(idx))
	seed[16] = 0x5e
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		panic(err)
	}
	return k
}

// latency is the one-way latency of a packet: the base, plus a fixed extra
// per pair of nodes; packets from or to a vanished node never arrive.
func (s *swarm) latency(p *simnet.Packet) time.Duration {
	a, b := s.indexOf(p.From), s.indexOf(p.To)
	if _, d := s.dead.Load(a); d {
		return 1000 * time.Hour
	}
	if _, d := s.dead.Load(b); d {
		return 1000 * time.Hour
	}
	l := s.cfg.Latency
	if s.cfg.LatencySpread > 0 {
		lo, hi := min(a, b), max(a, b)
		x := splitmix(uint64(s.cfg.Seed) ^ uint64(lo)<<32 ^ uint64(hi))
		l += time.Duration(float64(s.cfg.LatencySpread) * float64(x>>11) / (1 << 53))
	}
	return l
}

func (s *swarm) indexOf(a net.Addr) int {
	if u, ok := a.(*net.UDPAddr); ok {
		if v, ok := s.ipIdx.Load(u.IP.String()); ok {
			return v.(int)
		}
	}
	return -1
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

type sourceIP struct{ ip net.IP }

func (m sourceIP) PreferredSourceIPForDestination(*net.UDPAddr) (net.IP, error) { return m.ip, nil }

// newMember builds a libp2p host on the simulated network (as
// simlibp2p.QUICSimnet does, keeping the endpoint to read its byte counts)
// and a hivecast node on it.
func (s *swarm) newMember(idx int, up, down int, boot []peer.AddrInfo) (*member, error) {
	m := &member{idx: idx}
	ip := simnet.IntToPublicIPv4(idx)
	s.ipIdx.Store(ip.String(), idx)
	link := simnet.NodeBiDiLinkSettings{
		Uplink:   simnet.LinkSettings{BitsPerSecond: up},
		Downlink: simnet.LinkSettings{BitsPerSecond: down},
	}
	sel := sourceIP{ip}
	var gater *node.PeerCap
	var rm network.ResourceManager = &network.NullResourceManager{}
	if s.cfg.MaxPeers > 0 && !s.isBootstrap(idx) {
		gater = node.NewPeerCap(s.cfg.MaxPeers)
		if !s.cfg.LateRefusal {
			rm = gater.ResourceManager(rm)
		}
	}
	reuse := libp2p.QUICReuse(
		func(l fx.Lifecycle, srk quic.StatelessResetKey, tk quic.TokenGeneratorKey, opts ...quicreuse.Option) (*quicreuse.ConnManager, error) {
			cm, err := quicreuse.NewConnManager(srk, tk, opts...)
			if err != nil {
				return nil, err
			}
			l.Append(fx.StopHook(func() error { return cm.Close() }))
			return cm, nil
		},
		quicreuse.OverrideSourceIPSelector(func() (quicreuse.SourceIPSelector, error) { return sel, nil }),
		// What libp2p's default QUIC connection manager does (config.go):
		// the resource manager decides on a connection at its first packet.
		quicreuse.ConnContext(func(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
			addr, err := quicreuse.ToQuicMultiaddr(ci.RemoteAddr, quic.Version1)
			if err != nil {
				addr = nil
			}
			scope, err := rm.OpenConnection(network.DirInbound, false, addr)
			if err != nil {
				m.refusedEarly.Add(1)
				return ctx, err
			}
			ctx = network.WithConnManagementScope(ctx, scope)
			context.AfterFunc(ctx, scope.Done)
			return ctx, nil
		}),
		quicreuse.OverrideListenUDP(func(_ string, addr *net.UDPAddr) (net.PacketConn, error) {
			c := s.nw.NewEndpoint(addr, link)
			m.conn.Store(c)
			if s.cfg.Verbose {
				var byDest func(net.Addr) int
				if idx == 0 {
					byDest = s.indexOf
				}
				m.kinds = newWireKinds(c, byDest)
				return m.kinds, nil
			}
			return c, nil
		}),
	)
	opts := []libp2p.Option{
		libp2p.Identity(s.key(idx)),
		libp2p.ListenAddrStrings(fmt.Sprintf("/ip4/%s/udp/8000/quic-v1", ip)),
		libp2p.Transport(libp2pquic.NewTransport),
		reuse,
		// Address discovery through identify stalls synctest (simlibp2p).
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.ResourceManager(rm),
		libp2p.DisableMetrics(),
	}
	if idx == 0 && s.cfg.Verbose {
		m.bw = newProtoBytes()
		opts = append(opts, libp2p.BandwidthReporter(m.bw))
	}
	var g connmgr.ConnectionGater
	if gater != nil {
		// The daemon's peer bound (daemon.NewHost): connection manager,
		// gater and resource manager.
		cm, err := node.NewConnManager(s.cfg.MaxPeers)
		if err != nil {
			return nil, err
		}
		opts = append(opts, libp2p.ConnectionManager(cm))
		g = gater
	}
	if s.dials != nil {
		g = countingGater{d: s.dials, inner: g}
	}
	if idx == 0 && s.cfg.Verbose && g != nil {
		g = lateCount{ConnectionGater: g, n: &m.refusedLate}
	}
	if g != nil {
		opts = append(opts, libp2p.ConnectionGater(g))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("host %d: %w", idx, err)
	}
	if gater != nil {
		gater.Attach(h)
	}
	if s.cfg.Verbose && idx > s.cfg.Bootstraps {
		h.Network().Notify(&network.NotifyBundle{
			ConnectedF: func(network.Network, network.Conn) { s.viewerConns.Add(1) },
		})
	}
	m.h = h
	lg := s.log
	if s.cfg.Trace != nil {
		lg = slog.New(slog.NewTextHandler(&syncWriter{w: s.cfg.Trace}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("n", idx)
	}
	ncfg := node.Config{Bootstrap: boot, Logger: lg}
	if idx == 0 && s.cfg.SourceDHTClient {
		ncfg.DHTOptions = []dht.Option{dht.Mode(dht.ModeClient)}
	}
	n, err := node.New(h, ncfg)
	if err != nil {
		h.Close()
		return nil, err
	}
	m.n = n
	s.mu.Lock()
	s.members = append(s.members, m)
	s.mu.Unlock()
	return m, nil
}

// isBootstrap reports whether member idx is one of the DHT bootstrap nodes.
func (s *swarm) isBootstrap(idx int) bool {
	return idx >= 1 && idx <= s.cfg.Bootstraps
}

// memberList returns the members made so far (source, bootstraps, viewers).
func (s *swarm) memberList() []*member {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.members)
}

// logConnections logs how many connections the nodes still in the swarm
// hold open: QUIC connections are most of a simulated node's memory (a heap
// profile, -heap, shows it).
func (s *swarm) logConnections() {
	conns, most, nodes := 0, 0, 0
	for _, m := range s.memberList() {
		if m.gone.Load() {
			continue
		}
		nodes++
		n := len(m.h.Network().Conns())
		conns += n
		most = max(most, n)
	}
	s.cfg.Logf("connections per node: mean %.1f, max %d (%d nodes)", float64(conns)/float64(max(nodes, 1)), most, nodes)
}

// tally sums the viewers' children counters (live.Stats).
type tally struct {
	out, backlog, subs, evictions, drops, switches, stale uint64
	fetches, repaired, fetchBytes                         uint64
	probes, refusals                                      uint64
}

func (a tally) plus(b tally) tally {
	return tally{a.out + b.out, a.backlog + b.backlog, a.subs + b.subs, a.evictions + b.evictions,
		a.drops + b.drops, a.switches + b.switches, a.stale + b.stale,
		a.fetches + b.fetches, a.repaired + b.repaired, a.fetchBytes + b.fetchBytes,
		a.probes + b.probes, a.refusals + b.refusals}
}

func (a tally) minus(b tally) tally {
	return tally{a.out - b.out, a.backlog - b.backlog, a.subs - b.subs, a.evictions - b.evictions,
		a.drops - b.drops, a.switches - b.switches, a.stale - b.stale,
		a.fetches - b.fetches, a.repaired - b.repaired, a.fetchBytes - b.fetchBytes,
		a.probes - b.probes, a.refusals - b.refusals}
}

// probeTally counts probes sent and, of them, those that opened a
// connection, by purpose (live.Stats.ProbesOut, ProbeDials); and under
// "lookup" the DHT provider lookups and, of them, those that found no new
// peer (live.Stats.Lookups, LookupsIdle).
type probeTally map[string][2]uint64

func (t probeTally) add(o probeTally) {
	for k, v := range o {
		c := t[k]
		t[k] = [2]uint64{c[0] + v[0], c[1] + v[1]}
	}
}

// since formats t minus an earlier tally, by purpose in a fixed order.
func (t probeTally) since(prev probeTally) string {
	var parts []string
	for _, k := range live.ProbePurposes() {
		c, p := t[k], prev[k]
		parts = append(parts, fmt.Sprintf("%s %d (%d)", k, c[0]-p[0], c[1]-p[1]))
	}
	c, p := t["lookup"], prev["lookup"]
	return fmt.Sprintf("%s; DHT provider lookups %d (of them finding no new peer %d)", strings.Join(parts, ", "), c[0]-p[0], c[1]-p[1])
}

// logSwarm logs the swarm every virtual second until stop: what the viewers
// sent and how their trees changed in that second, the source's and the
// viewers' worst uplink lag, mean and worst playout delay and stripe delay.
func (s *swarm) logSwarm(viewers []*member, srcM *member, src *live.Stream, t0 time.Time, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var prev tally
	// A member's last counts: one that vanished keeps them in the sums, so
	// that a second's difference does not go negative.
	last := map[*member]tally{}
	// Probes sent and of them dials, by purpose; the same for the last
	// counts of each member.
	var prevProbes probeTally
	lastProbes := map[*member]probeTally{}
	var prevSrc live.Stats
	prevWire, prevPkts := srcM.wireSent(), srcM.packetsSent()
	prevProto := srcM.bw.snapshot()
	// The source's connections opened and closed (a handshake costs its
	// uplink more than most messages do).
	var opened, closed atomic.Int64
	nb := &network.NotifyBundle{
		ConnectedF:    func(network.Network, network.Conn) { opened.Add(1) },
		DisconnectedF: func(network.Network, network.Conn) { closed.Add(1) },
	}
	srcM.h.Network().Notify(nb)
	defer srcM.h.Network().StopNotify(nb)
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		var lagMax, playSum, playMax, stripeMax float64
		n, lagged := 0, 0
		depthSum, depthN, depthMax := 0, 0, 0
		var worst live.Stats
		var now tally
		var all []viewerStats
		probes := probeTally{}
		for _, m := range viewers {
			st := m.st.Load()
			if st == nil {
				continue
			}
			if m.gone.Load() {
				now = now.plus(last[m])
				probes.add(lastProbes[m])
				continue
			}
			x := st.Stats()
			mp := probeTally{}
			for k, n := range x.ProbesOut {
				mp[k] = [2]uint64{n, x.ProbeDials[k]}
			}
			mp["lookup"] = [2]uint64{x.Lookups, x.LookupsIdle}
			lastProbes[m] = mp
			probes.add(mp)
			all = append(all, viewerStats{m.h.ID(), x})
			mine := tally{x.BytesOut, x.BacklogBytesOut, x.Subscriptions, x.Evictions, x.ChildDrops, x.Switches, x.StaleSkips,
				x.FetchesOut, x.Repaired, x.FetchBytesOut, x.ProbesIn, x.Refusals}
			last[m] = mine
			now = now.plus(mine)
			if x.UploadLagMS > lagMax {
				lagMax, worst = x.UploadLagMS, x
			}
			if x.UploadLagMS > 200 {
				lagged++
			}
			playSum += x.PlayoutMS
			playMax = max(playMax, x.PlayoutMS)
			for _, d := range x.StripeDelayMS {
				stripeMax = max(stripeMax, d)
			}
			for _, d := range x.StripeDepth {
				if d > 0 {
					depthSum, depthN, depthMax = depthSum+d, depthN+1, max(depthMax, d)
				}
			}
			n++
		}
		d := now.minus(prev)
		prev = now
		at := time.Since(t0).Round(time.Second)
		s.cfg.Logf("t=%v viewers sent %.0f KB/s of chunks, %.0f KB/s of them backlog, %.0f KB/s repair; %d probes answered, %d subscriptions taken, %d refused, %d evictions, %d drops, %d switches, %d stale copies skipped; %d fetches repaired %d chunks",
			at, float64(d.out)/1e3, float64(d.backlog)/1e3, float64(d.fetchBytes)/1e3, d.probes, d.subs, d.refusals, d.evictions, d.drops, d.switches, d.stale, d.fetches, d.repaired)
		ss := src.Stats()
		wire, pkts := srcM.wireSent(), srcM.packetsSent()
		s.cfg.Logf("t=%v source: %d peers (%d connections opened, %d closed; inbound refused %d at the first packet, %d after the handshake), %d probes and %d refusals a second, wire %.2f Mbit/s in %d packets",
			at, len(srcM.h.Network().Peers()), opened.Swap(0), closed.Swap(0), srcM.refusedEarly.Swap(0), srcM.refusedLate.Swap(0), ss.ProbesIn-prevSrc.ProbesIn, ss.Refusals-prevSrc.Refusals,
			float64(wire-prevWire)*8/1e6, pkts-prevPkts)
		proto := srcM.bw.snapshot()
		s.cfg.Logf("t=%v source sent on streams, kbit/s: %s", at, rates(prevProto, proto, time.Second))
		s.cfg.Logf("t=%v source datagrams: %s", at, s.wireTo(srcM, all))
		var vk wireCount
		for _, m := range viewers {
			if m.kinds != nil {
				c, _ := m.kinds.take()
				vk = vk.plus(c)
			}
		}
		s.cfg.Logf("t=%v viewers' datagrams: %v; %d connections opened (each counted at both ends)", at, vk, s.viewerConns.Swap(0))
		s.cfg.Logf("t=%v viewers' probes sent (of them to peers not connected): %s", at, probes.since(prevProbes))
		prevProbes = probes
		prevSrc, prevWire, prevPkts, prevProto = ss, wire, pkts, proto
		if int(at/time.Second)%4 == 0 && s.cfg.Live.Stripes > 1 {
			s.cfg.Logf("t=%v %s", at, treeShape(all, srcM.h.ID(), s.cfg.Live.Stripes))
		}
		s.cfg.Logf("t=%v source lag %.0f ms children %d load %.2f; viewers %d: lag max %.0f ms (load %.2f children %d up %.2f Mbit/s; %d over 200 ms), playout mean %.0f max %.0f ms, stripe delay max %.0f ms, stripe depth mean %.1f max %d (%d stripes with a parent)",
			at, ss.UploadLagMS, ss.Children, ss.Load, n, lagMax, worst.Load, worst.Children, worst.RateOut/1e6, lagged, playSum/float64(max(n, 1)), playMax, stripeMax,
			float64(depthSum)/float64(max(depthN, 1)), depthMax, depthN)
	}
}

// wireTo gives the source's datagrams of the last second by QUIC packet kind,
// and its bytes split by destination: the viewers whose stripe parent it is
// now, the other peers it is connected to, and the rest (peers it has just
// dropped or not yet connected to).
func (s *swarm) wireTo(src *member, viewers []viewerStats) string {
	c, to := src.kinds.take()
	srcID := src.h.ID().String()
	children := map[peer.ID]bool{}
	for _, v := range viewers {
		if slices.Contains(v.x.Parents, srcID) {
			children[v.id] = true
		}
	}
	ids := map[int]peer.ID{}
	for _, m := range s.memberList() {
		if m.h != nil {
			ids[m.idx] = m.h.ID()
		}
	}
	var child, conn, other int64
	for i, n := range to {
		id, known := ids[i]
		switch {
		case known && children[id]:
			child += n
		case known && src.h.Network().Connectedness(id) == network.Connected:
			conn += n
		default:
			other += n
		}
	}
	return fmt.Sprintf("%v; kbit/s to %d stripe children %.0f, to other connected peers %.0f, to the rest %.0f",
		c, len(children), float64(child)*8/1e3, float64(conn)*8/1e3, float64(other)*8/1e3)
}

// syncWriter serialises writes of the nodes' loggers.
type syncWriter struct{ w io.Writer }

var traceMu sync.Mutex // one trace file for all the nodes

func (w *syncWriter) Write(p []byte) (int, error) {
	traceMu.Lock()
	defer traceMu.Unlock()
	return w.w.Write(p)
}

func addrInfo(h host.Host) peer.AddrInfo {
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}

// recorder is a player sink that notes when each chunk reaches the player.
type recorder struct {
	mu      sync.Mutex
	watchAt time.Time
	first   time.Time
	recs    []rec
}

type rec struct {
	seq     uint64
	capture time.Time
	at      time.Time
	size    int  // bytes of data
	start   bool // a start point
}

// start marks the watch's start, from which startup counts.
func (r *recorder) start() {
	r.mu.Lock()
	r.watchAt = time.Now()
	r.mu.Unlock()
}

func (r *recorder) Write([]byte) error { return nil }
func (r *recorder) Close() error       { return nil }
func (r *recorder) WriteChunk(c player.Chunk) error {
	now := time.Now()
	r.mu.Lock()
	if r.first.IsZero() {
		r.first = now
	}
	if !c.End {
		r.recs = append(r.recs, rec{c.Seq, c.Capture, now, len(c.Data), c.Start})
	}
	r.mu.Unlock()
	return nil
}

func (s *swarm) run() *Result {
	cfg := s.cfg
	t := s.t
	s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	s.nw = &simnet.Simnet{LatencyFunc: s.latency, Logger: s.log}
	var wg sync.WaitGroup
	defer func() {
		// Close everything, viewers first, then the network: every
		// goroutine of the bubble must end before it does.
		list := s.memberList()
		for i := len(list) - 1; i >= 0; i-- {
			list[i].close()
		}
		wg.Wait()
		s.nw.Close()
	}()

	// The source and the bootstrap nodes.
	src, err := s.newMember(0, cfg.SourceUp, cfg.SourceDown, nil)
	if err != nil {
		t.Fatal(err)
	}
	var boot []peer.AddrInfo
	for i := 1; i <= cfg.Bootstraps; i++ {
		b, err := s.newMember(i, 20_000_000, 20_000_000, []peer.AddrInfo{addrInfo(src.h)})
		if err != nil {
			t.Fatal(err)
		}
		boot = append(boot, addrInfo(b.h))
	}
	if len(boot) == 0 {
		boot = []peer.AddrInfo{addrInfo(src.h)}
	}
	s.nw.Start()
	// Wait for the DHT to know its peers before announcing.
	for src.n.DHT().RoutingTable().Size() < min(cfg.Bootstraps, 1) {
		time.Sleep(50 * time.Millisecond)
	}
	scfg := cfg.Source
	scfg.Upload = pacer(cfg.SourceUp)
	src.lv = live.New(src.n, s.key(0), scfg)
	bc, err := src.lv.Broadcast("sim")
	if err != nil {
		t.Fatal(err)
	}
	ingestCtx, stopIngest := context.WithCancel(context.Background())
	ingestDone := make(chan struct{})
	go func() {
		defer close(ingestDone)
		factor := float64(cfg.Bitrate) / float64(cfg.MediaBitrate)
		_ = bc.Ingest(ingestCtx, newPaddedLoop(cfg.Media, factor), live.IngestOptions{Realtime: true})
	}()
	defer func() { stopIngest(); <-ingestDone }()
	streamID := bc.Stream().ID()
	t0 := time.Now()
	if s.dials != nil {
		s.dials.setStart(t0) // seconds as in the swarm lines (t=...)
	}

	// Joins, leaves and losses are drawn up front, so that a seed fixes them.
	N := cfg.Viewers
	joinAt := make([]time.Duration, N)
	for i := range joinAt {
		joinAt[i] = time.Second + time.Duration(s.rng.Float64()*float64(cfg.JoinOver))
	}
	sort.Slice(joinAt, func(i, j int) bool { return joinAt[i] < joinAt[j] })
	measureFrom := time.Second + cfg.JoinOver + cfg.Warmup
	measureTo := measureFrom + cfg.Measure
	perm := s.rng.Perm(N)
	nVanish := int(math.Round(cfg.Vanish * float64(N)))
	nLeave := int(math.Round(cfg.Leave * float64(N)))
	if nVanish+nLeave > N {
		nLeave = N - nVanish
	}
	vanish := perm[:nVanish]
	leaving := perm[nVanish : nVanish+nLeave]
	leaveAt := map[int]time.Duration{}
	for _, i := range leaving {
		leaveAt[i] = measureFrom + time.Duration(s.rng.Float64()*float64(cfg.Measure))
	}
	eventAt := measureFrom + cfg.VanishAt

	viewers := make([]*member, N)
	var vmu sync.Mutex
	for i := 0; i < N; i++ {
		// Nodes start in join order, each Online before its watch.
		if d := max(joinAt[i]-cfg.Online, time.Second) - time.Since(t0); d > 0 {
			time.Sleep(d)
		}
		m, err := s.newMember(1+cfg.Bootstraps+i, cfg.ViewerUp, cfg.ViewerDown, boot)
		if err != nil {
			t.Fatal(err)
		}
		lcfg := cfg.Live
		lcfg.Upload = pacer(cfg.ViewerUp)
		m.lv = live.New(m.n, s.key(m.idx), lcfg)
		m.rec = &recorder{}
		vmu.Lock()
		viewers[i] = m
		vmu.Unlock()
		opts := live.WatchOptions{Sinks: []player.Sink{m.rec}, FindTimeout: 30 * time.Second}
		if cfg.HintSource {
			opts.Peers = []peer.ID{src.h.ID()}
			m.h.Peerstore().AddAddrs(src.h.ID(), src.h.Addrs(), time.Hour)
		}
		wg.Add(1)
		go func(m *member, at time.Duration) {
			defer wg.Done()
			if d := at - time.Since(t0); d > 0 {
				time.Sleep(d)
			}
			m.rec.start()
			st, err := m.lv.Watch(context.Background(), streamID, opts)
			if err != nil {
				cfg.Logf("viewer %d: %v", m.idx, err)
				return
			}
			m.st.Store(st)
		}(m, joinAt[i])
	}
	cfg.Logf("%d viewer nodes started by %v (virtual)", N, time.Since(t0).Round(time.Millisecond))

	// Scheduled leaves and the loss event.
	wg.Add(1)
	go func() {
		defer wg.Done()
		type ev struct {
			at     time.Duration
			vanish []int
			leave  int
		}
		var evs []ev
		for i, at := range leaveAt {
			evs = append(evs, ev{at: at, leave: i})
		}
		if nVanish > 0 {
			evs = append(evs, ev{at: eventAt, vanish: vanish, leave: -1})
		}
		sort.Slice(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
		for _, e := range evs {
			if d := e.at - time.Since(t0); d > 0 {
				time.Sleep(d)
			}
			if e.vanish != nil {
				for _, i := range e.vanish {
					viewers[i].gone.Store(true)
					s.dead.Store(viewers[i].idx, true)
				}
				for _, i := range e.vanish {
					go viewers[i].close()
				}
				continue
			}
			viewers[e.leave].gone.Store(true)
			viewers[e.leave].close()
		}
	}()

	// Byte counters at the start and end of the measured span.
	snap := func() (srcWire int64, wire int64, srcChunks uint64, in uint64) {
		list := s.memberList()
		for _, m := range list {
			wire += m.wireSent()
		}
		srcWire = src.wireSent()
		srcChunks = bc.Stream().Stats().BytesOut
		for _, m := range viewers {
			if st := m.st.Load(); st != nil {
				in += st.Stats().BytesIn
			}
		}
		return
	}
	if cfg.Verbose {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.logSwarm(viewers, src, bc.Stream(), t0, stop)
		}()
		defer func() { close(stop); <-done }()
	}
	time.Sleep(measureFrom - time.Since(t0))
	sw0, w0, sc0, in0 := snap()
	time.Sleep(measureTo - time.Since(t0))
	sw1, w1, sc1, in1 := snap()
	s.logConnections()
	if cfg.HeapProfile != nil {
		runtime.GC()
		if err := pprof.WriteHeapProfile(cfg.HeapProfile); err != nil {
			t.Errorf("heap profile: %v", err)
		}
	}
	// Chunks captured near the end need up to a few hundred ms to play.
	time.Sleep(2 * time.Second)

	res := s.measure(viewers, t0, measureFrom, measureTo, eventAt, nVanish)
	if s.dials != nil {
		cfg.Logf("dials to unconnected peers, per virtual second and caller:\n%s", s.dials)
	}
	span := cfg.Measure.Seconds()
	ss := bc.Stream().Stats()
	cfg.Logf("source: children %d, load %.2f streams, chunk bytes %.2f Mbit/s, wire %.2f Mbit/s", ss.Children, ss.Load,
		float64(sc1-sc0)*8/span/1e6, float64(sw1-sw0)*8/span/1e6)
	bitrate := float64(ss.Bitrate)
	if bitrate == 0 {
		bitrate = float64(cfg.Bitrate)
	}
	res.Bitrate = bitrate
	res.SourceUpload = float64(sw1-sw0) * 8 / span / bitrate
	// in counts only viewers still present at the end: bytes that left with
	// the others are missing from in1-in0, which makes efficiency and
	// overhead slightly pessimistic in a loss scenario.
	if d := float64(in1 - in0); d > 0 {
		res.PeerEfficiency = 1 - float64(sc1-sc0)/d
		res.ControlOverhead = 1 - d/float64(w1-w0)
	}
	// The mean chunk the source cut (until 2026-12-02 the bound took
	// bitrate x the target chunk duration, 12.1 KB and 50 ms at 2 Mbit/s,
	// even where -chunk-bytes cut chunks of under 8 KB: 498 ms instead of
	// 425 ms at 100 viewers), and its duration at the stream's bit rate.
	chunkDur := cfg.Source.ChunkDuration
	res.ChunkBytes = bitrate / 8 * chunkDur.Seconds()
	if ss.ChunksIn > 0 {
		res.ChunkBytes = float64(ss.BytesIn) / float64(ss.ChunksIn)
		chunkDur = time.Duration(res.ChunkBytes * 8 / bitrate * float64(time.Second))
	}
	hops := math.Ceil(math.Log2(float64(N + 1)))
	perHop := cfg.Latency + time.Duration(res.ChunkBytes*8/float64(cfg.ViewerUp)*float64(time.Second))
	res.LowerBound = chunkDur + time.Duration(hops)*perHop
	return res
}

// idxOfPeer returns the member index of the peer named by its string ID, -1
// if none.
func (s *swarm) idxOfPeer(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.members {
		if m.h.ID().String() == id {
			return m.idx
		}
	}
	return -1
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// measure works out delay and continuity from what the players got.
func (s *swarm) measure(viewers []*member, t0 time.Time, from, to, eventAt time.Duration, nVanish int) *Result {
	res := &Result{Config: s.cfg, MinContinuity: 1}
	winFrom, winTo := t0.Add(from), t0.Add(to)
	// Which chunks were captured in the span: every seq any viewer played.
	captures := map[uint64]time.Time{}
	kinds := map[uint64]rec{} // each chunk's size and start flag
	for _, m := range viewers {
		m.rec.mu.Lock()
		for _, r := range m.rec.recs {
			captures[r.seq] = r.capture
			kinds[r.seq] = r
		}
		m.rec.mu.Unlock()
	}
	// With -verbose: what the missed chunks were (size classes of 2 KB,
	// start points), due and missed over all survivors.
	const sizeClasses = 5
	var kindDue, kindMissed [sizeClasses + 1]int // the last: start points
	classOf := func(size int) int { return min(size/2048, sizeClasses-1) }
	var lo, hi uint64
	first := true
	for seq, c := range captures {
		if c.Before(winFrom) || !c.Before(winTo) {
			continue
		}
		if first || seq < lo {
			lo = seq
		}
		if first || seq > hi {
			hi = seq
		}
		first = false
	}
	ev0, ev1 := t0.Add(eventAt), t0.Add(eventAt+3*time.Second)
	var delays, startups []time.Duration
	var due, got, evDue, evGot int
	// The survivors' chunks due and played per half second after the event.
	const binLen = 500 * time.Millisecond
	var binDue, binGot []int
	var lastMiss time.Time
	depths := 0
	for _, m := range viewers {
		st := m.st.Load()
		if st != nil {
			res.Joined++
			stats := st.Stats()
			res.Switches += stats.Switches
			res.Fetches += stats.FetchesOut
			res.Repaired += stats.Repaired
			res.FetchBytes += stats.FetchBytesOut
			if !m.gone.Load() {
				depths += stats.Depth
				res.MaxDepth = max(res.MaxDepth, stats.Depth)
			}
		}
		m.rec.mu.Lock()
		if !m.rec.first.IsZero() {
			startups = append(startups, m.rec.first.Sub(m.rec.watchAt))
		}
		recs := slices.Clone(m.rec.recs)
		m.rec.mu.Unlock()
		if m.gone.Load() {
			if nVanish > 0 {
				res.Vanished++
			}
			continue
		}
		res.Viewers++
		if first {
			continue
		}
		played := map[uint64]bool{}
		var mine []time.Duration
		for _, r := range recs {
			if r.seq < lo || r.seq > hi {
				continue
			}
			played[r.seq] = true
			d := r.at.Sub(r.capture)
			mine = append(mine, d)
		}
		delays = append(delays, mine...)
		slices.Sort(mine)
		res.WorstViewerP99 = max(res.WorstViewerP99, quantile(mine, 0.99))
		n := int(hi - lo + 1)
		due += n
		got += len(played)
		c := float64(len(played)) / float64(n)
		res.MinContinuity = min(res.MinContinuity, c)
		if s.cfg.Verbose && (c < 0.99 || quantile(mine, 0.99) > time.Hour) {
			var stats live.Stats
			if st != nil {
				stats = st.Stats()
			}
			// Missed seqs as ranges, by capture time since t0.
			var gaps []string
			for seq := lo; seq <= hi; seq++ {
				if played[seq] {
					continue
				}
				end := seq
				for end+1 <= hi && !played[end+1] {
					end++
				}
				at := captures[seq].Sub(t0).Seconds()
				gaps = append(gaps, fmt.Sprintf("%.1fs+%d", at, end-seq+1))
				seq = end
			}
			// The worst delay of each second of the span, in ms.
			var timeline []int
			for _, r := range recs {
				if r.seq < lo || r.seq > hi {
					continue
				}
				sec := int(r.capture.Sub(captures[lo]) / time.Second)
				for len(timeline) <= sec {
					timeline = append(timeline, 0)
				}
				timeline[sec] = max(timeline[sec], int(r.at.Sub(r.capture)/time.Millisecond))
			}
			s.cfg.Logf("viewer %d: timeline %v", m.idx, timeline)
			s.cfg.Logf("viewer %d: continuity %.3f (%d/%d) p50 %v p99 %v depth %d parent %d switches %d stalls %d late %d catchups %d dup %d children %d; stripes depth %v delay ms %.0f playout %.0f ms; missed %v",
				m.idx, c, len(played), n, quantile(mine, 0.5).Round(time.Millisecond), quantile(mine, 0.99).Round(time.Millisecond), stats.Depth, s.idxOfPeer(stats.Parent), stats.Switches, stats.Stalls, stats.Late, stats.CatchUps, stats.DupIn, stats.Children, stats.StripeDepth, stats.StripeDelayMS, stats.PlayoutMS, gaps)
		}
		for seq := lo; seq <= hi; seq++ {
			cap, ok := captures[seq]
			if !ok {
				continue
			}
			inEvent := nVanish > 0 && !cap.Before(ev0) && cap.Before(ev1)
			if inEvent {
				evDue++
			}
			if nVanish > 0 && !cap.Before(ev0) {
				b := int(cap.Sub(ev0) / binLen)
				for len(binDue) <= b {
					binDue, binGot = append(binDue, 0), append(binGot, 0)
				}
				binDue[b]++
				if played[seq] {
					binGot[b]++
				}
			}
			if k, ok := kinds[seq]; ok {
				kindDue[classOf(k.size)]++
				if k.start {
					kindDue[sizeClasses]++
				}
				if !played[seq] {
					kindMissed[classOf(k.size)]++
					if k.start {
						kindMissed[sizeClasses]++
					}
				}
			}
			if played[seq] {
				if inEvent {
					evGot++
				}
			} else if nVanish > 0 && !cap.Before(ev0) && cap.After(lastMiss) {
				lastMiss = cap
			}
		}
	}
	if res.Viewers > 0 && res.Joined > 0 {
		res.MeanDepth = float64(depths) / float64(res.Viewers)
	}
	if s.cfg.Verbose {
		var parts []string
		for c := range sizeClasses {
			name := fmt.Sprintf("%d-%d KB", 2*c, 2*c+2)
			if c == sizeClasses-1 {
				name = fmt.Sprintf(">=%d KB", 2*c)
			}
			parts = append(parts, fmt.Sprintf("%s %d/%d", name, kindMissed[c], kindDue[c]))
		}
		parts = append(parts, fmt.Sprintf("start points %d/%d", kindMissed[sizeClasses], kindDue[sizeClasses]))
		s.cfg.Logf("missed/due chunk copies by chunk size (survivors, measured span): %s", strings.Join(parts, ", "))
	}
	slices.Sort(delays)
	res.DelayP50, res.DelayP95, res.DelayP99 = quantile(delays, 0.5), quantile(delays, 0.95), quantile(delays, 0.99)
	if len(delays) > 0 {
		res.DelayMax = delays[len(delays)-1]
	}
	if due > 0 {
		res.Continuity = float64(got) / float64(due)
	}
	// Where the startup goes (p50 of each step, from Watch), and with
	// -verbose the slowest starts, step by step: when the viewer watched,
	// the stream info, the first chunk, the first chunk played, and how old
	// that chunk was then (how far behind live its parents were).
	type start struct {
		idx                         int
		at, info, first, play, late time.Duration
		whole                       float64       // continuity over its first startSpan played
		wholeAt                     time.Duration // when playback became whole (span), from the watch
		stripes                     string        // each stripe's first chunk and tries
	}
	var infos, firsts []time.Duration
	var starts []start
	var stripeN, triesSum, retried int // stripes started, the subscriptions they tried, those tried more than once
	var maxSeq uint64
	for seq := range captures {
		maxSeq = max(maxSeq, seq)
	}
	// How whole a start is: what the viewer played of the chunks captured
	// in startSpan from a chunk it played (a chunk no viewer played is due
	// too); and when playback first became whole: the first chunk played
	// from which at most one chunk of the next startSpan is missed.
	var startDue, startGot int
	span := func(recs []rec, played map[uint64]bool, i int) (due, got int, complete bool) {
		from, until := recs[i].seq, recs[i].capture.Add(startSpan)
		for seq := from; seq <= maxSeq; seq++ {
			if c, ok := captures[seq]; ok && !c.Before(until) {
				return due, got, true
			}
			due++
			if played[seq] {
				got++
			}
		}
		return due, got, false // the run ended within the span
	}
	var wholes []time.Duration
	var wholeHist [3]int // viewers whose start is < 0.5, < 0.99, >= 0.99 whole
	for _, m := range viewers {
		st := m.st.Load()
		if st == nil {
			continue
		}
		x := st.Stats()
		v := start{idx: m.idx, info: time.Duration(x.InfoMS * 1e6), first: time.Duration(x.FirstChunkMS * 1e6)}
		for i, f := range x.StripeFirstMS {
			v.stripes += fmt.Sprintf(" %.0fms/%d", f, x.StripeTries[i])
			if f > 0 {
				stripeN++
				triesSum += x.StripeTries[i]
				if x.StripeTries[i] > 1 {
					retried++
				}
			}
		}
		infos, firsts = append(infos, v.info), append(firsts, v.first)
		m.rec.mu.Lock()
		w, f := m.rec.watchAt, m.rec.first
		if len(m.rec.recs) > 0 {
			v.late = m.rec.recs[0].at.Sub(m.rec.recs[0].capture)
		}
		var due, got int
		if recs := m.rec.recs; len(recs) > 0 {
			played := make(map[uint64]bool, len(recs))
			for _, r := range recs {
				played[r.seq] = true
			}
			for i := range recs {
				d, g, complete := span(recs, played, i)
				if i == 0 {
					due, got = d, g // the start's own span
				}
				if !complete {
					break
				}
				if g >= d-1 {
					v.wholeAt = recs[i].at.Sub(w)
					wholes = append(wholes, v.wholeAt)
					break
				}
			}
		}
		m.rec.mu.Unlock()
		startDue, startGot = startDue+due, startGot+got
		if due > 0 {
			v.whole = float64(got) / float64(due)
			switch {
			case v.whole < 0.5:
				wholeHist[0]++
			case v.whole < 0.99:
				wholeHist[1]++
			default:
				wholeHist[2]++
			}
		}
		if !f.IsZero() {
			v.at, v.play = w.Sub(t0), f.Sub(w)
			starts = append(starts, v)
		}
	}
	if startDue > 0 {
		res.StartContinuity = float64(startGot) / float64(startDue)
	}
	slices.Sort(wholes)
	res.WholeP50, res.WholeP95 = quantile(wholes, 0.5), quantile(wholes, 0.95)
	slices.Sort(infos)
	slices.Sort(firsts)
	s.cfg.Logf("startup steps (p50/p95): info %v/%v, first chunk %v/%v; continuity over the first %v played %.4f (viewers below 0.5: %d, 0.5-0.99: %d, 0.99 and up: %d); playing whole from %v/%v (%d viewers)", quantile(infos, 0.5), quantile(infos, 0.95), quantile(firsts, 0.5), quantile(firsts, 0.95), startSpan, res.StartContinuity, wholeHist[0], wholeHist[1], wholeHist[2], res.WholeP50.Round(time.Millisecond), res.WholeP95.Round(time.Millisecond), len(wholes))
	if stripeN > 0 {
		s.cfg.Logf("startup steps: %d stripes started after %.2f subscriptions each on average; %.0f %% of them after more than one", stripeN, float64(triesSum)/float64(stripeN), 100*float64(retried)/float64(stripeN))
	}
	if s.cfg.Verbose {
		sort.Slice(starts, func(i, j int) bool { return starts[i].play > starts[j].play })
		for _, v := range starts[:min(5, len(starts))] {
			s.cfg.Logf("slow start: viewer %d watched at t=%v: info %v, first chunk %v, played %v, its first played chunk captured %v before, %.2f of its first %v played, whole from %v; stripes' first chunk/tries:%s",
				v.idx, v.at.Round(time.Millisecond), v.info.Round(time.Millisecond), v.first.Round(time.Millisecond), v.play.Round(time.Millisecond), v.late.Round(time.Millisecond), v.whole, startSpan, v.wholeAt.Round(time.Millisecond), v.stripes)
		}
	}
	slices.Sort(startups)
	res.StartupP50, res.StartupP95 = quantile(startups, 0.5), quantile(startups, 0.95)
	if nVanish > 0 {
		res.EventContinuity = 1
		if evDue > 0 {
			res.EventContinuity = float64(evGot) / float64(evDue)
		}
		if !lastMiss.IsZero() {
			res.Recovery = lastMiss.Sub(ev0) + s.cfg.Source.ChunkDuration
		}
		for b := range binDue {
			if binDue[b] >= 100 && float64(binGot[b]) < 0.99*float64(binDue[b]) { // a last, partial bin of few chunks says little
				res.Settled = time.Duration(b+1) * binLen
			}
		}
	}
	return res
}

// startSpan is how much of each viewer's first playout StartContinuity
// counts.
const startSpan = 2 * time.Second

// Header is the table header that Row fills.
const Header = "| viewers | delay p50 | p95 | p99 | lower bound | continuity (min) | startup p50 | p95 | source upload | peer eff. | overhead | depth mean/max | switches | event: vanished, continuity, last miss, settled |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"

// Row is the result as a markdown table row.
func (r *Result) Row() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
	ev := "–"
	if r.Vanished > 0 {
		ev = fmt.Sprintf("%d, %.4f, %.1f s, %.1f s", r.Vanished, r.EventContinuity, r.Recovery.Seconds(), r.Settled.Seconds())
	}
	return fmt.Sprintf("| %d | %s | %s | %s | %s | %.4f (%.3f) | %s | %s | %.2fx | %.3f | %.3f | %.1f/%d | %d | %s |",
		r.Viewers, ms(r.DelayP50), ms(r.DelayP95), ms(r.DelayP99), ms(r.LowerBound),
		r.Continuity, r.MinContinuity, ms(r.StartupP50), ms(r.StartupP95),
		r.SourceUpload, r.PeerEfficiency, r.ControlOverhead, r.MeanDepth, r.MaxDepth, r.Switches, ev)
}

// pacer is a node's upload limiter at 95 % of its uplink (as a daemon run
// with --max-upload set to its uplink): live chunks leave at the link's
// rate instead of in bursts to every child at once, which the links'
// FQ-CoDel queues answer by dropping packets (QUIC then recovers them a
// round trip or a probe timeout later, past the children's stall timeout).
func pacer(bitsPerSec int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(float64(bitsPerSec)/8*0.95), 16<<10)
}
