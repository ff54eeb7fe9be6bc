package sim

import (
	"fmt"

	"github.com/hivecast/hivecast/node/live"
	plive "github.com/hivecast/hivecast/protocol/live"
	"github.com/libp2p/go-libp2p/core/peer"
)

// viewerStats is one live viewer's stats, as the verbose log took them.
type viewerStats struct {
	id peer.ID
	x  live.Stats
}

// treeShape describes the stripe trees now: how many stripe subscriptions
// hang from a parent whose home stripe it is (or the source) and how many
// from a fallback parent, the mean depth in a stripe of the viewers whose
// home stripe it is (the trees' interior) and of the others (leaves), and
// how many slots within two levels of the source hold a leaf.
func treeShape(viewers []viewerStats, srcID peer.ID, k int) string {
	var home, fallback, fromSource, topLeaves int
	var inSum, inN, leafSum, leafN int
	for _, v := range viewers {
		x := v.x
		mine := plive.Home([]byte(v.id), k)
		for s, ps := range x.Parents {
			if ps == "" || s >= len(x.StripeDepth) {
				continue
			}
			p, err := peer.Decode(ps)
			if err != nil {
				continue
			}
			d := x.StripeDepth[s]
			switch {
			case p == srcID:
				fromSource++
			case plive.Home([]byte(p), k) == s:
				home++
			default:
				fallback++
			}
			if mine == s {
				inSum, inN = inSum+d, inN+1
			} else {
				leafSum, leafN = leafSum+d, leafN+1
				if d <= 2 {
					topLeaves++
				}
			}
		}
	}
	return fmt.Sprintf("stripe parents: %d the source, %d home, %d fallback; depth of interior %.1f, of leaves %.1f; leaves at depth <= 2: %d",
		fromSource, home, fallback, float64(inSum)/float64(max(inN, 1)), float64(leafSum)/float64(max(leafN, 1)), topLeaves)
}
