package live_test

import (
	"context"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node/live"
	plive "github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A stripe that could not reach the peer it chose never had it as a parent:
// a joiner whose subscription's dial fails goes on joining, it does not fail
// over (a failover checks 8, then 24, standbys at once; in a crowd at its
// peer bound, joiners' refused dials set off most of the failovers). Here
// the lure answers the viewer's probe as a peer at the source with room,
// then goes away before the viewer subscribes; the viewer gets the stream
// from the real source without a single failover probe.
func TestUnreachableParentIsNoFailover(t *testing.T) {
	boot := startDaemon(t, 4)
	viewer := startDaemon(t, 4, tcpAddr(t, boot))
	waitFor(t, "viewer in the DHT", 10*time.Second, func() bool { return viewer.Node().DHT().RoutingTable().Size() > 0 })
	src, _ := broadcast(t, boot, "unreachable")

	lure, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	lure.SetStreamHandler(live.ID, func(s network.Stream) {
		defer s.Reset()
		req, _, err := plive.ReadRequest(wire.NewReader(s))
		if err != nil || !req.Probe {
			return
		}
		_ = wire.WriteMsg(s, &pb.LiveMessage{Msg: &pb.LiveMessage_Status{Status: &pb.LiveStatus{Depth: 0, MaxChildren: 8}}})
		_ = wire.WriteMsg(s, &pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{}}})
		_ = s.CloseWrite()
		_, _ = io.Copy(io.Discard, s)
		once.Do(func() { go lure.Close() }) // gone before the viewer subscribes
	})
	t.Cleanup(func() { lure.Close() })
	viewer.Node().Host().Peerstore().AddAddrs(lure.ID(), lure.Addrs(), time.Hour)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	st, err := viewer.Live().Watch(ctx, src.Stream().ID(), live.WatchOptions{
		Sinks: mustFileSink(t, filepath.Join(t.TempDir(), "v.ts")), FindTimeout: 15 * time.Second,
		Peers: []peer.ID{lure.ID()}})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	defer st.Close()
	waitFor(t, "the viewer playing", 10*time.Second, func() bool { return st.Stats().Delivered > 20 })
	s := st.Stats()
	t.Logf("probes sent %v, of them dials %v; switches %d", s.ProbesOut, s.ProbeDials, s.Switches)
	if s.ProbesOut["join"] == 0 {
		t.Fatalf("the viewer never probed to join (%v): the lure was not tried", s.ProbesOut)
	}
	if n := s.ProbesOut["failover"]; n != 0 {
		t.Fatalf("the viewer sent %d failover probes after a dial to a peer that never was its parent failed", n)
	}
}
