package live_test

import (
	"context"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node/live"
	plive "github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A subscription to one stripe from the newest start point begins with that
// start point whatever its stripe, then carries only the stripe asked for.
// A start point falls in the same stripe for seconds at a time (a GOP is cut
// into about as many chunks each time), so a joiner whose subscription for
// that stripe was refused could not start playing until it had one.
func TestStartPointAnyStripe(t *testing.T) {
	a := startDaemon(t, 8)
	src, _ := broadcast(t, a, "start")
	sst := src.Stream()
	waitFor(t, "the source to hold 20 chunks", 20*time.Second, func() bool { return sst.Stats().LatestSeq >= 20 })

	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ah := a.Node().Host()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: ah.ID(), Addrs: ah.Addrs()}); err != nil {
		t.Fatal(err)
	}

	const k = 4
	type got struct {
		seqs  []uint64
		start bool // the first chunk is a start point
		err   error
	}
	results := make(chan got, k)
	for i := range k {
		go func() {
			var g got
			defer func() { results <- g }()
			s, err := h.NewStream(ctx, ah.ID(), live.ID)
			if err != nil {
				g.err = err
				return
			}
			defer s.Reset()
			stop := context.AfterFunc(ctx, func() { s.Reset() })
			defer stop()
			req := &pb.LiveRequest{Stream: sst.ID().Bytes(), FromLatest: true, Stripes: k, StripeMask: 1 << i}
			if g.err = wire.WriteMsg(s, req); g.err != nil {
				return
			}
			// Keepalives, as the protocol asks of a child.
			kaDone := make(chan struct{})
			defer func() { <-kaDone }()
			defer s.Reset()
			go func() {
				defer close(kaDone)
				for wire.WriteMsg(s, &pb.LiveRequest{}) == nil {
					time.Sleep(100 * time.Millisecond)
				}
			}()
			r := wire.NewReader(s)
			for len(g.seqs) < 6 {
				m, err := plive.ReadMessage(r)
				if err != nil {
					g.err = err
					return
				}
				if c := m.GetChunk(); c != nil {
					if len(g.seqs) == 0 {
						g.start = c.Flags&plive.FlagStart != 0
					}
					g.seqs = append(g.seqs, c.Seq)
				}
			}
		}()
	}
	offStripe := 0
	for range k {
		g := <-results
		if g.err != nil {
			t.Fatalf("subscription: %v", g.err)
		}
		if !g.start {
			t.Errorf("first chunk %d is not a start point (chunks %v)", g.seqs[0], g.seqs)
		}
		stripe := -1
		for _, q := range g.seqs[1:] {
			if stripe < 0 {
				stripe = int(q % k)
			}
			if int(q%k) != stripe || q <= g.seqs[0] {
				t.Errorf("chunks after the start point %v: not all of one stripe, in order", g.seqs)
				break
			}
		}
		if int(g.seqs[0]%k) != stripe {
			offStripe++
		}
	}
	// Four stripes subscribed at once start at one or two start points,
	// so at least two of them begin with a chunk of another stripe.
	if offStripe < 2 {
		t.Errorf("%d subscriptions began at a start point of another stripe, want at least 2", offStripe)
	}
}
