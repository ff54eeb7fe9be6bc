package live

import (
	"io"
	"testing"
	"time"

	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/libp2p/go-libp2p/core/network"
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

	now := time.Now()
	if home.roomKnown(now) {
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
	if !home.roomKnown(now) {
		t.Fatal("stripe 0 would probe again though its home peer just answered with room")
	}
	if other.roomKnown(now) {
		t.Fatal("stripe 1 takes a peer of home stripe 0 as known room")
	}
	if home.roomKnown(now.Add(probeFresh)) {
		t.Fatalf("an answer %v old still counts as room", probeFresh)
	}

	// Refused (a busy answer counts as a failure): probe again.
	st.mu.Lock()
	st.cands[room.ID()].fails++
	st.mu.Unlock()
	if home.roomKnown(now) {
		t.Fatal("a peer that refused us still counts as room")
	}
	// A fresh answer clears the failure.
	st.probeWithin(room.ID(), time.Second, probeJoin)
	if !home.roomKnown(time.Now()) {
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
