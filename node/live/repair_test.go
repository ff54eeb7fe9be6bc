package live_test

import (
	"testing"
	"time"

	"github.com/hivecast/hivecast/node/live"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A repair fetch between real hosts: the viewer gets exactly the chunks it
// asked for that the peer holds, verified, and counts them; a peer that
// answers with a chunk it was not asked for is dropped, and that chunk is
// not kept.
func TestRepairFetch(t *testing.T) {
	a := startDaemon(t, 4)
	b := startDaemon(t, 4, tcpAddr(t, a))
	src, _ := broadcast(t, a, "repair")
	sst := src.Stream()
	waitFor(t, "the source to hold 20 chunks", 20*time.Second, func() bool { return sst.Stats().LatestSeq >= 20 })

	v, err := b.Live().Detached(sst.ID(), sst.Info())
	if err != nil {
		t.Fatal(err)
	}
	aID := a.Node().Host().ID()
	waitFor(t, "b connected to a", 10*time.Second, func() bool {
		return b.Node().Host().Network().Connectedness(aID) == network.Connected
	})
	// 1<<40 is a chunk nobody holds: left out of the answer.
	v.RepairFetch(aID, []uint64{3, 5, 7, 1 << 40})
	for _, q := range []uint64{3, 5, 7} {
		if !v.Holds(q) {
			t.Errorf("chunk %d not fetched", q)
		}
	}
	if v.Holds(4) || v.Holds(6) {
		t.Error("chunks not asked for were added")
	}
	if got := v.Stats().Repaired; got != 3 {
		t.Errorf("repaired = %d, want 3", got)
	}
	if got := sst.Stats().FetchesIn; got != 1 {
		t.Errorf("source answered %d fetches, want 1", got)
	}
	// Asking again adds nothing new.
	v.RepairFetch(aID, []uint64{3})
	if got := v.Stats().Repaired; got != 3 {
		t.Errorf("repaired = %d after a duplicate fetch, want 3", got)
	}

	// A hostile peer answers a fetch of chunk 9 with chunk 11, a valid
	// chunk of the stream (signed by the source) that was not asked for.
	c := startDaemon(t, 4, tcpAddr(t, a))
	eleven := sst.Chunk(11)
	if eleven == nil {
		t.Fatal("source does not hold chunk 11")
	}
	c.Node().Host().SetStreamHandler(live.ID, func(s network.Stream) {
		defer s.Close()
		var req pb.LiveRequest
		if err := wire.NewReader(s).ReadMsg(&req, 1<<10); err != nil {
			return
		}
		_ = wire.WriteMsg(s, &pb.LiveMessage{Msg: &pb.LiveMessage_Chunk{Chunk: eleven}})
		_ = wire.WriteMsg(s, &pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{Code: pb.Code_OK}}})
	})
	cID := c.Node().Host().ID()
	if err := b.Node().Host().Connect(t.Context(), peer.AddrInfo{ID: cID, Addrs: c.Node().Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	v.RepairFetch(cID, []uint64{9})
	if v.Holds(11) || v.Holds(9) {
		t.Error("kept a chunk from a fetch answer that did not ask for it")
	}
	if got := v.Stats().Banned; got != 1 {
		t.Errorf("banned = %d, want 1 (the peer that sent a chunk not asked for)", got)
	}
}

// A peer that asks for chunks again and again gets at most what a node
// spends on fetches (a second of the stream at once, half its rate after
// that), whatever it asks: fetches cannot take a node's uplink from its
// children.
func TestFetchBounded(t *testing.T) {
	a := startDaemon(t, 4)
	src, _ := broadcast(t, a, "fetch-bound")
	sst := src.Stream()
	waitFor(t, "the source to hold 40 chunks", 30*time.Second, func() bool { return sst.Stats().LatestSeq >= 40 })
	bitrate := sst.Info().Bitrate
	if bitrate == 0 {
		t.Fatal("no bit rate in the stream's info")
	}
	h := startDaemon(t, 4, tcpAddr(t, a)).Node().Host()
	aID := a.Node().Host().ID()
	seqs := make([]uint64, 0, 32)
	for q := uint64(1); q <= 32; q++ {
		seqs = append(seqs, q)
	}
	start := time.Now()
	var got int
	for range 40 {
		s, err := h.NewStream(t.Context(), aID, live.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := wire.WriteMsg(s, &pb.LiveRequest{Stream: sst.ID().Bytes(), Fetch: seqs}); err != nil {
			t.Fatal(err)
		}
		r := wire.NewReader(s)
		for {
			var m pb.LiveMessage
			if err := r.ReadMsg(&m, 2<<20); err != nil {
				t.Fatalf("reading a fetch answer: %v", err)
			}
			if c := m.GetChunk(); c != nil {
				got += len(c.Data)
				continue
			}
			if e := m.GetEnd(); e == nil || e.Code != pb.Code_OK {
				t.Fatalf("fetch answer ended with %v", m.GetEnd())
			}
			break
		}
		s.Close()
	}
	elapsed := time.Since(start)
	rate := float64(bitrate) / 8
	// The burst (a second of the stream, at least FetchBurstMin), half the
	// rate since.
	bound := max(rate, live.FetchBurstMin) + rate*elapsed.Seconds()/2
	if float64(got) > bound {
		t.Fatalf("40 fetches of 32 chunks got %d bytes in %v; the bound is %.0f", got, elapsed, bound)
	}
	if got == 0 {
		t.Fatal("no chunk in any fetch answer")
	}
	if n := sst.Stats().FetchesIn; n != 40 {
		t.Fatalf("fetches answered %d, want 40", n)
	}
	t.Logf("40 fetches of 32 chunks: %d bytes in %v (stream %d bit/s, bound %.0f)", got, elapsed, bitrate, bound)
}
