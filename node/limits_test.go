package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
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

// A node at its peer bound refuses newcomers, then makes room for them once
// the connection manager has trimmed the idle connections past their grace:
// a full node must not stay closed to a flash crowd.
func TestPeerBoundMakesRoom(t *testing.T) {
	const maxPeers = 4
	cm, err := node.NewConnManager(maxPeers, connmgr.WithGracePeriod(300*time.Millisecond), connmgr.WithSilencePeriod(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	gater := node.NewPeerCap(maxPeers)
	hub := loopbackHost(t, libp2p.ConnectionManager(cm), libp2p.ConnectionGater(gater))
	gater.Attach(hub.Network())
	hubInfo := peer.AddrInfo{ID: hub.ID(), Addrs: hub.Addrs()}
	connect := func(h host.Host) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return h.Connect(ctx, hubInfo)
	}
	var first []host.Host
	for i := 0; i < maxPeers; i++ {
		h := loopbackHost(t)
		if err := connect(h); err != nil {
			t.Fatalf("peer %d of %d refused: %v", i+1, maxPeers, err)
		}
		first = append(first, h)
	}
	// The video-carrying peer: protected, never trimmed.
	hub.ConnManager().Protect(first[0].ID(), "test/video")
	// Whether the hub holds a connection to h a moment after h dialled it
	// (a refused TCP dial may look connected to the dialler until the hub
	// closes it).
	admitted := func(h host.Host) bool {
		_ = connect(h)
		time.Sleep(50 * time.Millisecond)
		return len(hub.Network().ConnsToPeer(h.ID())) > 0
	}
	late := loopbackHost(t)
	if admitted(late) {
		t.Fatal("a peer beyond the bound was admitted at once")
	}
	// Within a few trims the hub is down to its low-water mark (2) and
	// admits the newcomer.
	deadline := time.Now().Add(5 * time.Second)
	for !admitted(late) {
		if time.Now().After(deadline) {
			t.Fatalf("still refused after 5 s; hub has %d peers", len(hub.Network().Peers()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(hub.Network().Peers()); n > maxPeers {
		t.Fatalf("hub has %d peers, bound %d", n, maxPeers)
	}
	if len(hub.Network().ConnsToPeer(first[0].ID())) == 0 {
		t.Fatal("the protected peer was trimmed")
	}
}
