package live

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A joining stripe probes for parents only when it knows of none with
// room: a candidate of its home stripe that answered a probe lately with
// room, and has not refused or failed it since. Here the candidate is a
// real host on loopback answering the live protocol's probe (depth 1, four
// free slots); the other stripes, whose home it is not, still probe.
func TestJoinProbesOnlyWithoutKnownRoom(t *testing.T) {
	const k = 4
	st, h := viewerStream(t, k)

	room := loopbackHost(t, 0, k) // home stripe 0
	room.SetStreamHandler(ID, func(s network.Stream) {
		defer s.Reset()
		if err := wire.NewReader(s).ReadMsg(new(pb.LiveRequest), 1<<16); err != nil {
			return
		}
		_ = wire.WriteMsg(s, &pb.LiveMessage{Msg: &pb.LiveMessage_Status{Status: &pb.LiveStatus{Depth: 1, MaxChildren: 4}}})
		_ = wire.WriteMsg(s, &pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{}}})
		_ = s.CloseWrite()
		_, _ = io.Copy(io.Discard, s)
	})
	h.Peerstore().AddAddrs(room.ID(), room.Addrs(), time.Hour)
	st.addCandidate(room.ID(), -1, -1)
	home, other := st.feeds[0], st.feeds[1]

	known := func(f *feed, now time.Time) bool { ok, _ := f.roomKnown(now); return ok }
	now := time.Now()
	if known(home, now) {
		t.Fatal("room known before any probe")
	}
	st.joinProbe(home, 8)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st.mu.Lock()
		spare := st.cands[room.ID()].spare
		st.mu.Unlock()
		if spare == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer with room from the probed peer after 5 s (spare %d)", spare)
		}
	}
	now = time.Now()
	ok, at := home.roomKnown(now)
	if !ok {
		t.Fatal("stripe 0 would probe again though its home peer just answered with room")
	}
	st.mu.Lock()
	probedAt := st.cands[room.ID()].probedAt
	st.mu.Unlock()
	if !at.Equal(probedAt) {
		t.Fatalf("room known since %v, want the answer's time %v", at, probedAt)
	}
	if known(other, now) {
		t.Fatal("stripe 1 takes a peer of home stripe 0 as known room")
	}
	if known(home, now.Add(probeFresh)) {
		t.Fatalf("an answer %v old still counts as room", probeFresh)
	}

	// Refused (a busy answer counts as a failure): probe again.
	st.mu.Lock()
	st.cands[room.ID()].fails++
	st.mu.Unlock()
	if known(home, now) {
		t.Fatal("a peer that refused us still counts as room")
	}
	// A fresh answer clears the failure.
	st.probeWithin(room.ID(), time.Second, probeJoin)
	if !known(home, time.Now()) {
		t.Fatal("no room known after a fresh answer with room")
	}
	if n := st.probesOut[probeJoin]; n != 2 {
		t.Fatalf("%d join probes counted, want 2", n)
	}
}

// A joining stripe probes the candidates whose home stripe is its own
// first (those it can take as a parent), then the rest; background probes
// (unknown) keep one order for all stripes.
func TestJoinProbesHomeFirst(t *testing.T) {
	const k = 4
	st, _ := viewerStream(t, k)
	homes := map[string]int{}
	for i := 0; i < k; i++ {
		for j := 0; j < 3; j++ {
			p := loopbackHost(t, i, k)
			st.addCandidate(p.ID(), -1, -1)
			homes[string(p.ID())] = i
		}
	}
	for _, f := range st.feeds {
		ids := st.unknownFor(f, 4)
		if len(ids) != 4 {
			t.Fatalf("stripe %d: %d candidates to probe, want 4", f.idx, len(ids))
		}
		for i, id := range ids {
			if want := i < 3; (homes[string(id)] == f.idx) != want {
				t.Fatalf("stripe %d: candidate %d to probe has home stripe %d; want its 3 home peers first, then another", f.idx, i, homes[string(id)])
			}
		}
	}
	if all := st.unknown(len(homes)); len(all) != len(homes) {
		t.Fatalf("unknown returned %d of %d candidates", len(all), len(homes))
	}
}

// A joiner that knows of room from an answer just in waits the join's
// grace before it subscribes, as a join probe does: one closer to the
// source may be about to answer. Here the joiner is connected to two real
// hosts on loopback and asks both (its neighbours); the one a hop deeper
// answers at once, the closer one 20 ms later. The first subscription must
// go to the closer one. Without the grace the joiner subscribed to the
// first that answered, one hop below a source with room (TestLiveParentKilled
// failed on it in CI), and moving up takes two levels of difference.
func TestJoinWaitsGraceAfterFirstRoom(t *testing.T) {
	st, h := viewerStream(t, 1)
	st.svc.cfg.defaults() // run subscribes: heartbeat, stall timeout
	var mu sync.Mutex
	var subscribed []peer.ID
	serve := func(depth uint32, delay time.Duration) host.Host {
		p := loopbackHost(t, 0, 1)
		p.SetStreamHandler(ID, func(s network.Stream) {
			defer s.Reset()
			var req pb.LiveRequest
			if err := wire.NewReader(s).ReadMsg(&req, 1<<16); err != nil {
				return
			}
			if !req.Probe {
				mu.Lock()
				subscribed = append(subscribed, p.ID())
				mu.Unlock()
				return
			}
			time.Sleep(delay)
			_ = wire.WriteMsg(s, &pb.LiveMessage{Msg: &pb.LiveMessage_Status{Status: &pb.LiveStatus{Depth: depth, MaxChildren: 4}}})
			_ = wire.WriteMsg(s, &pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{}}})
			_ = s.CloseWrite()
			_, _ = io.Copy(io.Discard, s)
		})
		if err := h.Connect(st.ctx, peer.AddrInfo{ID: p.ID(), Addrs: p.Addrs()}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	near, far := serve(1, 20*time.Millisecond), serve(2, 0)

	f := st.feeds[0]
	st.wg.Add(1)
	go f.run()
	t.Cleanup(func() { st.cancel(); st.wg.Wait() })
	st.askNeighbours()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		first := subscribed
		mu.Unlock()
		if len(first) > 0 {
			if first[0] != near.ID() {
				t.Fatalf("subscribed first to %s (depth 2, answered first), want %s (depth 1, answered 20 ms later)", first[0], near.ID())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no subscription after 5 s")
		}
	}
	st.mu.Lock()
	got := st.probesOut[probeNeighbour]
	st.mu.Unlock()
	if got != 2 {
		t.Errorf("%d neighbour probes counted, want 2 (near %s, far %s)", got, near.ID(), far.ID())
	}
}
