package sim

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// dialCounts counts, per virtual second and per caller, the dials the nodes
// start to peers they hold no connection to (Config.CountDials): which part
// of a node (the DHT's queries, the live probes, ...) opens connections.
type dialCounts struct {
	mu sync.Mutex
	t0 time.Time
	n  map[dialKey]int
}

type dialKey struct {
	second int
	caller string
}

// note records one dial from the calling goroutine's stack: the first
// function outside libp2p's swarm and host, this file and the runtime; then,
// after "<-", whose work it is (the first hivecast function above it, else
// the goroutine's root: the DHT's query workers); and whether the dialler's
// own peer bound refused it.
func (d *dialCounts) note(allowed bool) {
	pc := make([]uintptr, 64)
	frames := runtime.CallersFrames(pc[:runtime.Callers(2, pc)])
	caller, origin, root := "?", "", ""
	for {
		f, more := frames.Next()
		fn := f.Function
		if caller == "?" && !strings.Contains(fn, "go-libp2p/p2p/net/swarm") &&
			!strings.Contains(fn, "go-libp2p/p2p/host/basic") &&
			!strings.Contains(fn, "hivecast/node/sim.") &&
			!strings.Contains(fn, "hivecast/node.(*PeerCap)") &&
			!strings.HasPrefix(fn, "runtime.") {
			caller = fn
		} else if caller != "?" && origin == "" && (strings.Contains(fn, "hivecast/hivecast/node") || strings.Contains(fn, "rtrefresh")) && !strings.Contains(fn, "hivecast/node/sim.") {
			// Whose query it is, when the dial is a library's (the DHT's).
			origin = fn
		}
		if !strings.HasPrefix(fn, "runtime.") {
			root = fn
		}
		if !more {
			break
		}
	}
	if origin == "" && caller != root {
		origin = root
	}
	if origin != "" && origin != caller {
		caller += " <- " + origin
	}
	if !allowed {
		caller += " (refused by its own peer bound)"
	}
	d.mu.Lock()
	d.n[dialKey{int(time.Since(d.t0) / time.Second), caller}]++
	d.mu.Unlock()
}

// setStart makes later dials count from t0 (earlier ones stay at second 0).
func (d *dialCounts) setStart(t0 time.Time) {
	d.mu.Lock()
	d.t0 = t0
	d.mu.Unlock()
}

// String lists the counts, a line per second and caller.
func (d *dialCounts) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	keys := make([]dialKey, 0, len(d.n))
	for k := range d.n {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b dialKey) int {
		if a.second != b.second {
			return a.second - b.second
		}
		return strings.Compare(a.caller, b.caller)
	})
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "t=%ds %6d %s\n", k.second, d.n[k], k.caller)
	}
	return b.String()
}

// countingGater counts every outbound dial in dialCounts, then asks the
// node's own gater (the daemon's peer bound), if any.
type countingGater struct {
	d     *dialCounts
	inner connmgr.ConnectionGater // nil: allow all
}

func (g countingGater) InterceptPeerDial(p peer.ID) bool {
	ok := g.inner == nil || g.inner.InterceptPeerDial(p)
	g.d.note(ok)
	return ok
}

func (g countingGater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return g.inner == nil || g.inner.InterceptAddrDial(p, a)
}

func (g countingGater) InterceptAccept(a network.ConnMultiaddrs) bool {
	return g.inner == nil || g.inner.InterceptAccept(a)
}

func (g countingGater) InterceptSecured(d network.Direction, p peer.ID, a network.ConnMultiaddrs) bool {
	return g.inner == nil || g.inner.InterceptSecured(d, p, a)
}

func (g countingGater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	if g.inner == nil {
		return true, 0
	}
	return g.inner.InterceptUpgraded(c)
}

// lateCount counts the inbound connections its gater refuses after their
// handshake.
type lateCount struct {
	connmgr.ConnectionGater
	n *atomic.Int64
}

func (g lateCount) InterceptSecured(d network.Direction, p peer.ID, a network.ConnMultiaddrs) bool {
	ok := g.ConnectionGater.InterceptSecured(d, p, a)
	if !ok && d == network.DirInbound {
		g.n.Add(1)
	}
	return ok
}
