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

// Once a viewer knows the source (from a probe answer, then the verified
// stream info), it leaves it alone (no probe, no subscription, no peer
// exchange) unless the source is its parent or its parent's parent in that
// stripe, said it has room a moment ago, the stripe's tree looks rootless,
// or it knows no one else: what contacts the source is bounded by its
// children's children, not by the audience.
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

	// Unless it said it has room in a fresh probe answer (a joiner's first
	// probes went out before it knew the source): then it may be asked.
	st.mu.Lock()
	st.cands[src].probedAt = time.Now()
	st.mu.Unlock()
	if got := picks(); !slices.Contains(got, src) {
		t.Errorf("the source said it has room a moment ago, yet no stripe picked it: %v", got)
	}
	st.mu.Lock()
	st.cands[src].probedAt = time.Time{}
	st.mu.Unlock()

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

	// A stripe that has sought a parent for sourceAfter, and whose tree's
	// peers probed meanwhile are all fed through the parent it lost, may
	// ask the source: its tree lost its root. One whose tree has a live
	// peer only needs room, and does not.
	setDepths(4, 4, 4, 4)
	lost := peerWithHome(t, 2, k)
	st.mu.Lock()
	f2 := st.feeds[2]
	f2.seeking, f2.lost = time.Now().Add(-sourceAfter-time.Second), lost
	c2 := st.cands[others[2]]
	c2.probedAt, c2.path = time.Now(), []peer.ID{src, lost}
	st.mu.Unlock()
	if got := picks(); got[2] != src {
		t.Errorf("stripe 2, rootless for %v, picked %s, want the source", sourceAfter+time.Second, got[2])
	}
	st.mu.Lock()
	c2.path = []peer.ID{src, others[0]} // fed by a live branch
	st.mu.Unlock()
	if got := picks(); got[2] == src {
		t.Error("stripe 2 asked the source while a peer of its tree is fed by a live branch")
	}
	st.mu.Lock()
	c2.path = []peer.ID{src, lost}
	f2.seeking = time.Now().Add(-sourceAfter / 2)
	st.mu.Unlock()
	if got := picks(); got[2] == src {
		t.Errorf("stripe 2, without a parent for %v only, picked the source", sourceAfter/2)
	}
	st.mu.Lock()
	f2.seeking, f2.lost = time.Time{}, ""
	c2.probedAt, c2.path = time.Time{}, nil
	st.mu.Unlock()

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

// At the source, the children are the roots of the stripes' trees: the only
// child of a stripe is never pushed down, and a request for a stripe with no
// child takes the slot of a child of a stripe that has two.
func TestSourceKeepsRoots(t *testing.T) {
	const k = 4
	st := hostlessStream(k, true)
	defer st.cancel()
	add := func(p peer.ID, stripe int) childKey {
		set := live.One(stripe, k)
		key := childKey{id: p, k: set.K, mask: set.Mask}
		st.children[key] = &child{id: p, set: set, home: live.Home([]byte(p), k)}
		return key
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	// Stripe 1's only root and stripe 2's two children all take a stripe
	// that is not their home: pushable, by the viewers' rule.
	root1 := add(peerWithHome(t, 0, k), 1)
	a2 := add(peerWithHome(t, 0, k), 2)
	b2 := add(peerWithHome(t, 3, k), 2)
	home0 := peerWithHome(t, 0, k)

	// A peer asking for its home stripe 0 (which has no child either: it is
	// rootless) takes a slot of stripe 2, never stripe 1's only one.
	v := st.evictableLocked(home0, live.One(0, k))
	if v == nil || (*v != a2 && *v != b2) {
		t.Fatalf("evicted %v for a rootless stripe, want a child of stripe 2 (%v or %v)", v, a2, b2)
	}
	if got := st.pushableLocked(); got != 2 {
		t.Errorf("source status pushable = %d, want 2 (stripe 1's root does not count)", got)
	}

	// A peer of another home asking for rootless stripe 3 gets a slot too.
	if v := st.evictableLocked(peerWithHome(t, 1, k), live.One(3, k)); v == nil || *v == root1 {
		t.Errorf("a request for rootless stripe 3 evicted %v, want a child of stripe 2", v)
	}

	// Stripe 2 down to one child: nothing is evictable any more.
	delete(st.children, a2)
	if v := st.evictableLocked(home0, live.One(0, k)); v != nil {
		t.Errorf("evicted %v, the only root of its stripe", v)
	}
	// A viewer parent (not the source) pushes down as before.
	st.source = false
	if v := st.evictableLocked(home0, live.One(0, k)); v == nil {
		t.Error("a viewer parent refused to push down a child off its home stripe")
	}
}
