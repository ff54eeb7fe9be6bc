package sim

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// protoBytes is a libp2p bandwidth reporter that only counts the bytes sent
// on streams per protocol. go-libp2p's own counter keeps its rates with a
// background sweeper on the wall clock, which a synctest bubble must not
// have; this one is plain counters, read by the verbose log (the source's
// upload by protocol).
type protoBytes struct {
	mu   sync.Mutex
	sent map[protocol.ID]int64
}

func newProtoBytes() *protoBytes { return &protoBytes{sent: map[protocol.ID]int64{}} }

func (b *protoBytes) LogSentMessageStream(n int64, p protocol.ID, _ peer.ID) {
	b.mu.Lock()
	b.sent[p] += n
	b.mu.Unlock()
}

// snapshot returns a copy of the counts.
func (b *protoBytes) snapshot() map[protocol.ID]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[protocol.ID]int64, len(b.sent))
	for p, n := range b.sent {
		out[p] = n
	}
	return out
}

// rates formats the bytes sent per protocol between prev and now, largest
// first, as kbit/s over d.
func rates(prev, now map[protocol.ID]int64, d time.Duration) string {
	type row struct {
		p protocol.ID
		n int64
	}
	var rows []row
	for p, n := range now {
		if n -= prev[p]; n > 0 {
			rows = append(rows, row{p, n})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].n > rows[j].n })
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s %.0f", r.p, float64(r.n)*8/1e3/d.Seconds()))
	}
	return strings.Join(parts, ", ")
}

// The rest of metrics.Reporter: not needed.
func (b *protoBytes) LogSentMessage(int64)                                  {}
func (b *protoBytes) LogRecvMessage(int64)                                  {}
func (b *protoBytes) LogRecvMessageStream(int64, protocol.ID, peer.ID)      {}
func (b *protoBytes) GetBandwidthForPeer(peer.ID) metrics.Stats             { return metrics.Stats{} }
func (b *protoBytes) GetBandwidthForProtocol(protocol.ID) metrics.Stats     { return metrics.Stats{} }
func (b *protoBytes) GetBandwidthTotals() metrics.Stats                     { return metrics.Stats{} }
func (b *protoBytes) GetBandwidthByPeer() map[peer.ID]metrics.Stats         { return nil }
func (b *protoBytes) GetBandwidthByProtocol() map[protocol.ID]metrics.Stats { return nil }
func (b *protoBytes) Reset()                                                {}
func (b *protoBytes) TrimIdle(time.Time)                                    {}
