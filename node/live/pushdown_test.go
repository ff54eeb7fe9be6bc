package live

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/hivecast/hivecast/protocol/live"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// peerWithHome returns a made-up peer ID whose home stripe of k is i.
func peerWithHome(t *testing.T, i, k int) peer.ID {
	t.Helper()
	for n := 0; n < 10000; n++ {
		p := peer.ID(fmt.Sprintf("peer-%d-%d", i, n))
		if live.Home([]byte(p), k) == i {
			return p
		}
	}
	t.Fatal("no peer ID with that home stripe")
	return ""
}

// hostlessStream is a stream of k stripes on a service without a host:
// enough for the decisions that look only at the stream's own state.
func hostlessStream(k int, source bool) *Stream {
	svc := &Service{ctx: context.Background(), log: slog.New(slog.DiscardHandler),
		cfg: Config{Window: 256, Stripes: k, Now: time.Now}}
	return newStream(svc, cid.Cid{}, source)
}

// A parent's status counts the children a peer asking for its own home
// stripe could push down: those taking one stripe that is not their home.
// A viewer counts them as room only for its own home stripe.
func TestPushableRoom(t *testing.T) {
	const k = 4
	st := hostlessStream(k, false)
	defer st.cancel()

	leaf := peerWithHome(t, 1, k)     // takes stripe 2 here: pushable
	interior := peerWithHome(t, 2, k) // takes its home stripe 2: not
	whole := peerWithHome(t, 3, k)    // takes the whole stream (K = 1): not
	st.mu.Lock()
	for _, c := range []*child{
		{id: leaf, set: live.One(2, k), home: 1},
		{id: interior, set: live.One(2, k), home: 2},
		{id: whole, set: live.StripeSet(1, 0), home: 0},
	} {
		st.children[childKey{id: c.id, k: c.set.K, mask: c.set.Mask}] = c
	}
	got := st.statusLocked(live.One(0, k)).Pushable
	whole1 := st.statusLocked(live.StripeSet(1, 0)).Pushable
	st.mu.Unlock()
	if got != 1 {
		t.Errorf("status pushable = %d, want 1 (only the child off its home stripe)", got)
	}
	if whole1 != 0 {
		t.Errorf("status pushable for a whole-stream request = %d, want 0", whole1)
	}

	self := peerWithHome(t, 3, k)
	st.setOwnHome(self) // as Watch does with the host's ID
	own := live.Home([]byte(self), k)
	c := &candidate{depth: 1, spare: 0, pushable: 2}
	for i, f := range st.feeds {
		want := 0
		if i == own {
			want = 2
		}
		if r := f.roomLocked(c); r != want {
			t.Errorf("stripe %d (own home %d): room %d, want %d", i, own, r, want)
		}
	}
	if r := st.feeds[own].roomLocked(&candidate{spare: -1, pushable: 2}); r != -1 {
		t.Errorf("room of a candidate never probed = %d, want -1 (unknown)", r)
	}
}
