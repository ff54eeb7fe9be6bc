package live_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node/live"
	plive "github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ask sends req to p over the live protocol and returns what p answers up
// to and including its end message (a subscription that is taken: up to
// the first status).
func ask(t *testing.T, h host.Host, p peer.ID, req *pb.LiveRequest) []*pb.LiveMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, p, live.ID)
	if err != nil {
		t.Fatalf("open a live stream to %s: %v", p, err)
	}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	if err := wire.WriteMsg(s, req); err != nil {
		t.Fatalf("send request: %v", err)
	}
	r := wire.NewReader(s)
	var got []*pb.LiveMessage
	for {
		m, err := plive.ReadMessage(r)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(got), err)
		}
		got = append(got, m)
		switch m.Msg.(type) {
		case *pb.LiveMessage_End:
			return got
		case *pb.LiveMessage_Status:
			if !req.Probe {
				return got // taken
			}
		}
	}
}

func statusOf(msgs []*pb.LiveMessage) *pb.LiveStatus {
	for _, m := range msgs {
		if s, ok := m.Msg.(*pb.LiveMessage_Status); ok {
			return s.Status
		}
	}
	return nil
}

func endOf(msgs []*pb.LiveMessage) *pb.Status {
	if len(msgs) == 0 {
		return nil
	}
	if e, ok := msgs[len(msgs)-1].Msg.(*pb.LiveMessage_End); ok {
		return e.End
	}
	return nil
}

// A relay that has lost its parent for more than a second takes no new
// children until it has a parent again, and says so to probers (depth 65:
// not attached), though it holds recent chunks and has free slots. Peers that lose their parents in
// the same event are otherwise each other's best standbys: they took each
// other as children, fed each other nothing and failed over again and
// again (a swarm of 300 lost 120-140 stripes that way for 10 s). Here the
// relay's parent is the source, closed under it: nobody can feed it again.
func TestSeekingRelayTakesNoNewChild(t *testing.T) {
	sw := newSwarm(t, 4, []int{4})
	src, _ := broadcast(t, sw.src, "seeking")
	relay := watch(t, sw.viewers[0], src, filepath.Join(t.TempDir(), "relay.ts"))
	waitFor(t, "relay playing from the source", 15*time.Second, func() bool {
		s := relay.Stats()
		return s.Delivered > 5 && s.Depth == 1
	})

	asker, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { asker.Close() })
	rh := sw.viewers[0].Node().Host()
	if err := asker.Connect(context.Background(), peer.AddrInfo{ID: rh.ID(), Addrs: rh.Addrs()}); err != nil {
		t.Fatal(err)
	}
	id := src.Stream().ID().Bytes()
	probe := &pb.LiveRequest{Stream: id, Probe: true}

	// Attached: depth 1, room, and it takes a child.
	st := statusOf(ask(t, asker, rh.ID(), probe))
	if st == nil || st.Depth != 1 || st.MaxChildren <= st.Children {
		t.Fatalf("attached relay's probe answer %v, want depth 1 with room", st)
	}
	if taken := ask(t, asker, rh.ID(), &pb.LiveRequest{Stream: id, FromLatest: true}); endOf(taken) != nil {
		t.Fatalf("attached relay with room refused a child: %v", endOf(taken))
	}

	sw.src.Close()
	waitFor(t, "relay without a parent in every stripe", 10*time.Second, func() bool {
		for _, p := range relay.Stats().Parents {
			if p != "" {
				return false
			}
		}
		return true
	})

	// Within a grace of a second (a failover takes a few round trips) it
	// still counts as attached; then no more.
	lost := time.Now()
	waitFor(t, "the seeking relay to answer probes 'not attached'", 5*time.Second, func() bool {
		st = statusOf(ask(t, asker, rh.ID(), probe))
		return st != nil && st.Depth == plive.MaxAncestors+1
	})
	t.Logf("not attached %v after its last parent was gone", time.Since(lost).Round(10*time.Millisecond))
	if st.LatestSeq == 0 {
		t.Errorf("seeking relay holds no chunk: the test shows nothing")
	}
	refused := ask(t, asker, rh.ID(), &pb.LiveRequest{Stream: id, FromLatest: true})
	end := endOf(refused)
	if end == nil || end.Code != pb.Code_BUSY {
		t.Fatalf("seeking relay answered a new child with %v, want end BUSY", refused)
	}
	t.Logf("refused: %s", end.Message)
}
