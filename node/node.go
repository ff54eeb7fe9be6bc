// Package node is a hivecast node: a libp2p host, the Kademlia DHT that
// replaces a tracker, connection management, and the services that wire the
// pure protocol code (package protocol/...) to libp2p streams.
//
// New takes a host built elsewhere, so the same node runs on real TCP/QUIC
// (package node/daemon builds that host from flags) and inside go-libp2p's
// simulator. Real I/O that is not a libp2p stream (disk, HTTP, mDNS, signals)
// stays out of this package's core.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// DHTPrefix is the protocol prefix of hivecast's DHT: hivecast nodes form
// their own Kademlia network, apart from the IPFS one.
const DHTPrefix = "/hivecast"

// Config tunes a Node. The zero value is usable.
type Config struct {
	// Bootstrap peers are dialled at start and again, with backoff, whenever
	// the node has no connected peer. A peer that is down never stops the node.
	Bootstrap []peer.AddrInfo
	// BootstrapBackoff is the first retry delay (doubles up to a minute).
	// Default 1 s.
	BootstrapBackoff time.Duration
	// Logger receives structured events. Default: slog.Default().
	Logger *slog.Logger
	// DHTOptions are appended to hivecast's DHT options (tests, simulator).
	DHTOptions []dht.Option
	// RefreshAfter is when the first full refresh of the DHT routing table
	// runs after the node starts (default one minute plus up to 30 s, so
	// that a crowd joining at once does not refresh at once; refreshLoop).
	RefreshAfter time.Duration
	// Bandwidth, when set, is the host's bandwidth reporter; Status reports
	// its totals.
	Bandwidth *metrics.BandwidthCounter
}

// Node is a running hivecast node.
type Node struct {
	host    host.Host
	dht     *dht.IpfsDHT
	log     *slog.Logger
	started time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	bootstrap []peer.AddrInfo
	kick      chan struct{}
	closed    bool
	bw        *metrics.BandwidthCounter
}

// The DHT's k (DHTBucketSize: peers per bucket, provider records'
// replicas, a lookup's closest set) and alpha (DHTConcurrency: queries in
// flight per lookup). All hivecast nodes need not agree on them.
const (
	DHTBucketSize  = 10
	DHTConcurrency = 3
)

// New starts a node on h: the DHT in server mode with the hivecast prefix and
// the bootstrap loop. The node does not own h; closing the node leaves h open.
func New(h host.Host, cfg Config) (*Node, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	backoff := cfg.BootstrapBackoff
	if backoff <= 0 {
		backoff = time.Second
	}
	opts := []dht.Option{
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(DHTPrefix),
		// No IPFS bootstrap peers: the hivecast network has its own.
		dht.BootstrapPeers(),
		// The node refreshes the routing table itself (refreshLoop).
		dht.DisableAutoRefresh(),
		// Narrower lookups than IPFS's Amino DHT (k = 20, alpha = 10):
		// every query of a lookup is a dial at a peer bound, and a viewer
		// looks up and announces its stream as it joins.
		dht.BucketSize(DHTBucketSize),
		dht.Concurrency(DHTConcurrency),
	}
	opts = append(opts, cfg.DHTOptions...)
	d, err := dht.New(h, opts...)
	if err != nil {
		return nil, fmt.Errorf("start DHT: %w", err)
	}
	log = log.With("self", shortID(h.ID()))
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		host:      h,
		dht:       d,
		log:       log,
		started:   time.Now(),
		ctx:       ctx,
		cancel:    cancel,
		bootstrap: append([]peer.AddrInfo(nil), cfg.Bootstrap...),
		kick:      make(chan struct{}, 1),
		bw:        cfg.Bandwidth,
	}
	h.Network().Notify(n.notifiee())
	n.wg.Add(3)
	go n.bootstrapLoop(backoff)
	go n.livenessLoop()
	go n.refreshLoop(cfg.RefreshAfter)
	log.Info("node started", "peer", h.ID().String(), "addrs", fmt.Sprint(h.Addrs()))
	return n, nil
}

// Host is the node's libp2p host.
func (n *Node) Host() host.Host { return n.host }

// DHT is the node's Kademlia DHT.
func (n *Node) DHT() *dht.IpfsDHT { return n.dht }

// Context is cancelled when the node closes; services use it as their parent.
func (n *Node) Context() context.Context { return n.ctx }

// Logger is the node's structured logger.
func (n *Node) Logger() *slog.Logger { return n.log }

// Close stops the node's goroutines and its DHT. It does not close the host.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	n.cancel()
	n.wg.Wait()
	return n.dht.Close()
}

// DialAsync connects to a peer in the background (owned by the node, ended
// by Close); failures are logged.
func (n *Node) DialAsync(ai peer.AddrInfo) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.host.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		defer cancel()
		if err := n.host.Connect(ctx, ai); err != nil {
			n.log.Debug("dial failed", "peer", ai.ID.String(), "err", err.Error())
			return
		}
		n.log.Info("connected", "peer", ai.ID.String())
	}()
}

func (n *Node) poke() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// bootstrapLoop dials the bootstrap peers while the node has no peers,
// with exponential backoff, and refreshes the DHT routing table whenever the
// node gains its first peer (so it learns the rest of the swarm).
func (n *Node) bootstrapLoop(first time.Duration) {
	defer n.wg.Done()
	delay := first
	const maxDelay = time.Minute
	refreshed := false
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.kick:
		}
		connected := len(n.host.Network().Peers()) > 0
		if !connected {
			refreshed = false
			if n.dialBootstrap() {
				connected = true
				delay = first
			} else {
				t.Reset(delay)
				delay = min(delay*2, maxDelay)
				continue
			}
		}
		if connected && !refreshed {
			refreshed = true
			n.refresh()
		}
		// Stay in touch with the bootstrap peers even while other peers
		// keep us in the swarm: a bootstrap node that restarts is then
		// redialled within rejoinInterval and can introduce newcomers again.
		n.mu.Lock()
		boots := append([]peer.AddrInfo(nil), n.bootstrap...)
		n.mu.Unlock()
		for _, ai := range boots {
			if n.host.Network().Connectedness(ai.ID) != network.Connected {
				n.DialAsync(ai)
			}
		}
		t.Reset(rejoinInterval)
	}
}

// rejoinInterval is how often a node in the swarm redials bootstrap peers it
// lost.
const rejoinInterval = 10 * time.Second

// dialBootstrap dials every bootstrap peer in parallel and reports whether any
// connection succeeded.
func (n *Node) dialBootstrap() bool {
	n.mu.Lock()
	peers := append([]peer.AddrInfo(nil), n.bootstrap...)
	n.mu.Unlock()
	if len(peers) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := false
	for _, ai := range peers {
		wg.Add(1)
		go func(ai peer.AddrInfo) {
			defer wg.Done()
			if err := n.host.Connect(ctx, ai); err != nil {
				n.log.Warn("bootstrap peer unreachable", "peer", ai.ID.String(), "err", err.Error())
				return
			}
			n.log.Info("connected to bootstrap peer", "peer", ai.ID.String())
			mu.Lock()
			ok = true
			mu.Unlock()
		}(ai)
	}
	wg.Wait()
	return ok
}

// refresh looks up our own ID in the DHT, which is how a node that knows one
// peer meets the rest of the swarm.
func (n *Node) refresh() {
	// The DHT adds a peer to its routing table only once identify has shown
	// that the peer speaks the DHT protocol; a query before that finds nobody.
	wait := time.NewTicker(50 * time.Millisecond)
	deadline := time.NewTimer(10 * time.Second)
	for n.dht.RoutingTable().Size() == 0 {
		select {
		case <-n.ctx.Done():
			wait.Stop()
			deadline.Stop()
			return
		case <-deadline.C:
			n.log.Warn("connected peers do not speak the hivecast DHT")
			wait.Stop()
			return
		case <-wait.C:
		}
	}
	wait.Stop()
	deadline.Stop()
	// A lookup of our own ID (Kademlia's join): it meets the peers closest
	// to us, which must know us for the DHT to route to us, and fills the
	// routing table along the way. refreshLoop refreshes the other buckets
	// later. A full refresh here (a lookup per bucket) made every node
	// joining a flash crowd dial a few hundred peers: at a node's peer
	// bound, each dial closes another peer's connection (docs/benchmarks.md).
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Second)
	_, err := n.dht.GetClosestPeers(ctx, string(n.host.ID()))
	cancel()
	if err != nil && !errors.Is(err, context.Canceled) {
		n.log.Debug("dht self-lookup", "err", err.Error())
	}
	n.log.Info("dht routing table refreshed", "size", n.dht.RoutingTable().Size())
}

func (n *Node) notifiee() network.Notifiee {
	return &network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			n.log.Debug("peer connected", "peer", c.RemotePeer().String(), "addr", c.RemoteMultiaddr().String())
		},
		DisconnectedF: func(nw network.Network, c network.Conn) {
			if nw.Connectedness(c.RemotePeer()) != network.Connected {
				n.log.Info("peer disconnected", "peer", c.RemotePeer().String())
			}
			if len(nw.Peers()) == 0 {
				n.poke()
			}
		},
	}
}

// Connect dials a peer given as a full multiaddr ending in /p2p/<id>.
func (n *Node) Connect(ctx context.Context, addr string) (peer.AddrInfo, error) {
	ai, err := ParseAddr(addr)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	if ai.ID == n.host.ID() {
		return ai, errors.New("that is this node's own address")
	}
	if err := n.host.Connect(ctx, ai); err != nil {
		return ai, fmt.Errorf("cannot reach %s: %w", ai.ID, err)
	}
	return ai, nil
}

// ParseAddr parses a full multiaddr ending in /p2p/<peer-id> and says what is
// wrong with it when it is not one.
func ParseAddr(s string) (peer.AddrInfo, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("invalid multiaddr %q: %v", s, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("invalid peer address %q: it must end in /p2p/<peer-id> (%v)", s, err)
	}
	return *ai, nil
}

// PeerInfo describes one connected peer.
type PeerInfo struct {
	ID        string        `json:"id"`
	Addr      string        `json:"addr"`
	Latency   time.Duration `json:"-"`
	LatencyMS float64       `json:"latency_ms"`
	Direction string        `json:"direction"`
	Streams   int           `json:"streams"`
}

// Peers lists connected peers, sorted by ID.
func (n *Node) Peers() []PeerInfo {
	var out []PeerInfo
	for _, p := range n.host.Network().Peers() {
		conns := n.host.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue
		}
		c := conns[0]
		lat := n.host.Peerstore().LatencyEWMA(p)
		streams := 0
		for _, cc := range conns {
			streams += len(cc.GetStreams())
		}
		out = append(out, PeerInfo{
			ID:        p.String(),
			Addr:      c.RemoteMultiaddr().String(),
			Latency:   lat,
			LatencyMS: float64(lat.Microseconds()) / 1000,
			Direction: c.Stat().Direction.String(),
			Streams:   streams,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Addrs returns the node's dialable addresses as full multiaddrs with /p2p/<id>.
func (n *Node) Addrs() []string {
	ai := peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}
	full, err := peer.AddrInfoToP2pAddrs(&ai)
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(full))
	for _, m := range full {
		out = append(out, m.String())
	}
	return out
}

// Status is a snapshot of the node's state.
type Status struct {
	ID           string        `json:"id"`
	Uptime       time.Duration `json:"-"`
	UptimeSec    float64       `json:"uptime_s"`
	Peers        int           `json:"peers"`
	RoutingTable int           `json:"routing_table"`
	BytesIn      int64         `json:"bytes_in"`
	BytesOut     int64         `json:"bytes_out"`
	RateIn       float64       `json:"rate_in_bps"`
	RateOut      float64       `json:"rate_out_bps"`
}

// Status reports the node's state.
func (n *Node) Status() Status {
	up := time.Since(n.started)
	var bw metrics.Stats
	if n.bw != nil {
		bw = n.bw.GetBandwidthTotals()
	}
	return Status{
		BytesIn:      bw.TotalIn,
		BytesOut:     bw.TotalOut,
		RateIn:       bw.RateIn * 8,
		RateOut:      bw.RateOut * 8,
		ID:           n.host.ID().String(),
		Uptime:       up,
		UptimeSec:    up.Seconds(),
		Peers:        len(n.host.Network().Peers()),
		RoutingTable: n.dht.RoutingTable().Size(),
	}
}

// shortID is the tail of a peer ID, enough to tell nodes apart in logs.
func shortID(p peer.ID) string {
	s := p.String()
	if len(s) > 8 {
		return s[len(s)-8:]
	}
	return s
}
