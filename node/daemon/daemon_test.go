package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func zero() *int { z := 0; return &z }

// loopbackOpts are options for a test daemon: loopback only, free ports, no
// LAN or NAT machinery.
func loopbackOpts(t *testing.T, dir string, bootstrap ...string) Options {
	t.Helper()
	return Options{
		DataDir:      dir,
		Listen:       []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		API:          "127.0.0.1:0",
		Bootstrap:    bootstrap,
		NoMDNS:       true,
		NoNATPortMap: true,
		MaxPeers:     50,
	}
}

func start(t *testing.T, o Options) *Daemon {
	t.Helper()
	d, err := Start(o, quietLog())
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	return d
}

// addr returns the daemon's loopback address of the given transport.
func addr(t *testing.T, d *Daemon, transport string) string {
	t.Helper()
	for _, a := range d.Node().Addrs() {
		if (transport == "quic" && contains(a, "/quic-v1/")) || (transport == "tcp" && contains(a, "/tcp/")) {
			return a
		}
	}
	t.Fatalf("no %s address in %v", transport, d.Node().Addrs())
	return ""
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func connected(a, b *Daemon) bool {
	return a.Node().Host().Network().Connectedness(b.Node().Host().ID()) == network.Connected
}

func leakOpts() []goleak.Option {
	return []goleak.Option{
		// Process-wide singletons started by libraries on first use, not per node.
		goleak.IgnoreTopFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-flow-metrics.(*sweeper).runActive"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	}
}

// B and C bootstrap from A (B over TCP, C over QUIC) and meet each other
// through the DHT, without ever being told about each other.
func TestBootstrapThroughDHT(t *testing.T) {
	a := start(t, loopbackOpts(t, t.TempDir()))
	defer a.Close()
	b := start(t, loopbackOpts(t, t.TempDir(), addr(t, a, "tcp")))
	defer b.Close()
	waitFor(t, "B connected to A", 10*time.Second, func() bool { return connected(b, a) })
	waitFor(t, "A's routing table holds B", 10*time.Second, func() bool { return a.Node().DHT().RoutingTable().Size() >= 1 })
	c := start(t, loopbackOpts(t, t.TempDir(), addr(t, a, "quic")))
	defer c.Close()
	waitFor(t, "B and C connected through the DHT", 20*time.Second, func() bool { return connected(b, c) })
	// The routing table takes a peer once identify has shown it speaks the DHT.
	waitFor(t, "C's routing table holding A and B", 10*time.Second, func() bool { return c.Node().Status().RoutingTable >= 2 })
}

func TestRestartKeepsPeerID(t *testing.T) {
	dir := t.TempDir()
	d := start(t, loopbackOpts(t, dir))
	id := d.Node().Host().ID()
	apiAddr := d.APIAddr()
	got, err := ReadAPIFile(dir)
	if err != nil || got != apiAddr {
		t.Fatalf("api file = %q, %v; want %q", got, err, apiAddr)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity key: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, APIFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("api file still there after close: %v", err)
	}
	d2 := start(t, loopbackOpts(t, dir))
	defer d2.Close()
	if d2.Node().Host().ID() != id {
		t.Fatalf("peer ID changed across restart: %s then %s", id, d2.Node().Host().ID())
	}
}

func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	d := start(t, loopbackOpts(t, dir))
	defer d.Close()
	_, err := Start(loopbackOpts(t, dir), quietLog())
	if !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second daemon on one data dir: err = %v, want ErrDataDirInUse", err)
	}
	// The first one is unharmed.
	if _, err := ReadAPIFile(dir); err != nil {
		t.Fatalf("api file of the running daemon gone: %v", err)
	}
}

func TestMaxPeersHonoured(t *testing.T) {
	o := loopbackOpts(t, t.TempDir())
	o.MaxPeers = 2
	hub := start(t, o)
	defer hub.Close()
	hubAddr := addr(t, hub, "tcp")
	var others []*Daemon
	for i := 0; i < 4; i++ {
		d := start(t, loopbackOpts(t, t.TempDir()))
		defer d.Close()
		others = append(others, d)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = d.Node().Connect(ctx, hubAddr) // the 3rd and 4th are refused
		cancel()
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(hub.Node().Host().Network().Peers()); n > 2 {
		t.Fatalf("hub with --max-peers 2 has %d peers", n)
	}
	if n := len(hub.Node().Host().Network().Peers()); n != 2 {
		t.Fatalf("hub has %d peers, want exactly 2 (the first two to dial)", n)
	}
	// And it refuses to dial out beyond the cap too.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := hub.Node().Connect(ctx, addr(t, others[3], "tcp")); err == nil {
		t.Fatal("hub dialled a fifth peer beyond --max-peers 2")
	}
}

// A daemon whose bootstrap peer is down keeps running, and joins once the
// peer comes up.
func TestBootstrapPeerComesBack(t *testing.T) {
	aDir := t.TempDir()
	key, err := loadOrCreateKey(aDir)
	if err != nil {
		t.Fatal(err)
	}
	aID, _ := peer.IDFromPrivateKey(key)
	port := freePort(t)
	aAddr := "/ip4/127.0.0.1/tcp/" + strconv.Itoa(port) + "/p2p/" + aID.String()

	bo := loopbackOpts(t, t.TempDir(), aAddr)
	b := start(t, bo)
	defer b.Close()
	time.Sleep(1500 * time.Millisecond) // a few failed dials
	if len(b.Node().Host().Network().Peers()) != 0 {
		t.Fatal("B has peers although A is down")
	}
	ao := loopbackOpts(t, aDir)
	ao.Listen = []string{"/ip4/127.0.0.1/tcp/" + strconv.Itoa(port)}
	a := start(t, ao)
	defer a.Close()
	waitFor(t, "B joins A after A comes up", 20*time.Second, func() bool { return connected(b, a) })
}

func TestAPIRefusesForeignHost(t *testing.T) {
	d := start(t, loopbackOpts(t, t.TempDir()))
	defer d.Close()
	for host, want := range map[string]int{
		"evil.example:5080":   http.StatusForbidden,
		"192.168.1.10":        http.StatusForbidden,
		"localhost:5080":      http.StatusOK,
		"127.0.0.1":           http.StatusOK,
		"[::1]:5080":          http.StatusOK,
		"localhost.evil.com":  http.StatusForbidden,
		"127.0.0.1.nip.io:80": http.StatusForbidden,
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+d.APIAddr()+"/v1/id", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: status %d, want %d", host, resp.StatusCode, want)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestMetricsServed(t *testing.T) {
	d := start(t, loopbackOpts(t, t.TempDir()))
	defer d.Close()
	resp, err := http.Get("http://" + d.APIAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if resp.StatusCode != 200 || !contains(string(b), "libp2p_") || !contains(string(b), "hivecast_peers ") {
		t.Fatalf("metrics: status %d, libp2p metrics present: %v, hivecast metrics present: %v", resp.StatusCode,
			contains(string(b), "libp2p_"), contains(string(b), "hivecast_peers "))
	}
}

func TestNoGoroutineLeft(t *testing.T) {
	// Warm up process-wide singletons, then check that a node leaves nothing behind.
	w := start(t, loopbackOpts(t, t.TempDir()))
	w.Close()
	ignore := goleak.IgnoreCurrent()
	a := start(t, loopbackOpts(t, t.TempDir()))
	b := start(t, loopbackOpts(t, t.TempDir(), addr(t, a, "tcp")))
	waitFor(t, "B connected to A", 10*time.Second, func() bool { return connected(b, a) })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, append(leakOpts(), ignore)...)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// --dht-client: the daemon looks up and announces in the DHT but is in no
// one's routing table, so it answers no one's queries.
func TestDHTClient(t *testing.T) {
	server := start(t, loopbackOpts(t, t.TempDir()))
	defer server.Close()
	o := loopbackOpts(t, t.TempDir(), addr(t, server, "tcp"))
	o.DHTClient = true
	client := start(t, o)
	defer client.Close()
	other := start(t, loopbackOpts(t, t.TempDir(), addr(t, server, "tcp")))
	defer other.Close()
	deadline := time.Now().Add(10 * time.Second)
	for client.Node().DHT().RoutingTable().Size() == 0 || other.Node().DHT().RoutingTable().Size() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("DHT routing tables still empty after 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := client.Node().DHT().Mode(); got != dht.ModeClient {
		t.Fatalf("DHT mode with DHTClient = %v, want client", got)
	}
	if got := server.Node().DHT().Mode(); got != dht.ModeServer {
		t.Fatalf("DHT mode by default = %v, want server", got)
	}
	// The client queried the server, yet is not in its routing table.
	time.Sleep(500 * time.Millisecond)
	for _, d := range []*Daemon{server, other} {
		if d.Node().DHT().RoutingTable().Find(client.Node().Host().ID()) != "" {
			t.Errorf("a DHT client is in %s's routing table", d.Node().Host().ID())
		}
	}
}
