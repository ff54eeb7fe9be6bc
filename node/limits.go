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
// well below the bound, so that a full node makes room again within seconds;
// the gater is the hard bound.
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

// Connection manager timing (NewConnManager). A DHT query or a probe is done
// with its connection within a second; a connection that carries video is
// protected by the service using it. So a connection needs little grace, and
// in a flash crowd (a hundred newcomers a second dialling the source of a
// stream) a long grace fills the node up to the gater's bound with
// connections nobody may trim, and the gater then refuses everyone: a
// 1,000-viewer simulation with 20 s of grace lost the whole swarm
// (docs/benchmarks.md).
const (
	connGrace   = 5 * time.Second
	connSilence = time.Second // the manager checks the count this often
)

// NewConnManager returns a connection manager for a node bounded to
// maxPeers peers (PeerCap): it trims to half of maxPeers once the node has
// three quarters, so that the last quarter stays free for newcomers until the
// next trim. Peers that carry video are protected by the services that stream
// with them. opts override the timing (tests).
func NewConnManager(maxPeers int, opts ...connmgr.Option) (*connmgr.BasicConnMgr, error) {
	if maxPeers <= 0 {
		maxPeers = 400
	}
	high := max(maxPeers*3/4, 1)
	low := max(maxPeers/2, 1)
	o := append([]connmgr.Option{connmgr.WithGracePeriod(connGrace), connmgr.WithSilencePeriod(connSilence)}, opts...)
	return connmgr.NewConnManager(low, high, o...)
}
