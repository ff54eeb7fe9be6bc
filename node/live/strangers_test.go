package live

import (
	"context"
	"crypto/rand"
	"log/slog"
	"testing"
	"time"

	"github.com/hivecast/hivecast/protocol/live"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// loopbackHost starts a libp2p host on loopback whose home stripe of k is
// home.
func loopbackHost(t *testing.T, home, k int) host.Host {
	t.Helper()
	for {
		priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		if live.Home([]byte(id), k) != home {
			continue
		}
		h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
}

// viewerStream is a viewer's stream of k stripes on a real loopback host,
// with no DHT and no parents: what its probe and ranking logic sees.
func viewerStream(t *testing.T, k int) (*Stream, host.Host) {
	t.Helper()
	h := loopbackHost(t, 0, 1)
	svc := &Service{ctx: context.Background(), h: h, log: slog.New(slog.DiscardHandler),
		cfg: Config{Window: 256, Stripes: k, Now: time.Now}}
	st := newStream(svc, cid.Cid{}, false)
	t.Cleanup(st.cancel)
	return st, h
}

// A viewer's background probes (standbys each second, exploration every
// third) reach any number of peers it is connected to, but at most
// strangersPerTick peers it holds no connection to, the stripes taking
// turns: at a peer bound each stranger costs a handshake and an evicted
// connection at both ends. Among standbys of equal rank a connected peer
// comes first. A failover probes its connected standbys and few strangers.
func TestBackgroundProbesSpareStrangers(t *testing.T) {
	const k = 4
	st, h := viewerStream(t, k)

	// Per stripe three candidates of that home stripe, all real hosts on
	// loopback with room at the same depth, none connected yet.
	var peers [k][]host.Host
	for i := 0; i < k; i++ {
		for j := 0; j < 3; j++ {
			p := loopbackHost(t, i, k)
			peers[i] = append(peers[i], p)
			st.addCandidate(p.ID(), 2, 2)
		}
	}

	// Strangers only: one standby a tick, each stripe in turn.
	turns := map[int]bool{}
	for tick := 0; tick < k; tick++ {
		ids, left := st.standbyProbes(tick)
		if len(ids) != strangersPerTick || left != 0 {
			t.Fatalf("tick %d: standbys probed %v, %d strangers left; want %d stranger", tick, ids, left, strangersPerTick)
		}
		turns[live.Home([]byte(ids[0]), k)] = true
		if got := st.unknownWithin(4, left); len(got) != 0 {
			t.Fatalf("tick %d: exploration probes strangers %v beyond the budget", tick, got)
		}
	}
	if len(turns) != k {
		t.Fatalf("over %d ticks the stripes %v got a standby probe; want all %d", k, turns, k)
	}

	// Connect to one candidate per stripe: it becomes that stripe's
	// standby, probed every tick, and the budget goes to exploration.
	connected := map[peer.ID]bool{}
	for i := 0; i < k; i++ {
		p := peers[i][2]
		if err := h.Connect(context.Background(), peer.AddrInfo{ID: p.ID(), Addrs: p.Addrs()}); err != nil {
			t.Fatal(err)
		}
		connected[p.ID()] = true
	}
	for tick := 0; tick < k; tick++ {
		ids, left := st.standbyProbes(tick)
		if len(ids) != k || left != strangersPerTick {
			t.Fatalf("tick %d: standbys probed %v, %d strangers left; want the %d connected ones and %d left", tick, ids, left, k, strangersPerTick)
		}
		for _, id := range ids {
			if !connected[id] {
				t.Fatalf("tick %d: stranger %s probed as a standby while a connected peer of its stripe ranks as well", tick, id)
			}
		}
		strangers := 0
		got := st.unknownWithin(4, left)
		for _, id := range got {
			if !connected[id] {
				strangers++
			}
		}
		if len(got) != 4 || strangers > strangersPerTick {
			t.Fatalf("tick %d: exploration probes %v (%d strangers); want 4 with at most %d strangers", tick, got, strangers, strangersPerTick)
		}
	}

	// A failover checks its standbys at once: every connected one of the
	// best n, but no more than the strangers allowed. (These hosts do not
	// speak the live protocol: each probe fails, and is counted.)
	if id := st.checkStandbys(st.feeds[0], 8, 2); id != "" {
		t.Fatalf("failover found %s among hosts that do not speak the live protocol", id)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	probed, strangers := 0, 0
	for id, c := range st.cands {
		if c.probedAt.IsZero() {
			continue
		}
		probed++
		if !connected[id] {
			strangers++
		}
	}
	if strangers != 2 || probed != k+2 {
		t.Fatalf("failover probed %d standbys, %d of them strangers; want the %d connected and 2 strangers", probed, strangers, k)
	}
	if n := st.probesOut[probeFailover]; n != uint64(probed) {
		t.Fatalf("%d failover probes counted, %d sent", n, probed)
	}
	if n := st.probeDials[probeFailover]; n != 2 {
		t.Fatalf("%d failover probe dials counted, want 2", n)
	}
}
