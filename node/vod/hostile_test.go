package vod_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node"
	"github.com/hivecast/hivecast/node/daemon"
	"github.com/hivecast/hivecast/protocol/chunk"
	"github.com/hivecast/hivecast/protocol/manifest"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
)

// corruptSource serves a true manifest but flips a byte in every chunk.
type corruptSource struct {
	m      *manifest.Manifest
	data   []byte
	served atomic.Int64
}

func (c *corruptSource) Manifest(id cid.Cid) ([]byte, error) {
	if id != c.m.ID() {
		return nil, chunk.ErrNotFound
	}
	return c.m.Bytes(), nil
}

func (c *corruptSource) Chunk(id cid.Cid, index uint64, buf []byte) ([]byte, error) {
	if id != c.m.ID() || index >= uint64(c.m.NumChunks()) {
		return nil, chunk.ErrNotFound
	}
	off := c.m.ChunkOffset(int(index))
	b := append(buf[:0], c.data[off:off+int64(c.m.ChunkLen(int(index)))]...)
	b[len(b)/2] ^= 0x5a
	c.served.Add(1)
	return b, nil
}

// startHostile runs a real libp2p host with the hivecast node core (DHT) on
// loopback, answering the chunk protocol with corrupted chunks, and
// announces id in the DHT.
func startHostile(t *testing.T, bootstrap string, src *corruptSource) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	ai, err := node.ParseAddr(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(h, node.Config{Bootstrap: nil, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(); h.Close() })
	h.SetStreamHandler(chunk.ID, func(st network.Stream) {
		defer st.Close()
		_ = st.SetDeadline(time.Now().Add(30 * time.Second))
		if err := chunk.Serve(st, src); err != nil {
			st.Reset()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Connect(ctx, ai); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the hostile peer's routing table", 20*time.Second, func() bool { return n.DHT().RoutingTable().Size() > 0 })
	if err := n.DHT().Provide(ctx, src.m.ID(), true); err != nil {
		t.Fatalf("hostile provide: %v", err)
	}
}

// One provider serves corrupted chunks: the output is still byte-identical,
// that provider ends up banned (and logged), and the daemon keeps serving.
func TestHostileProviderBanned(t *testing.T) {
	nodes := swarm(t, 2, func(i int, o *daemon.Options) {
		if i == 0 {
			o.MaxUpload = "24Mbit" // the honest provider is slower than the hostile one
		}
	})
	honest, viewer := nodes[0], nodes[1]
	path, sum := randomFile(t, t.TempDir(), 12*mib, 4)
	data := mustRead(t, path)
	id := share(t, path, 0, honest)
	m, ok := honest.VOD().Store().Lookup(id)
	if !ok {
		t.Fatal("share not in the store")
	}
	src := &corruptSource{m: m, data: data}
	startHostile(t, honest.tcpAddr(t), src)

	if got := streamAll(t, viewer, id, false, 60*time.Second); got != sum {
		t.Fatal("downloaded bytes differ from the shared file")
	}
	if src.served.Load() == 0 {
		t.Fatal("the hostile provider was never asked for a chunk; the test proves nothing")
	}
	ss := viewer.VOD().Session(id)
	waitFor(t, "the hostile provider banned", 10*time.Second, func() bool { return ss.Stats().Banned >= 1 })
	if !strings.Contains(viewer.log.String(), "does not verify") {
		t.Fatal("the ban was not logged")
	}
	// The daemon is unharmed: its API answers and it serves the file on.
	resp, err := http.Get(apiURL(viewer, "/v1/id"))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("viewer API after the attack: %v %v", resp, err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, code, err := fetch(ctx, viewer, id, "bytes=0-99", "")
	if err != nil || code != http.StatusPartialContent || string(b) != string(data[:100]) {
		t.Fatalf("range after the attack: %d %v", code, err)
	}
}
