package node

import (
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	ma "github.com/multiformats/go-multiaddr"
)

// PeerCap is a connection gater that keeps the number of connected peers at
// or below a maximum: it refuses to dial, or to accept a connection from, a
// new peer once the node has that many. Connections to peers already
// connected are always allowed. The connection manager (NewConnManager) trims
// back towards its low-water mark; the gater is the hard bound.
type PeerCap struct {
	max int
	nw  atomic.Pointer[network.Network]
}

// NewPeerCap returns a gater for at most max peers (0 or less: no bound).
// Call Attach with the host's network once the host exists.
func NewPeerCap(max int) *PeerCap { return &PeerCap{max: max} }

// Attach gives the gater the network whose peers it counts.
func (g *PeerCap) Attach(nw network.Network) { g.nw.Store(&nw) }

func (g *PeerCap) allow(p peer.ID) bool {
	if g.max <= 0 {
		return true
	}
	nwp := g.nw.Load()
	if nwp == nil {
		return true
	}
	nw := *nwp
	if nw.Connectedness(p) == network.Connected {
		return true
	}
	return len(nw.Peers()) < g.max
}

// InterceptPeerDial refuses to dial a new peer when the node is full.
func (g *PeerCap) InterceptPeerDial(p peer.ID) bool { return g.allow(p) }

// InterceptAddrDial allows every address.
func (g *PeerCap) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }

// InterceptAccept allows the raw connection; the peer is known only later.
func (g *PeerCap) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured refuses an inbound connection from a new peer when full.
func (g *PeerCap) InterceptSecured(dir network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	if dir == network.DirOutbound {
		return true
	}
	return g.allow(p)
}

// InterceptUpgraded allows every upgraded connection.
func (g *PeerCap) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// NewConnManager returns a connection manager whose high-water mark is
// maxPeers and low-water mark three quarters of it. Peers that carry video
// are protected by the services that stream with them.
func NewConnManager(maxPeers int) (*connmgr.BasicConnMgr, error) {
	if maxPeers <= 0 {
		maxPeers = 400
	}
	low := maxPeers * 3 / 4
	if low < 1 {
		low = 1
	}
	return connmgr.NewConnManager(low, maxPeers, connmgr.WithGracePeriod(20*time.Second))
}
