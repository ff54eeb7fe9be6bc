package live_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node/daemon"
	"github.com/hivecast/hivecast/node/live"
	"github.com/libp2p/go-libp2p/core/peer"
)

// startClient starts a daemon whose DHT is in client mode: it is in no
// one's routing table, so a peer connected only to DHT clients has no one
// to look a stream up with.
func startClient(t *testing.T) *daemon.Daemon {
	t.Helper()
	return startWith(t, daemon.Options{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, DHTClient: true, MaxChildren: 4})
}

// A joiner asks the peers it is already connected to whether they take
// part in the stream, beside its DHT lookup: here the DHT cannot answer
// (the joiner's only connection is to a DHT client, so its routing table
// is empty), and the neighbour that watches is found and feeds it.
func TestJoinerAsksItsNeighbours(t *testing.T) {
	src := startClient(t)
	nb := startClient(t)
	joiner := startClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srcInfo := peer.AddrInfo{ID: src.Node().Host().ID(), Addrs: src.Node().Host().Addrs()}
	if err := nb.Node().Host().Connect(ctx, srcInfo); err != nil {
		t.Fatal(err)
	}
	s, _ := broadcast(t, src, "neighbours")
	id := s.Stream().ID()
	nst, err := nb.Live().Watch(ctx, id, live.WatchOptions{Sinks: mustFileSink(t, filepath.Join(t.TempDir(), "nb.ts")), Peers: []peer.ID{srcInfo.ID}, FindTimeout: 8 * time.Second})
	if err != nil {
		t.Fatalf("neighbour: %v", err)
	}
	defer nst.Close()

	nbInfo := peer.AddrInfo{ID: nb.Node().Host().ID(), Addrs: nb.Node().Host().Addrs()}
	if err := joiner.Node().Host().Connect(ctx, nbInfo); err != nil {
		t.Fatal(err)
	}
	if n := joiner.Node().DHT().RoutingTable().Size(); n != 0 {
		t.Fatalf("joiner's routing table holds %d peers; the test needs it empty", n)
	}
	st, err := joiner.Live().Watch(ctx, id, live.WatchOptions{Sinks: mustFileSink(t, filepath.Join(t.TempDir(), "j.ts")), FindTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("joiner connected to a viewer of the stream, with no DHT to ask: %v", err)
	}
	defer st.Close()
	waitFor(t, "the joiner's first chunk", 5*time.Second, func() bool { return st.Stats().ChunksIn > 0 })
	x := st.Stats()
	if x.ProbesOut["neighbour"] == 0 {
		t.Errorf("probes by purpose %v: no neighbour probe", x.ProbesOut)
	}
	if x.Parent != nbInfo.ID.String() {
		t.Errorf("joiner's parent %q, want the neighbour %s", x.Parent, nbInfo.ID)
	}
}
