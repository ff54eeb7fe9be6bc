package live_test

import (
	"context"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node"
	"github.com/hivecast/hivecast/node/live"
	plive "github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// forger is a hostile relay: it subscribes to the real source like any
// viewer, claims to sit right at the source with plenty of room, and passes
// every chunk on to its own children with one byte of video changed (the
// signature left as it was).
type forger struct {
	node   *node.Node
	forged atomic.Int64

	mu   sync.Mutex
	info *pb.LiveMessage
	subs []chan *pb.LiveMessage
}

func startForger(t *testing.T, source peer.AddrInfo, stream []byte) *forger {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(h, node.Config{Bootstrap: []peer.AddrInfo{source}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	f := &forger{node: n}
	h.SetStreamHandler(live.ID, f.serve)
	ctx, cancel := context.WithCancel(context.Background())
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		f.upstream(ctx, source, stream)
	}()
	t.Cleanup(func() { cancel(); n.Close(); h.Close(); <-upDone })
	return f
}

// upstream subscribes to the source and tampers with what it gets.
func (f *forger) upstream(ctx context.Context, source peer.AddrInfo, stream []byte) {
	if err := f.node.Host().Connect(ctx, source); err != nil {
		return
	}
	up, err := f.node.Host().NewStream(ctx, source.ID, live.ID)
	if err != nil {
		return
	}
	stop := context.AfterFunc(ctx, func() { up.Reset() })
	defer stop()
	defer up.Reset()
	if err := wire.WriteMsg(up, &pb.LiveRequest{Stream: stream, FromLatest: true}); err != nil {
		return
	}
	// Keepalives, as the protocol asks of a child.
	kaDone := make(chan struct{})
	defer func() { <-kaDone }()
	go func() {
		defer close(kaDone)
		for ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			if wire.WriteMsg(up, &pb.LiveRequest{}) != nil {
				return
			}
		}
	}()
	r := wire.NewReader(up)
	for {
		m, err := plive.ReadMessage(r)
		if err != nil {
			return
		}
		switch x := m.Msg.(type) {
		case *pb.LiveMessage_Info:
			f.mu.Lock()
			f.info = m
			f.mu.Unlock()
			continue
		case *pb.LiveMessage_Status:
			m = &pb.LiveMessage{Msg: &pb.LiveMessage_Status{Status: &pb.LiveStatus{LatestSeq: x.Status.LatestSeq, Depth: 0, MaxChildren: 8}}}
		case *pb.LiveMessage_Chunk:
			if len(x.Chunk.Data) > 200 {
				x.Chunk.Data[200] ^= 0xff // tampered video, signature left as is
			}
		}
		f.mu.Lock()
		for _, c := range f.subs {
			select {
			case c <- m:
			default:
			}
		}
		f.mu.Unlock()
	}
}

func (f *forger) addrInfo() peer.AddrInfo {
	h := f.node.Host()
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}

func (f *forger) serve(s network.Stream) {
	defer s.Reset()
	req, _, err := plive.ReadRequest(wire.NewReader(s))
	if err != nil {
		return
	}
	if req.Probe {
		_ = wire.WriteMsg(s, &pb.LiveMessage{Msg: &pb.LiveMessage_Status{Status: &pb.LiveStatus{Depth: 0, MaxChildren: 8}}})
		_ = wire.WriteMsg(s, &pb.LiveMessage{Msg: &pb.LiveMessage_Redirect{Redirect: &pb.Redirect{}}})
		_ = wire.WriteMsg(s, &pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{}}})
		_ = s.CloseWrite()
		_, _ = io.Copy(io.Discard, s) // until the prober has read it all
		return
	}
	c := make(chan *pb.LiveMessage, 256)
	f.mu.Lock()
	info := f.info
	f.subs = append(f.subs, c)
	f.mu.Unlock()
	if info == nil || wire.WriteMsg(s, info) != nil {
		return
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-c:
			if err := wire.WriteMsg(s, m); err != nil {
				return
			}
			if m.GetChunk() != nil {
				f.forged.Add(1)
			}
		case <-timeout:
			return
		}
	}
}

// A hostile relay that tampers with chunks is never played or forwarded
// through: the viewer drops it at its first chunk and gets the stream
// elsewhere; the viewer's own child never sees a forged byte.
func TestLiveTamperingRelayDropped(t *testing.T) {
	sw := newSwarm(t, 2, []int{2, 2, 2})
	src, done := broadcast(t, sw.src, "hostile")
	dir := t.TempDir()
	honest := watch(t, sw.viewers[0], src, filepath.Join(dir, "honest.ts"))
	waitFor(t, "honest viewer attached to the source", 10*time.Second, func() bool { return honest.Stats().Depth == 1 })

	srcHost := sw.src.Node().Host()
	f := startForger(t, peer.AddrInfo{ID: srcHost.ID(), Addrs: srcHost.Addrs()}, src.Stream().ID().Bytes())
	waitFor(t, "the source full (honest viewer and forger)", 10*time.Second, func() bool { return src.Stream().Stats().Children == 2 })
	waitFor(t, "the forger receiving the stream", 10*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.info != nil
	})
	victimNode := sw.viewers[1]
	fi := f.addrInfo()
	victimNode.Node().Host().Peerstore().AddAddrs(fi.ID, fi.Addrs, time.Hour)
	// The forger is the first and most attractive candidate the victim knows.
	out := filepath.Join(dir, "victim.ts")
	sink := mustFileSink(t, out)
	victim, err := victimNode.Live().Watch(context.Background(), src.Stream().ID(), live.WatchOptions{Peers: []peer.ID{fi.ID}, Sinks: sink, FindTimeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "victim playing", 15*time.Second, func() bool { return victim.Stats().Delivered > 10 })
	// A third viewer joins under the victim if it can: what it gets must be clean too.
	child := watch(t, sw.viewers[2], src, filepath.Join(dir, "child.ts"))

	if err := <-done; err != nil {
		t.Fatalf("ingest: %v", err)
	}
	for _, st := range []*live.Stream{honest, victim, child} {
		select {
		case <-st.Done():
		case <-time.After(20 * time.Second):
			t.Fatal("a viewer never saw the end of the stream")
		}
	}
	vs := victim.Stats()
	t.Logf("forged chunks sent: %d; victim: banned %d, parent %s, continuity %.4f, delivered %d", f.forged.Load(), vs.Banned, vs.Parent, vs.Continuity, vs.Delivered)
	if f.forged.Load() == 0 {
		t.Fatal("the forger was never asked for the stream: the test did not exercise it")
	}
	if vs.Banned < 1 {
		t.Errorf("victim did not drop the tampering relay")
	}
	if vs.Continuity < 0.99 {
		t.Errorf("victim continuity %.4f < 0.99", vs.Continuity)
	}
	for _, name := range []string{"victim.ts", "child.ts"} {
		if e := decodeErrors(t, filepath.Join(dir, name)); e != "" {
			t.Errorf("%s does not decode cleanly (forged data played?): %s", name, e)
		}
	}
}
