package vod_test

import (
	"context"
	"crypto/sha256"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hivecast/hivecast/node/daemon"
)

const mib = 1 << 20

// Three daemons share a 24 MiB file, a fourth plays it through the stream
// endpoint (as `play -o` does): the bytes are identical and at least two
// providers delivered chunks. Uploads are capped so that no single provider
// can finish the download before the others join.
func TestPlayFromManyProviders(t *testing.T) {
	nodes := swarm(t, 4, func(i int, o *daemon.Options) {
		if i < 3 {
			o.MaxUpload = "40Mbit"
		}
	})
	path, sum := randomFile(t, t.TempDir(), 24*mib, 1)
	id := share(t, path, 0, nodes[:3]...)
	viewer := nodes[3]
	if got := streamAll(t, viewer, id, false, 60*time.Second); got != sum {
		t.Fatal("downloaded bytes differ from the shared file")
	}
	ss := viewer.VOD().Session(id)
	if ss == nil {
		t.Fatal("no session after playing")
	}
	waitFor(t, "the session to complete", 20*time.Second, func() bool { return ss.Stats().Complete })
	st := ss.Stats()
	from := bytesFrom(st)
	contributing := 0
	for _, p := range nodes[:3] {
		if from[p.peerID()] > 0 {
			contributing++
		}
	}
	t.Logf("bytes per provider: %v", from)
	if contributing < 2 {
		t.Fatalf("chunks came from %d providers, want at least 2 (stats %+v)", contributing, st.Peers)
	}
	if st.Banned != 0 {
		t.Fatalf("%d honest providers banned", st.Banned)
	}
}

// A provider is killed mid-download: the download completes from the rest,
// byte-identical.
func TestProviderKilledMidDownload(t *testing.T) {
	nodes := swarm(t, 4, func(i int, o *daemon.Options) {
		if i < 3 {
			o.MaxUpload = "24Mbit" // 3 MB/s each: 24 MiB take several seconds
		}
	})
	path, sum := randomFile(t, t.TempDir(), 24*mib, 2)
	// The bootstrap node stays: killing it would not be "one provider" only.
	id := share(t, path, 0, nodes[:3]...)
	viewer, victim := nodes[3], nodes[1]
	if _, err := play(t, viewer, id, false, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	type result struct {
		sum  [32]byte
		n    int
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		b, code, err := fetch(ctx, viewer, id, "", "")
		done <- result{sha256.Sum256(b), len(b), code, err}
	}()
	ss := viewer.VOD().Session(id)
	waitFor(t, "the victim to deliver chunks", 30*time.Second, func() bool {
		return bytesFrom(ss.Stats())[victim.peerID()] > 0
	})
	if st := ss.Stats(); st.Complete {
		t.Fatal("download completed before the provider could be killed; lower the caps")
	}
	victim.close()
	r := <-done
	if r.err != nil || r.code != http.StatusOK {
		t.Fatalf("stream after a provider died: status %d, %d bytes, %v", r.code, r.n, r.err)
	}
	if r.sum != sum {
		t.Fatal("downloaded bytes differ from the shared file")
	}
	from := bytesFrom(ss.Stats())
	t.Logf("bytes per provider: %v", from)
	if from[nodes[0].peerID()]+from[nodes[2].peerID()] == 0 {
		t.Fatal("the survivors delivered nothing")
	}
}

// Range requests return exactly the requested bytes: a range far ahead of
// the download (the scheduler jumps there), a suffix range, and two readers
// at once.
func TestRangeRequests(t *testing.T) {
	nodes := swarm(t, 2, func(i int, o *daemon.Options) {
		if i == 0 {
			o.MaxUpload = "16Mbit" // 2 MB/s: 16 MiB in order would take 8 s
		}
	})
	dir := t.TempDir()
	path, _ := randomFile(t, dir, 16*mib, 3)
	want := mustRead(t, path)
	id := share(t, path, 0, nodes[0])
	viewer := nodes[1]
	if _, err := play(t, viewer, id, false, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	ss := viewer.VOD().Session(id)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	check := func(rng string, from, to int64) { // to inclusive
		t.Helper()
		b, code, err := fetch(ctx, viewer, id, rng, "")
		if err != nil || code != http.StatusPartialContent {
			t.Fatalf("Range %s: status %d, err %v", rng, code, err)
		}
		if string(b) != string(want[from:to+1]) {
			t.Fatalf("Range %s: %d bytes, not the requested %d..%d", rng, len(b), from, to)
		}
	}

	// Far ahead: 14 MiB into the file, while the download is near the start.
	far := int64(14 * mib)
	check("bytes="+strconv.FormatInt(far, 10)+"-"+strconv.FormatInt(far+300_000, 10), far, far+300_000)
	chunk := int64(ss.Manifest().ChunkSize())
	before := 0 // chunks held before the far range
	for i := range int(far / chunk) {
		if ss.VOD().Has(i) {
			before++
		}
	}
	if before == int(far/chunk) {
		t.Fatalf("every chunk before the far range was held when it was served: the download did not jump ahead")
	}
	t.Logf("far range served with %d of the %d chunks before it held", before, far/chunk)

	// Suffix: the last 1000 bytes.
	n := int64(len(want))
	check("bytes=-1000", n-1000, n-1)
	// A range crossing a chunk boundary, not aligned.
	check("bytes=262000-530000", 262000, 530000)

	// Two readers at once, at different places.
	var wg sync.WaitGroup
	errs := make(chan string, 2)
	for _, r := range [][2]int64{{0, 6*mib - 1}, {9 * mib, 12*mib + 12345}} {
		wg.Add(1)
		go func(from, to int64) {
			defer wg.Done()
			b, code, err := fetch(ctx, viewer, id, "bytes="+strconv.FormatInt(from, 10)+"-"+strconv.FormatInt(to, 10), "")
			if err != nil || code != http.StatusPartialContent || string(b) != string(want[from:to+1]) {
				errs <- "concurrent range " + strconv.FormatInt(from, 10) + ": wrong answer (status " + strconv.Itoa(code) + ")"
			}
		}(r[0], r[1])
	}
	wg.Wait()
	close(errs)
	var msgs []string
	for e := range errs {
		msgs = append(msgs, e)
	}
	if len(msgs) > 0 {
		t.Fatal(strings.Join(msgs, "; "))
	}
}
