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

// A viewer whose provider lookup found only peers that cannot feed it (here
// a node that announced the stream but does not carry it; in a flash crowd,
// full peers that refuse it) looks again within a second or two, not after
// the 10 s a viewer that knows enough candidates waits.
func TestViewerLooksAgainWhenNoCandidateServes(t *testing.T) {
	boot := startDaemon(t, 4)
	bootAddr := tcpAddr(t, boot)
	bogus := startDaemon(t, 4, bootAddr)
	viewer := startDaemon(t, 4, bootAddr)
	src := startDaemon(t, 4) // not in the swarm yet: its announcement fails until it joins
	for _, d := range []*daemon.Daemon{bogus, viewer} {
		waitFor(t, "node in the DHT", 10*time.Second, func() bool { return d.Node().DHT().RoutingTable().Size() > 0 })
	}
	s, _ := broadcast(t, src, "late")
	id := s.Stream().ID()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := bogus.Node().DHT().Provide(ctx, id, true); err != nil {
		t.Fatal(err)
	}

	type result struct {
		st  *live.Stream
		err error
	}
	got := make(chan result, 1)
	start := time.Now()
	go func() {
		st, err := viewer.Live().Watch(context.Background(), id, live.WatchOptions{
			Sinks: mustFileSink(t, filepath.Join(t.TempDir(), "v.ts")), FindTimeout: 7 * time.Second})
		got <- result{st, err}
	}()
	// The viewer's first lookup finds only the bogus provider; then the
	// source joins and announces (its announcement retries every 2 s).
	time.Sleep(time.Second)
	src.Node().DialAsync(peer.AddrInfo{ID: boot.Node().Host().ID(), Addrs: boot.Node().Host().Addrs()})
	r := <-got
	if r.err != nil {
		t.Fatalf("viewer did not find the source that joined 1 s after it started watching: %v", r.err)
	}
	defer r.st.Close()
	t.Logf("stream info after %v", time.Since(start).Round(10*time.Millisecond))
}
