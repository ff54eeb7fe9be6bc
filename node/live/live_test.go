package live_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node/daemon"
	"github.com/hivecast/hivecast/node/live"
	"github.com/hivecast/hivecast/player"
	"github.com/hivecast/hivecast/player/sample"
)

func quiet() *slog.Logger {
	if os.Getenv("HIVECAST_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startDaemon(t *testing.T, maxChildren int, bootstrap ...string) *daemon.Daemon {
	t.Helper()
	return startWith(t, daemon.Options{
		Listen:      []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		Bootstrap:   bootstrap,
		MaxChildren: maxChildren,
	})
}

// startWith starts a daemon on loopback with o, in a temporary data
// directory, without mDNS or port mapping.
func startWith(t *testing.T, o daemon.Options) *daemon.Daemon {
	t.Helper()
	o.DataDir, o.API, o.NoMDNS, o.NoNATPortMap = t.TempDir(), "127.0.0.1:0", true, true
	d, err := daemon.Start(o, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func tcpAddr(t *testing.T, d *daemon.Daemon) string {
	for _, a := range d.Node().Addrs() {
		if strings.Contains(a, "/tcp/") {
			return a
		}
	}
	t.Fatal("no tcp address")
	return ""
}

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

// swarm is a source and viewers joined through the source's DHT.
type swarm struct {
	src     *daemon.Daemon
	viewers []*daemon.Daemon
}

func newSwarm(t *testing.T, srcChildren int, viewerChildren []int) *swarm {
	s := &swarm{src: startDaemon(t, srcChildren)}
	boot := tcpAddr(t, s.src)
	for _, mc := range viewerChildren {
		s.viewers = append(s.viewers, startDaemon(t, mc, boot))
	}
	for _, v := range s.viewers {
		v := v
		waitFor(t, "viewer in the DHT", 10*time.Second, func() bool { return v.Node().DHT().RoutingTable().Size() > 0 })
	}
	return s
}

// broadcast starts a source of the sample clip, paced in real time, once.
func broadcast(t *testing.T, d *daemon.Daemon, name string) (*live.Source, <-chan error) {
	t.Helper()
	src, err := d.Live().Broadcast(name)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	finished := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(finished)
		err := src.Ingest(ctx, bytes.NewReader(sample.TS), live.IngestOptions{Realtime: true})
		src.End()
		done <- err
	}()
	t.Cleanup(func() { cancel(); <-finished })
	return src, done
}

// watchAll has every viewer of sw watch src into a file of dir (a.ts, b.ts...).
func (sw *swarm) watchAll(t *testing.T, src *live.Source, dir string) []*live.Stream {
	t.Helper()
	var streams []*live.Stream
	for i, v := range sw.viewers {
		streams = append(streams, watch(t, v, src, filepath.Join(dir, string(rune('a'+i))+".ts")))
	}
	return streams
}

func mustFileSink(t *testing.T, out string) []player.Sink {
	t.Helper()
	f, err := player.CreateFileSink(out)
	if err != nil {
		t.Fatal(err)
	}
	return []player.Sink{f}
}

func watch(t *testing.T, d *daemon.Daemon, src *live.Source, out string) *live.Stream {
	t.Helper()
	st, err := d.Live().Watch(context.Background(), src.Stream().ID(), live.WatchOptions{Sinks: mustFileSink(t, out), FindTimeout: 15 * time.Second})
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	return st
}

// decodeErrors returns what ffmpeg reports decoding file.
func decodeErrors(t *testing.T, file string) string {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (scripts/test.sh installs it)")
	}
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", file, "-f", "null", "-").CombinedOutput()
	if err != nil {
		return string(out) + err.Error()
	}
	return strings.TrimSpace(string(out))
}

// A real H.264 clip paced in real time reaches four viewers in a chain (the
// source and every viewer feed one child only, so later viewers are
// reachable only through earlier ones). Every output decodes, continuity is
// at least 0.99 and the p95 delay under a second.
func TestLiveChain(t *testing.T) {
	sw := newSwarm(t, 1, []int{1, 1, 1, 1})
	src, done := broadcast(t, sw.src, "chain")
	dir := t.TempDir()
	streams := sw.watchAll(t, src, dir)
	if err := <-done; err != nil {
		t.Fatalf("ingest: %v", err)
	}
	for i, st := range streams {
		select {
		case <-st.Done():
		case <-time.After(20 * time.Second):
			t.Fatalf("viewer %d never saw the end of the stream", i)
		}
	}
	depths := map[int]int{}
	for i, st := range streams {
		s := st.Stats()
		t.Logf("viewer %d: depth %d children %d delay p50 %.0f p95 %.0f p99 %.0f ms continuity %.4f startup %.0f ms chunks %d switches %d",
			i, s.Depth, s.Children, s.DelayMS.P50, s.DelayMS.P95, s.DelayMS.P99, s.Continuity, s.StartupMS, s.ChunksIn, s.Switches)
		depths[s.Depth]++
		if s.Continuity < 0.99 {
			t.Errorf("viewer %d: continuity %.4f < 0.99", i, s.Continuity)
		}
		if s.DelayMS.P95 >= 1000 {
			t.Errorf("viewer %d: delay p95 %.0f ms >= 1000", i, s.DelayMS.P95)
		}
		if s.Delivered < 50 {
			t.Errorf("viewer %d: only %d chunks played", i, s.Delivered)
		}
		// It probed to join (the peers it was connected to, or those the
		// DHT named), and counts what its probes cost: a dial is a probe
		// that had to open a connection.
		if s.ProbesOut["join"]+s.ProbesOut["neighbour"] == 0 {
			t.Errorf("viewer %d: no join or neighbour probe counted: sent %v, dials %v", i, s.ProbesOut, s.ProbeDials)
		}
		for why, n := range s.ProbeDials {
			if n > s.ProbesOut[why] {
				t.Errorf("viewer %d: %d %s probe dials, more than the %d %s probes sent", i, n, why, s.ProbesOut[why], why)
			}
		}
		if e := decodeErrors(t, filepath.Join(dir, string(rune('a'+i))+".ts")); e != "" {
			t.Errorf("viewer %d output does not decode cleanly: %s", i, e)
		}
	}
	for d := 1; d <= 4; d++ {
		if depths[d] != 1 {
			t.Errorf("want a chain of depths 1..4, got %v", depths)
			break
		}
	}
	if n := src.Stream().Stats().Children; n > 1 {
		t.Errorf("source feeds %d children, max 1", n)
	}
}

// A viewer whose parent is killed switches to another and keeps playing.
func TestLiveParentKilled(t *testing.T) {
	sw := newSwarm(t, 2, []int{2, 2, 2})
	src, done := broadcast(t, sw.src, "failover")
	dir := t.TempDir()
	a := watch(t, sw.viewers[0], src, filepath.Join(dir, "a.ts"))
	waitFor(t, "first viewer attached", 10*time.Second, func() bool { return a.Stats().Depth == 1 })
	b := watch(t, sw.viewers[1], src, filepath.Join(dir, "b.ts"))
	waitFor(t, "second viewer attached", 10*time.Second, func() bool { return b.Stats().Depth == 1 })
	c := watch(t, sw.viewers[2], src, filepath.Join(dir, "c.ts"))
	waitFor(t, "third viewer playing", 10*time.Second, func() bool { return c.Stats().Delivered > 5 })
	// Kill the third viewer's parent (whoever it is) unless it is the source.
	parent := c.Stats().Parent
	var victim *daemon.Daemon
	for _, v := range sw.viewers[:2] {
		if v.Node().Host().ID().String() == parent {
			victim = v
		}
	}
	if victim == nil {
		t.Fatalf("third viewer's parent %s is not one of the other viewers (source full?)", parent)
	}
	// The connection to the parent is protected on both sides from the
	// connection manager's trimming: it carries the video.
	cID, vID := sw.viewers[2].Node().Host().ID(), victim.Node().Host().ID()
	if !sw.viewers[2].Node().Host().ConnManager().IsProtected(vID, live.ParentTag(c.ID(), 0)) {
		t.Errorf("the child's connection manager may trim the connection to its parent")
	}
	if !victim.Node().Host().ConnManager().IsProtected(cID, live.ProtectTag) {
		t.Errorf("the parent's connection manager may trim the connection to its child")
	}
	time.Sleep(2 * time.Second)
	victim.Close()
	if err := <-done; err != nil {
		t.Fatalf("ingest: %v", err)
	}
	select {
	case <-c.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("third viewer never saw the end of the stream")
	}
	s := c.Stats()
	t.Logf("after failover: parent switches %d, continuity %.4f, missed %d, delay p95 %.0f ms", s.Switches, s.Continuity, s.Missed, s.DelayMS.P95)
	if s.Switches < 1 {
		t.Errorf("no parent switch recorded")
	}
	if s.Continuity < 0.99 {
		t.Errorf("continuity %.4f < 0.99 over the parent's death", s.Continuity)
	}
	if e := decodeErrors(t, filepath.Join(dir, "c.ts")); e != "" {
		t.Errorf("output does not decode cleanly: %s", e)
	}
}

// Viewers do not poll a full source: one that answered a probe (or a
// subscription) that it has no room is not asked again for a while, so the
// source's load from peers looking for a parent does not grow with the
// audience. The source feeds one child; of the other three viewers, none
// asks it anything over the 6 s after all have started playing (before,
// each probed it every 6 s: it was first among the candidates by depth).
func TestFullSourceNotPolled(t *testing.T) {
	sw := newSwarm(t, 1, []int{3, 3, 3, 3})
	src, done := broadcast(t, sw.src, "full")
	dir := t.TempDir()
	streams := sw.watchAll(t, src, dir)
	waitFor(t, "every viewer playing", 8*time.Second, func() bool {
		for _, st := range streams {
			if st.Stats().Delivered < 5 {
				return false
			}
		}
		return true
	})
	before := src.Stream().Stats()
	time.Sleep(6 * time.Second)
	after := src.Stream().Stats()
	asked := after.ProbesIn + after.Refusals - before.ProbesIn - before.Refusals
	t.Logf("source: %d probes and %d refusals before, %d more in the 6 s window; children %d", before.ProbesIn, before.Refusals, asked, after.Children)
	if after.Children != 1 {
		t.Fatalf("source feeds %d children, want 1 (full)", after.Children)
	}
	if asked > 1 {
		t.Errorf("the full source was asked %d times in 6 s by 3 viewers that know it is full", asked)
	}
	if err := <-done; err != nil {
		t.Fatalf("ingest: %v", err)
	}
	for i, st := range streams {
		if s := st.Stats(); s.Continuity < 0.99 {
			t.Errorf("viewer %d: continuity %.4f < 0.99", i, s.Continuity)
		}
	}
}
