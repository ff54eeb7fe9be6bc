package vod_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node/daemon"
	"github.com/hivecast/hivecast/node/vod"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// logBuf collects a daemon's log lines so a test can look for one.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type tnode struct {
	*daemon.Daemon
	dir string
	log *logBuf
}

// opts are loopback-only options: free ports, no LAN or NAT machinery.
func opts(dir string, bootstrap ...string) daemon.Options {
	return daemon.Options{
		DataDir:      dir,
		Listen:       []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		API:          "127.0.0.1:0",
		Bootstrap:    bootstrap,
		NoMDNS:       true,
		NoNATPortMap: true,
		MaxPeers:     50,
	}
}

// startNode starts a daemon; it is closed at the end of the test (Close is
// idempotent enough for tests that close it earlier: they set closed).
func startNode(t testing.TB, o daemon.Options) *tnode {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	lb := &logBuf{}
	d, err := daemon.Start(o, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	n := &tnode{Daemon: d, dir: o.DataDir, log: lb}
	t.Cleanup(func() { n.close() })
	return n
}

var closeMu sync.Mutex
var closedNodes = map[*daemon.Daemon]bool{}

func (n *tnode) close() {
	closeMu.Lock()
	done := closedNodes[n.Daemon]
	closedNodes[n.Daemon] = true
	closeMu.Unlock()
	if !done {
		n.Daemon.Close()
	}
}

func (n *tnode) tcpAddr(t testing.TB) string {
	t.Helper()
	for _, a := range n.Node().Addrs() {
		if strings.Contains(a, "/tcp/") {
			return a
		}
	}
	t.Fatalf("no tcp address in %v", n.Node().Addrs())
	return ""
}

func (n *tnode) peerID() string { return n.Node().Host().ID().String() }

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// swarm starts n daemons, the first a bootstrap for the others, with
// per-node option tweaks, and waits until every routing table is non-empty.
func swarm(t testing.TB, n int, tweak func(i int, o *daemon.Options)) []*tnode {
	t.Helper()
	var nodes []*tnode
	for i := range n {
		var o daemon.Options
		if i == 0 {
			o = opts(t.TempDir())
		} else {
			o = opts(t.TempDir(), nodes[0].tcpAddr(t))
		}
		if tweak != nil {
			tweak(i, &o)
		}
		nodes = append(nodes, startNode(t, o))
	}
	for _, nd := range nodes {
		waitFor(t, "a non-empty routing table", 20*time.Second, func() bool {
			return nd.Node().DHT().RoutingTable().Size() > 0
		})
	}
	return nodes
}

// randomFile writes size pseudo-random bytes (deterministic in seed).
func randomFile(t testing.TB, dir string, size int, seed uint64) (string, [32]byte) {
	t.Helper()
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1})
	r.Read(b)
	p := filepath.Join(dir, fmt.Sprintf("video-%d.ts", seed))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, sha256.Sum256(b)
}

// share shares path on every node and waits until each has announced it.
func share(t testing.TB, path string, chunkSize int, nodes ...*tnode) cid.Cid {
	t.Helper()
	var id cid.Cid
	for _, n := range nodes {
		m, err := n.VOD().Share(path, "", chunkSize)
		if err != nil {
			t.Fatalf("share: %v", err)
		}
		id = m.ID()
	}
	for _, n := range nodes {
		waitFor(t, "the share announced in the DHT", 20*time.Second, func() bool { return n.VOD().Announced(id) })
	}
	return id
}

func apiURL(n *tnode, path string) string { return "http://" + n.APIAddr() + path }

// play starts a session on n through the API, as `hivecast play` does.
func play(t testing.TB, n *tnode, id cid.Cid, noStore bool, findTimeout time.Duration) (vod.PlayResponse, error) {
	t.Helper()
	body, _ := json.Marshal(vod.PlayRequest{ID: id.String(), NoStore: noStore, FindTimeoutMS: findTimeout.Milliseconds()})
	resp, err := http.Post(apiURL(n, "/v1/play"), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return vod.PlayResponse{}, fmt.Errorf("POST /v1/play: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var pr vod.PlayResponse
	if err := json.Unmarshal(b, &pr); err != nil {
		t.Fatal(err)
	}
	return pr, nil
}

// fetch GETs the stream (with an optional Range header) and returns the body.
func fetch(ctx context.Context, n *tnode, id cid.Cid, rng string, query string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL(n, "/stream/"+id.String()+query), nil)
	if err != nil {
		return nil, 0, err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

// streamAll plays id on n like `play -o` and returns the sha256 of the bytes.
func streamAll(t testing.TB, n *tnode, id cid.Cid, noStore bool, timeout time.Duration) [32]byte {
	t.Helper()
	pr, err := play(t, n, id, noStore, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	q := ""
	if noStore {
		q = "?store=0"
	}
	b, code, err := fetch(ctx, n, id, "", q)
	if err != nil || code != http.StatusOK {
		t.Fatalf("stream: status %d, %d bytes, err %v", code, len(b), err)
	}
	if int64(len(b)) != pr.Size {
		t.Fatalf("stream gave %d bytes, want %d", len(b), pr.Size)
	}
	return sha256.Sum256(b)
}

// bytesFrom maps provider peer IDs to the bytes the session got from each.
func bytesFrom(st vod.SessionStats) map[string]int64 {
	m := map[string]int64{}
	for _, p := range st.Peers {
		m[p.ID] += p.Bytes
	}
	return m
}

func peerIDOf(t testing.TB, s string) peer.ID {
	id, err := peer.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type hasher struct{ h hash.Hash }

func newHasher() *hasher            { return &hasher{sha256.New()} }
func (h *hasher) Write(p []byte)    { h.h.Write(p) }
func (h *hasher) sum() (s [32]byte) { copy(s[:], h.h.Sum(nil)); return }
