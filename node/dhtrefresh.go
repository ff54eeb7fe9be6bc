package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// The routing table's upkeep is the node's, not kad-dht's: kad-dht's
// auto-refresh runs a lookup per bucket the moment a node meets its first
// peer, and again whenever its table holds ten peers or fewer. In a flash
// crowd every joining node does so at once. At 100 viewers bound to 32 peers
// the crowd's DHT dials then went on until 9 s after the first join, up to
// 9,000 a second (most refused by the dialler's own bound, the rest
// handshakes on links the stream needed); without the join-time refresh (and
// with the viewers' faster re-lookup) they ended at 4-5 s (docs/benchmarks.md). A node joins with one lookup of its own
// ID (refresh), which is Kademlia's join; the full refresh comes later,
// spread over the crowd, and then periodically, as kad-dht's would.
const (
	// refreshFirst is when the first full refresh runs after the node
	// starts (Config.RefreshAfter), plus up to refreshJitter.
	refreshFirst  = time.Minute
	refreshJitter = 30 * time.Second
	// refreshEvery is the period of later refreshes (kad-dht's default).
	refreshEvery = 10 * time.Minute
	// refreshLow: a table that has shrunk to this size or less is
	// refreshed at the next check rather than at its period (kad-dht's own
	// threshold).
	refreshLow   = 10
	refreshCheck = time.Minute
)

// refreshLoop refreshes the DHT routing table (kad-dht's refresh: a lookup
// of the node's own ID and one per bucket due) first after start, then
// every refreshEvery, and at the next check when the table has lost peers
// since the last refresh and holds refreshLow or fewer (a small network,
// whose table holds everyone, is not refreshed every check).
func (n *Node) refreshLoop(first time.Duration) {
	defer n.wg.Done()
	if first <= 0 {
		first = refreshFirst + rand.N(refreshJitter)
	}
	t := time.NewTimer(first)
	defer t.Stop()
	var last time.Time
	lastSize := 0
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		size := n.dht.RoutingTable().Size()
		if size == 0 {
			// Nobody to ask yet (bootstrapLoop dials): look again soon,
			// so that a refresh due now runs once the table has a peer.
			t.Reset(time.Second)
			continue
		}
		t.Reset(refreshCheck)
		due := last.IsZero() || time.Since(last) >= refreshEvery || (size <= refreshLow && size < lastSize)
		if !due {
			continue
		}
		last = time.Now()
		select {
		case err := <-n.dht.RefreshRoutingTable():
			if err != nil && !errors.Is(err, context.Canceled) {
				n.log.Debug("dht refresh", "err", err.Error())
			}
		case <-n.ctx.Done():
			return
		}
		lastSize = n.dht.RoutingTable().Size()
		n.log.Debug("dht routing table refreshed", "size", lastSize)
	}
}
