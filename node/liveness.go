package node

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// A peer that vanishes without closing its connections (a killed process
// over QUIC, a pulled cable) would otherwise be noticed only after QUIC's
// 30 s idle timeout. The node pings every peer each LivenessInterval and
// closes its connections after LivenessFailures pings in a row fail. The
// pings also keep the peers' latency estimates fresh.
const (
	LivenessInterval = 3 * time.Second
	LivenessTimeout  = 3 * time.Second
	LivenessFailures = 2
)

func (n *Node) livenessLoop() {
	defer n.wg.Done()
	t := time.NewTicker(LivenessInterval)
	defer t.Stop()
	failures := map[peer.ID]int{}
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		peers := n.host.Network().Peers()
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		failed := map[peer.ID]bool{}
		for _, p := range peers {
			wg.Add(1)
			sem <- struct{}{}
			go func(p peer.ID) {
				defer wg.Done()
				defer func() { <-sem }()
				// Never dial: a peer whose connection closed since the list
				// was taken (trimmed, or closed to make room for another)
				// is not ours to reconnect. A ping that dialled would undo
				// every trim, and at a node's peer bound each redial closes
				// another peer in turn.
				ctx, cancel := context.WithTimeout(network.WithNoDial(n.ctx, "liveness ping"), LivenessTimeout)
				defer cancel()
				res, ok := <-ping.Ping(ctx, n.host, p)
				if (!ok || res.Error != nil) && n.host.Network().Connectedness(p) == network.Connected {
					mu.Lock()
					failed[p] = true
					mu.Unlock()
				}
			}(p)
		}
		wg.Wait()
		if n.ctx.Err() != nil {
			return
		}
		next := map[peer.ID]int{}
		for p := range failed {
			next[p] = failures[p] + 1
			if next[p] >= LivenessFailures {
				n.log.Info("peer stopped answering; closing its connections", "peer", p.String())
				_ = n.host.Network().ClosePeer(p)
				delete(next, p)
			}
		}
		failures = next
	}
}
