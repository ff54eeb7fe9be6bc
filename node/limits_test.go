package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
)

func loopbackHost(t *testing.T, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// boundedHub is a host bounded to maxPeers peers as a daemon is.
func boundedHub(t *testing.T, maxPeers int) host.Host {
	cm, err := node.NewConnManager(maxPeers)
	if err != nil {
		t.Fatal(err)
	}
	gater := node.NewPeerCap(maxPeers)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		t.Fatal(err)
	}
	hub := loopbackHost(t, libp2p.ConnectionManager(cm), libp2p.ConnectionGater(gater),
		libp2p.ResourceManager(gater.ResourceManager(rm)),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"))
	gater.Attach(hub)
	return hub
}

// admitted dials hub from h and reports whether hub holds a connection to h
// a moment later (a refused TCP dial may look connected to the dialler until
// the hub closes it).
func admitted(t *testing.T, hub, h host.Host) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.Connect(ctx, peer.AddrInfo{ID: hub.ID(), Addrs: hub.Addrs()})
	time.Sleep(100 * time.Millisecond)
	return len(hub.Network().ConnsToPeer(h.ID())) > 0
}

// A node at its peer bound makes room for a newcomer by closing an idle,
// unprotected peer (never one a service protects, never one that has just
// connected), so that DHT traffic in a flash crowd cannot lock out the
// viewers of a stream; with nothing to close, it refuses.
func TestPeerBoundMakesRoom(t *testing.T) {
	const maxPeers = 4
	hub := boundedHub(t, maxPeers)
	var first []host.Host
	for i := 0; i < maxPeers; i++ {
		h := loopbackHost(t)
		if !admitted(t, hub, h) {
			t.Fatalf("peer %d of %d refused", i+1, maxPeers)
		}
		first = append(first, h)
	}
	hub.ConnManager().Protect(first[0].ID(), "test/video")
	if admitted(t, hub, loopbackHost(t)) {
		t.Fatal("a peer beyond the bound was admitted while every peer had just connected")
	}
	time.Sleep(time.Second) // past evictMinAge
	late := loopbackHost(t)
	if !admitted(t, hub, late) {
		t.Fatalf("a newcomer was refused although idle unprotected peers could make room (hub has %d peers)", len(hub.Network().Peers()))
	}
	if n := len(hub.Network().Peers()); n > maxPeers {
		t.Fatalf("hub has %d peers, bound %d", n, maxPeers)
	}
	if len(hub.Network().ConnsToPeer(first[0].ID())) == 0 {
		t.Fatal("the protected peer was closed to make room")
	}
}

func TestPeerBoundKeepsProtected(t *testing.T) {
	const maxPeers = 2
	hub := boundedHub(t, maxPeers)
	for i := 0; i < maxPeers; i++ {
		h := loopbackHost(t)
		if !admitted(t, hub, h) {
			t.Fatalf("peer %d of %d refused", i+1, maxPeers)
		}
		hub.ConnManager().Protect(h.ID(), "test/video")
	}
	time.Sleep(1100 * time.Millisecond)
	if admitted(t, hub, loopbackHost(t)) {
		t.Fatal("a newcomer was admitted beyond the bound although every peer is protected")
	}
	if n := len(hub.Network().Peers()); n != maxPeers {
		t.Fatalf("hub has %d peers, want %d", n, maxPeers)
	}
}

// A full node with no peer it may close still dials a peer one of its
// services protects (a parent it subscribes to), beyond its bound; any other
// dial it refuses.
func TestPeerBoundDialsProtected(t *testing.T) {
	const maxPeers = 2
	hub := boundedHub(t, maxPeers)
	for i := 0; i < maxPeers; i++ {
		h := loopbackHost(t)
		if !admitted(t, hub, h) {
			t.Fatalf("peer %d of %d refused", i+1, maxPeers)
		}
		hub.ConnManager().Protect(h.ID(), "test/video")
	}
	dial := func(h host.Host) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hub.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	}
	if err := dial(loopbackHost(t)); err == nil {
		t.Fatal("a full hub dialled a new unprotected peer")
	}
	parent := loopbackHost(t)
	hub.ConnManager().Protect(parent.ID(), "test/parent")
	if err := dial(parent); err != nil {
		t.Fatalf("a full hub could not dial a peer it protects: %v", err)
	}
	if n := len(hub.Network().Peers()); n != maxPeers+1 {
		t.Fatalf("hub has %d peers, want %d (the bound and the protected one)", n, maxPeers+1)
	}
}

// A full node with no peer it may close refuses a QUIC newcomer at its first
// packet (CONNECTION_REFUSED), before the handshake, instead of completing
// the handshake and then closing the connection in its gater: in a flash
// crowd those handshakes were most of what a full source sent.
func TestFullNodeRefusesBeforeHandshake(t *testing.T) {
	hub := boundedHub(t, 1)
	var quicAddrs []ma.Multiaddr
	for _, a := range hub.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			quicAddrs = append(quicAddrs, a)
		}
	}
	if len(quicAddrs) == 0 {
		t.Fatalf("hub listens on no QUIC address: %v", hub.Addrs())
	}
	dial := func(h host.Host) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return h.Connect(ctx, peer.AddrInfo{ID: hub.ID(), Addrs: quicAddrs})
	}
	first := loopbackHost(t, libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err := dial(first); err != nil {
		t.Fatalf("first peer refused: %v", err)
	}
	late := loopbackHost(t, libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	err := dial(late)
	if err == nil {
		t.Fatal("a newcomer connected to a full node whose only peer had just connected")
	}
	if !strings.Contains(err.Error(), "CONNECTION_REFUSED") {
		t.Fatalf("the newcomer was not refused at its first packet: %v", err)
	}
	if len(hub.Network().ConnsToPeer(late.ID())) != 0 || len(hub.Network().ConnsToPeer(first.ID())) == 0 {
		t.Fatal("the refusal changed the hub's peers")
	}
	time.Sleep(1100 * time.Millisecond) // past evictMinAge: the first peer may be closed to make room
	later := loopbackHost(t, libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err := dial(later); err != nil {
		t.Fatalf("a newcomer was refused although the hub could make room: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if len(hub.Network().ConnsToPeer(later.ID())) == 0 || len(hub.Network().Peers()) > 1 {
		t.Fatalf("hub peers after making room: %d, newcomer connected: %v", len(hub.Network().Peers()), len(hub.Network().ConnsToPeer(later.ID())) > 0)
	}
}
