package live

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// An orphan's failover asks its lost parent's parent first, though that
// peer answered lately that it was full: the slot the dead parent held
// there is free once it notices the death (childKeepalive), and the orphan
// that takes it takes the dead parent's place. While the stripe has its
// parent, the grandparent ranks as any full peer: after those with room.
func TestFailoverAsksGrandparentFirst(t *testing.T) {
	st, _ := viewerStream(t, 1)
	f := st.feeds[0]
	var id [5]peer.ID
	for i := range id {
		id[i] = loopbackHost(t, 0, 1).ID()
	}
	src, gp, dead, roomy1, roomy2 := id[0], id[1], id[2], id[3], id[4]
	now := time.Now()
	st.mu.Lock()
	st.addCandidateLocked(gp, 1, 0) // full, as it answered a moment ago
	st.addCandidateLocked(roomy1, 2, 2)
	st.addCandidateLocked(roomy2, 2, 2)
	for _, p := range []peer.ID{gp, roomy1, roomy2} {
		st.cands[p].probedAt = now
	}
	f.depth, f.ancestors, f.parent = 3, []peer.ID{src, gp}, dead
	st.mu.Unlock()

	if got := st.standbys(f, -1, false); len(got) != 3 || got[0] == gp {
		t.Fatalf("with its parent alive, standbys %v put the full grandparent %s first", got, gp)
	}
	st.mu.Lock()
	f.parent, f.lost = "", dead
	st.mu.Unlock()
	if got := st.standbys(f, -1, false); len(got) != 3 || got[0] != gp {
		t.Fatalf("orphaned, standbys %v; want the lost parent's parent %s first", got, gp)
	}
}
