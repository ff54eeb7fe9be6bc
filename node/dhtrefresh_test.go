package node_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node"
	"github.com/libp2p/go-libp2p/core/peer"
)

func dhtNode(t *testing.T, boot *node.Node, refreshAfter time.Duration) *node.Node {
	t.Helper()
	h := loopbackHost(t)
	cfg := node.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RefreshAfter: refreshAfter}
	if boot != nil {
		cfg.Bootstrap = []peer.AddrInfo{{ID: boot.Host().ID(), Addrs: boot.Host().Addrs()}}
	}
	n, err := node.New(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// refreshedBuckets counts the routing table's buckets that a lookup has
// refreshed (kad-dht stamps a bucket when a lookup of a key in it completes;
// a lookup of the node's own ID stamps none).
func refreshedBuckets(n *node.Node) int {
	k := 0
	for _, at := range n.DHT().RoutingTable().GetTrackedCplsForRefresh() {
		if !at.IsZero() {
			k++
		}
	}
	return k
}

// A joining node looks up its own ID, which meets the swarm, and nothing
// more: the per-bucket refresh, a lookup per bucket that every node of a
// flash crowd would run at once, waits for the node's own schedule.
func TestJoinDefersRoutingTableRefresh(t *testing.T) {
	boot := dhtNode(t, nil, time.Hour)
	for range 6 {
		dhtNode(t, boot, time.Hour)
	}
	late := dhtNode(t, boot, time.Hour)
	// Due before it has met anyone: the refresh runs once its table has a
	// peer.
	soon := dhtNode(t, boot, time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for late.DHT().RoutingTable().Size() < 6 {
		if time.Now().After(deadline) {
			t.Fatalf("the joining node's lookup of its own ID met %d peers, want 6 or more", late.DHT().RoutingTable().Size())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for refreshedBuckets(soon) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no bucket refreshed by a node whose first refresh was due 1 ms after start, before its table had a peer")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if k := refreshedBuckets(late); k != 0 {
		t.Fatalf("a node whose first refresh is an hour away refreshed %d buckets on joining", k)
	}
}
