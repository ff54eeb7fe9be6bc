package node

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	basicconnmgr "github.com/libp2p/go-libp2p/p2p/net/connmgr"
	ma "github.com/multiformats/go-multiaddr"
)

// PeerCap is a connection gater that keeps the number of connected peers at
// or below a maximum. A new peer, dialled or dialling, is admitted while the
// node has fewer; when it is full, PeerCap makes room by closing the
// connections of the least valuable peer that no service protects (a DHT
// query, a probe, peer exchange: never a peer that carries video) and has
// been connected for at least a second, and refuses only when there is none.
// So the bound holds, and a node full of DHT traffic in a flash crowd still
// takes the viewers that want its stream. Connections to peers already
// connected are always allowed. The connection manager (NewConnManager) trims
// back below the bound in the background.
type PeerCap struct {
	max int
	h   atomic.Pointer[host.Host]
	mu  sync.Mutex // one admission at a time: two must not both take the last slot
}

// evictMinAge: a peer connected for less than this is never closed to make
// room (its DHT query or probe is under way).
const evictMinAge = time.Second

// NewPeerCap returns a gater for at most max peers (0 or less: no bound).
// Call Attach with the host once it exists.
func NewPeerCap(max int) *PeerCap { return &PeerCap{max: max} }

// Attach gives the gater the host whose peers it counts and whose connection
// manager tells which peers are protected.
func (g *PeerCap) Attach(h host.Host) { g.h.Store(&h) }

// bounded returns the host whose peers the bound applies to, or false when
// there is no bound or no host attached yet.
func (g *PeerCap) bounded() (host.Host, bool) {
	if g.max <= 0 {
		return nil, false
	}
	hp := g.h.Load()
	if hp == nil {
		return nil, false
	}
	return *hp, true
}

func (g *PeerCap) allow(p peer.ID) bool {
	h, ok := g.bounded()
	if !ok {
		return true
	}
	nw := h.Network()
	if nw.Connectedness(p) == network.Connected {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	peers := nw.Peers()
	if len(peers) < g.max {
		return true
	}
	return g.makeRoomLocked(nw, h.ConnManager(), peers, p)
}

// hasRoom reports whether a new peer could be admitted now: the node has
// fewer peers than its bound, or one it may close to make room. It closes
// nothing; the admission itself (allow) comes after the handshake, when the
// peer is known.
func (g *PeerCap) hasRoom() bool {
	h, ok := g.bounded()
	if !ok {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	peers := h.Network().Peers()
	return len(peers) < g.max || g.victimLocked(h.ConnManager(), peers, "") != ""
}

// makeRoomLocked closes the connections of the unprotected peer with the
// lowest connection-manager value (the oldest among equals) connected for
// at least evictMinAge, and reports whether it found one.
func (g *PeerCap) makeRoomLocked(nw network.Network, cm connmgr.ConnManager, peers []peer.ID, newcomer peer.ID) bool {
	victim := g.victimLocked(cm, peers, newcomer)
	if victim == "" {
		return false
	}
	_ = nw.ClosePeer(victim)
	return true
}

// victimLocked returns the peer makeRoomLocked would close, or "".
func (g *PeerCap) victimLocked(cm connmgr.ConnManager, peers []peer.ID, newcomer peer.ID) peer.ID {
	now := time.Now()
	var victim peer.ID
	var vInfo *connmgr.TagInfo
	for _, q := range peers {
		if q == newcomer || cm.IsProtected(q, "") {
			continue
		}
		ti := cm.GetTagInfo(q)
		if ti == nil || now.Sub(ti.FirstSeen) < evictMinAge {
			continue
		}
		if vInfo == nil || ti.Value < vInfo.Value || (ti.Value == vInfo.Value && ti.FirstSeen.Before(vInfo.FirstSeen)) {
			victim, vInfo = q, ti
		}
	}
	return victim
}

// ResourceManager wraps rm so that an inbound connection is refused as it
// opens while the node is full and has no peer it could close: before the
// handshake, for the cost of one small packet, rather than after it. libp2p
// asks the resource manager when a QUIC connection's first Initial packet
// arrives (quic-go's ConnContext: the refusal is a CONNECTION_REFUSED close)
// and when a TCP connection is accepted. Without it, every refused newcomer
// costs the node a full handshake (its certificate, two round trips, the
// retransmissions of both when the uplink is busy): in a flash crowd that
// is most of what a full node sends (docs/benchmarks.md, 2026-12-03). The
// dialler sees a failed dial, which libp2p backs off from, not a connection
// closed right after it opened. Outbound connections are not affected.
func (g *PeerCap) ResourceManager(rm network.ResourceManager) network.ResourceManager {
	return capRM{rm, g}
}

// ErrFull is the error an inbound connection gets at a node that is full.
var ErrFull = errors.New("peer bound reached")

type capRM struct {
	network.ResourceManager
	g *PeerCap
}

func (r capRM) OpenConnection(dir network.Direction, usefd bool, endpoint ma.Multiaddr) (network.ConnManagementScope, error) {
	if dir == network.DirInbound && !r.g.hasRoom() {
		return nil, ErrFull
	}
	return r.ResourceManager.OpenConnection(dir, usefd, endpoint)
}

// InterceptPeerDial lets the node dial a new peer if it has room or can make
// some, and a peer one of its services protects (a parent it is subscribing
// to) even beyond the bound when it cannot: the connection manager trims
// back below it. A full joiner's own bound refused the dials to the parents
// it had chosen, its slots all taken by DHT queries and probes younger than
// evictMinAge: at 100 viewers bound to 32 peers, 200 subscriptions in a
// run (docs/benchmarks.md).
func (g *PeerCap) InterceptPeerDial(p peer.ID) bool {
	if g.allow(p) {
		return true
	}
	h, ok := g.bounded()
	return ok && h.ConnManager().IsProtected(p, "")
}

// InterceptAddrDial allows every address.
func (g *PeerCap) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }

// InterceptAccept allows the raw connection; the peer is known only later.
func (g *PeerCap) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured admits an inbound connection from a new peer if the node
// has room or can make some.
func (g *PeerCap) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	if dir == network.DirOutbound {
		return true
	}
	return g.allow(p)
}

// InterceptUpgraded allows every upgraded connection.
func (g *PeerCap) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// NewConnManager returns the connection manager of a node bounded to
// maxPeers peers: its high-water mark is maxPeers and it trims to three
// quarters of it, closing peers of least value first (a DHT routing-table
// peer is worth 5, a live candidate 20; parents and children are protected),
// none connected for less than 20 s. Between trims, a full node makes room
// for a newcomer on demand (PeerCap).
func NewConnManager(maxPeers int) (*basicconnmgr.BasicConnMgr, error) {
	if maxPeers <= 0 {
		maxPeers = 400
	}
	low := max(maxPeers*3/4, 1)
	return basicconnmgr.NewConnManager(low, maxPeers, basicconnmgr.WithGracePeriod(20*time.Second))
}
