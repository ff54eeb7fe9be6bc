package live

import (
	"context"
	"crypto/rand"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Once a viewer knows the source from the verified stream info, it leaves
// it alone (no probe, no subscription, no peer exchange) unless the source
// is its parent or its parent's parent in that stripe, or it knows no one
// else: what contacts the source is bounded by its children's children,
// not by the audience.
func TestSourceLeftAlone(t *testing.T) {
	const k = 4
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	svc := &Service{h: h, ctx: context.Background(), log: slog.New(slog.DiscardHandler),
		cfg: Config{Window: 256, Stripes: k, Now: time.Now}, streams: map[cid.Cid]*Stream{}}
	priv, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	src, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := live.NewSigner(priv, "left alone")
	if err != nil {
		t.Fatal(err)
	}
	st := newStream(svc, signer.ID(), false)
	defer st.cancel()
	if _, err := svc.add(st); err != nil {
		t.Fatal(err)
	}
	st.setOwnHome(h.ID())

	// The source has room and tops every tree: the best candidate by
	// every other rule. Another viewer of each home stripe, deeper, has
	// room too.
	st.addCandidate(src, 0, 2)
	var others []peer.ID
	for i := range k {
		p := peerWithHome(t, i, k)
		others = append(others, p)
		st.addCandidate(p, 2, 1)
	}
	setDepths := func(d ...int) {
		st.mu.Lock()
		for i, f := range st.feeds {
			f.depth = d[i]
		}
		st.mu.Unlock()
	}
	picks := func() []peer.ID {
		var out []peer.ID
		for _, f := range st.feeds {
			p, _ := f.pick(time.Now())
			out = append(out, p)
		}
		return out
	}
	pexHas := func() bool {
		for _, r := range svc.PexPeers(st.id, 32) {
			if peer.ID(r.Id) == src {
				return true
			}
		}
		return false
	}

	// Before the info and any probe answer, the source is a peer like any
	// other: the best.
	setDepths(4, 4, 4, 4)
	if got := picks(); slices.Index(got, src) < 0 {
		t.Fatalf("before the stream info, no stripe picked the source with room: %v", got)
	}
	if !slices.Contains(st.unknown(8), src) {
		t.Fatal("before the stream info, the source is not probed")
	}

	// A probe answer names the source (the head of a whole path, or the
	// answerer at depth 0): left alone from then on.
	path := &pb.LiveStatus{Depth: 2, Ancestors: [][]byte{[]byte(src), []byte(others[0])}}
	if got := sourceOf(others[1], path); got != src {
		t.Errorf("source named by a whole path = %q, want %s", got, src)
	}
	if got := sourceOf(src, &pb.LiveStatus{Depth: 0}); got != src {
		t.Errorf("source named by a depth 0 answer = %q, want %s", got, src)
	}
	if got := sourceOf(others[1], &pb.LiveStatus{Depth: 70, Ancestors: path.Ancestors}); got != "" {
		t.Errorf("a cut path named %q as the source, want none", got)
	}
	st.mu.Lock()
	st.srcHint = sourceOf(others[1], path)
	st.mu.Unlock()
	if got := picks(); slices.Contains(got, src) {
		t.Errorf("a viewer at depth 4 that was told who the source is picked it: %v", got)
	}
	if slices.Contains(st.unknown(8), src) {
		t.Error("a viewer at depth 4 that was told who the source is probes it")
	}
	st.mu.Lock()
	st.srcHint = ""
	st.mu.Unlock()

	v, err := live.NewVerifier(st.id, signer.Info(0, 50))
	if err != nil {
		t.Fatal(err)
	}
	st.setInfo(signer.Info(0, 50), v)
	st.mu.Lock()
	known := st.srcID
	st.mu.Unlock()
	if known != src {
		t.Fatalf("source from the info = %s, want %s", known, src)
	}

	// Deep in every stripe: never the source.
	if got := picks(); slices.Contains(got, src) {
		t.Errorf("a viewer at depth 4 picked the source: %v", got)
	}
	if slices.Contains(st.unknown(8), src) {
		t.Error("a viewer at depth 4 probes the source")
	}
	for _, f := range st.feeds {
		if slices.Contains(st.standbys(f, 8, false), src) {
			t.Errorf("stripe %d at depth 4 keeps the source as a standby", f.idx)
		}
	}
	if pexHas() {
		t.Error("peer exchange hands out the source")
	}

	// A grandchild of the source in stripe 1: the source is its standby
	// and parent to move up to there, and only there.
	setDepths(4, 2, 4, 4)
	got := picks()
	if got[1] != src {
		t.Errorf("stripe 1 at depth 2 picked %s, want the source", got[1])
	}
	for i, p := range got {
		if i != 1 && p == src {
			t.Errorf("stripe %d at depth 4 picked the source", i)
		}
	}
	if !slices.Contains(st.unknown(8), src) {
		t.Error("a grandchild of the source does not probe it")
	}
	if pexHas() {
		t.Error("peer exchange hands out the source")
	}

	// Nobody else known: the source it is.
	st.mu.Lock()
	for _, p := range others {
		delete(st.cands, p)
	}
	st.mu.Unlock()
	setDepths(4, 4, 4, 4)
	if got := picks(); got[0] != src {
		t.Errorf("with no other candidate, stripe 0 picked %q, want the source", got[0])
	}
}
