package vod_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node/daemon"
	"github.com/hivecast/hivecast/node/store"
)

func listed(n *tnode, id string) (store.Item, bool) {
	for _, it := range n.VOD().Store().List() {
		if it.ID == id {
			return it, true
		}
	}
	return store.Item{}, false
}

// A share survives a daemon restart: listed again, announced again, served.
func TestShareSurvivesRestart(t *testing.T) {
	nodes := swarm(t, 2, nil)
	boot, viewer := nodes[0], nodes[1]
	pdir := t.TempDir()
	p := startNode(t, opts(pdir, boot.tcpAddr(t)))
	path, sum := randomFile(t, t.TempDir(), 6*mib, 5)
	id := share(t, path, 0, p)
	p.close()

	p = startNode(t, opts(pdir, boot.tcpAddr(t)))
	it, ok := listed(p, id.String())
	if !ok || it.Source != "shared" || it.Problem != "" {
		t.Fatalf("after restart ls shows %+v (listed %v)", it, ok)
	}
	waitFor(t, "the share announced again", 20*time.Second, func() bool { return p.VOD().Announced(id) })
	if got := streamAll(t, viewer, id, false, 60*time.Second); got != sum {
		t.Fatal("bytes differ")
	}
}

// A shared file modified in place with its mtime put back: the provider
// notices when it reads a changed chunk, never serves it, reports the
// problem in ls, and stops serving the ID at all; a viewer gets no wrong
// byte.
func TestChangedShareNeverServed(t *testing.T) {
	nodes := swarm(t, 2, nil)
	prov, viewer := nodes[0], nodes[1]
	path, _ := randomFile(t, t.TempDir(), 4*mib, 6)
	orig := mustRead(t, path)
	id := share(t, path, 0, prov)
	fi, _ := os.Stat(path)
	changed := append([]byte(nil), orig...)
	at := int64(3 * mib)
	changed[at+10] ^= 0xff
	if err := os.WriteFile(path, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if _, err := play(t, viewer, id, false, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// The unchanged start plays.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, code, err := fetch(ctx, viewer, id, "bytes=0-999999", "")
	if err != nil || code != http.StatusPartialContent || string(b) != string(orig[:1000000]) {
		t.Fatalf("unchanged range: %d %v", code, err)
	}
	// The changed chunk never arrives, neither old nor new bytes.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel2()
	b, _, err = fetch(ctx2, viewer, id, "bytes=3145728-3146000", "")
	if err == nil {
		t.Fatalf("the changed chunk was served: %d bytes", len(b))
	}
	waitFor(t, "ls to report the change", 10*time.Second, func() bool {
		it, _ := listed(prov, id.String())
		return it.Problem == store.ErrChanged.Error()
	})
	// The provider no longer serves the ID at all (the viewer still may: it
	// holds verified chunks of the original).
	if _, err := prov.VOD().Store().Manifest(id); err == nil {
		t.Fatal("the provider still serves the manifest of a changed file")
	}
	for _, h := range prov.VOD().Store().Held() {
		if h == id {
			t.Fatal("the provider still announces a changed file")
		}
	}
}

// A shared file that vanished is reported and not served.
func TestVanishedShareNotServed(t *testing.T) {
	nodes := swarm(t, 2, nil)
	prov, viewer := nodes[0], nodes[1]
	path, _ := randomFile(t, t.TempDir(), 2*mib, 7)
	id := share(t, path, 0, prov)
	os.Remove(path)
	it, _ := listed(prov, id.String())
	if it.Problem != store.ErrMissing.Error() {
		t.Fatalf("ls after the file vanished: %+v", it)
	}
	_, err := play(t, viewer, id, false, 3*time.Second)
	if err == nil || !strings.Contains(err.Error(), "no providers found") {
		t.Fatalf("play of a vanished share: %v", err)
	}
}

// --no-store: the whole file plays and nothing is written under the data
// dir's store for that ID.
func TestNoStoreWritesNothing(t *testing.T) {
	nodes := swarm(t, 2, nil)
	prov, viewer := nodes[0], nodes[1]
	path, sum := randomFile(t, t.TempDir(), 24*mib, 8) // bigger than the memory window
	id := share(t, path, 0, prov)
	if got := streamAll(t, viewer, id, true, 60*time.Second); got != sum {
		t.Fatal("bytes differ")
	}
	if st := viewer.VOD().Session(id).Stats(); !st.NoStore {
		t.Fatalf("session not in no-store mode: %+v", st)
	}
	err := filepath.Walk(filepath.Join(viewer.dir, "store"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.Contains(p, id.String()) {
			return errors.New("found " + p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("--no-store wrote to disk: %v", err)
	}
	if _, ok := listed(viewer, id.String()); ok {
		t.Fatal("--no-store download listed in the cache")
	}
}

// A full disk: the viewer's cache lives on a 1 MiB tmpfs. Playback still
// completes (from memory) and the error is logged clearly.
func TestFullDiskPlaysFromMemory(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "store", "cache")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", cache).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tiny tmpfs to simulate a full disk (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", cache).Run() })
	prov := startNode(t, opts(t.TempDir()))
	viewer := startNode(t, opts(dir, prov.tcpAddr(t)))
	for _, n := range []*tnode{prov, viewer} {
		waitFor(t, "routing tables", 20*time.Second, func() bool { return n.Node().DHT().RoutingTable().Size() > 0 })
	}
	path, sum := randomFile(t, t.TempDir(), 24*mib, 9) // more than the memory window
	id := share(t, path, 0, prov)
	if got := streamAll(t, viewer, id, false, 60*time.Second); got != sum {
		t.Fatal("bytes differ")
	}
	if !strings.Contains(viewer.log.String(), "cache write failed") || !strings.Contains(viewer.log.String(), "no space left on device") {
		t.Fatalf("the full disk was not reported clearly; log:\n%s", viewer.log.String())
	}
}

var _ = daemon.Options{}

// --no-store keeps a bounded window: after playing the whole file, a seek
// back to the start finds those chunks dropped and fetches them again.
func TestNoStoreSeekBack(t *testing.T) {
	nodes := swarm(t, 2, nil)
	prov, viewer := nodes[0], nodes[1]
	path, sum := randomFile(t, t.TempDir(), 24*mib, 10)
	want := mustRead(t, path)
	id := share(t, path, 0, prov)
	if got := streamAll(t, viewer, id, true, 60*time.Second); got != sum {
		t.Fatal("bytes differ")
	}
	if viewer.VOD().Session(id).VOD().Has(0) {
		t.Fatal("chunk 0 still in memory after the whole file played: the window is not bounded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, code, err := fetch(ctx, viewer, id, "bytes=0-99999", "?store=0")
	if err != nil || code != http.StatusPartialContent || string(b) != string(want[:100000]) {
		t.Fatalf("seek back to the start after playing: status %d, %d bytes, %v", code, len(b), err)
	}
}
