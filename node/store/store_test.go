package store

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hivecast/hivecast/protocol/chunk"
	"github.com/hivecast/hivecast/protocol/manifest"
)

const cs = 16 << 10 // small chunks keep the tests fast

func writeRandom(t *testing.T, dir, name string, size int, seed byte) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, b
}

func open(t *testing.T, dir string, capBytes int64) *Store {
	t.Helper()
	s, err := Open(dir, capBytes)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readAll(t *testing.T, s *Store, m *manifest.Manifest) []byte {
	t.Helper()
	var out []byte
	for i := range m.NumChunks() {
		b, err := s.Chunk(m.ID(), uint64(i), nil)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		out = append(out, b...)
	}
	return out
}

func item(t *testing.T, s *Store, m *manifest.Manifest) Item {
	t.Helper()
	for _, it := range s.List() {
		if it.ID == m.ID().String() {
			return it
		}
	}
	t.Fatalf("%s not listed", m.ID())
	return Item{}
}

func TestShareServedInPlaceAndSurvivesReopen(t *testing.T) {
	dir, files := t.TempDir(), t.TempDir()
	p, data := writeRandom(t, files, "a.ts", 5*cs+123, 1)
	s := open(t, dir, 0)
	m, err := s.Share(p, "", cs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, s, m), data) {
		t.Fatal("served bytes differ")
	}
	// Not copied: the cache holds nothing for a share.
	if ents, _ := os.ReadDir(filepath.Join(dir, "cache")); len(ents) != 0 {
		t.Fatalf("share copied into the cache: %v", ents)
	}
	s.Close()
	s = open(t, dir, 0)
	defer s.Close()
	it := item(t, s, m)
	if it.Source != "shared" || it.Problem != "" || it.Path != p || it.Name != "a.ts" {
		t.Fatalf("after reopen: %+v", it)
	}
	if !bytes.Equal(readAll(t, s, m), data) {
		t.Fatal("served bytes differ after reopen")
	}
	if held := s.Held(); len(held) != 1 || held[0] != m.ID() {
		t.Fatalf("held %v", held)
	}
}

func TestShareErrors(t *testing.T) {
	s := open(t, t.TempDir(), 0)
	defer s.Close()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	for path, want := range map[string]string{
		filepath.Join(dir, "nope"): "no such file",
		dir:                        "directory",
		empty:                      "empty",
	} {
		if _, err := s.Share(path, "", cs); err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("Share(%s) = %v, want an error saying %q", path, err, want)
		}
	}
}

// checkNotServed asserts that no chunk of m is served, and that the refusal
// is NOT_FOUND to peers (not a wrong chunk, not an internal error).
func checkNotServed(t *testing.T, s *Store, m *manifest.Manifest) {
	t.Helper()
	for i := range m.NumChunks() {
		b, err := s.Chunk(m.ID(), uint64(i), nil)
		if err == nil {
			t.Fatalf("chunk %d served (%d bytes) from a changed file", i, len(b))
		}
		if !errors.Is(err, chunk.ErrNotFound) {
			t.Fatalf("chunk %d: %v, want it to count as not found", i, err)
		}
	}
	if _, err := s.Manifest(m.ID()); !errors.Is(err, chunk.ErrNotFound) {
		t.Fatalf("manifest of a changed share still served: %v", err)
	}
	for _, id := range s.Held() {
		if id == m.ID() {
			t.Fatal("a changed share is still announced")
		}
	}
}

func TestChangedFileDetected(t *testing.T) {
	s := open(t, t.TempDir(), 0)
	defer s.Close()
	p, data := writeRandom(t, t.TempDir(), "a.ts", 4*cs, 2)
	m, err := s.Share(p, "", cs)
	if err != nil {
		t.Fatal(err)
	}
	data[3*cs+7] ^= 1 // same size, other content, new mtime
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	if it := item(t, s, m); it.Problem != ErrChanged.Error() || it.Complete {
		t.Fatalf("ls after a change: %+v", it)
	}
	checkNotServed(t, s, m)
}

// The file is modified in place and its mtime put back (touch -r, rsync -t):
// the size/mtime check cannot see it, chunk verification does, and from then
// on the share stays reported and unserved.
func TestChangedFileSameMtimeDetected(t *testing.T) {
	s := open(t, t.TempDir(), 0)
	defer s.Close()
	p, data := writeRandom(t, t.TempDir(), "a.ts", 4*cs, 3)
	m, err := s.Share(p, "", cs)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	data[2*cs+1] ^= 0xff
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Chunk(m.ID(), 0, nil); err != nil {
		t.Fatalf("unchanged chunk 0: %v", err)
	}
	if b, err := s.Chunk(m.ID(), 2, nil); err == nil {
		t.Fatalf("changed chunk 2 served (%d bytes)", len(b))
	}
	if it := item(t, s, m); it.Problem != ErrChanged.Error() {
		t.Fatalf("ls after a detected change: %+v", it)
	}
	checkNotServed(t, s, m)
	// Still reported after a restart.
	s.Close()
}

func TestVanishedFileDetected(t *testing.T) {
	s := open(t, t.TempDir(), 0)
	defer s.Close()
	p, _ := writeRandom(t, t.TempDir(), "a.ts", 3*cs, 4)
	m, err := s.Share(p, "", cs)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	if it := item(t, s, m); it.Problem != ErrMissing.Error() {
		t.Fatalf("ls after removal: %+v", it)
	}
	checkNotServed(t, s, m)
}

func manifestOf(t *testing.T, size int, seed byte) (*manifest.Manifest, []byte) {
	t.Helper()
	b := make([]byte, size)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	m, err := manifest.Build(bytes.NewReader(b), "f", "video/mp2t", cs)
	if err != nil {
		t.Fatal(err)
	}
	return m, b
}

func fill(t *testing.T, e *Entry, m *manifest.Manifest, data []byte) {
	t.Helper()
	for i := range m.NumChunks() {
		off := m.ChunkOffset(i)
		if err := e.Put(i, data[off:off+int64(m.ChunkLen(i))]); err != nil {
			t.Fatal(err)
		}
	}
}

func cacheBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	filepath.Walk(filepath.Join(dir, "cache"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == "data" {
			total += fi.Size()
		}
		return nil
	})
	return total
}

// The cache stays under its cap by evicting the least recently used entry
// that no session is using.
func TestCacheLRUEviction(t *testing.T) {
	dir := t.TempDir()
	capBytes := int64(10 * cs) // room for two 4-chunk files, not three
	s := open(t, dir, capBytes)
	defer s.Close()
	var ms []*manifest.Manifest
	for k := range 3 {
		m, data := manifestOf(t, 4*cs, byte(10+k))
		e, err := s.Cache(m)
		if err != nil {
			t.Fatal(err)
		}
		fill(t, e, m, data)
		e.Release()
		ms = append(ms, m)
		if k == 1 {
			// Use the first again: the second becomes least recently used.
			if _, err := s.Chunk(ms[0].ID(), 0, nil); err != nil {
				t.Fatal(err)
			}
		}
		if got := cacheBytes(t, dir); got > capBytes {
			t.Fatalf("cache holds %d bytes, cap %d", got, capBytes)
		}
	}
	if _, ok := s.Lookup(ms[1].ID()); ok {
		t.Fatal("the least recently used entry was not evicted")
	}
	for _, k := range []int{0, 2} {
		if _, ok := s.Lookup(ms[k].ID()); !ok {
			t.Fatalf("entry %d evicted instead", k)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "cache", ms[1].ID().String())); !os.IsNotExist(err) {
		t.Fatalf("evicted entry left on disk: %v", err)
	}
}

// An entry in use is never evicted, even over the cap.
func TestCachePinnedNotEvicted(t *testing.T) {
	s := open(t, t.TempDir(), int64(2*cs))
	defer s.Close()
	m, data := manifestOf(t, 4*cs, 20)
	e, err := s.Cache(m)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, e, m, data)
	for i := range m.NumChunks() {
		if _, ok := e.Get(i, nil); !ok {
			t.Fatalf("chunk %d of a pinned entry gone", i)
		}
	}
	e.Release()
}

// A cache survives a reopen; a chunk corrupted on disk is noticed and
// dropped, never served.
func TestCacheReopenAndCorruption(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 0)
	m, data := manifestOf(t, 3*cs+5, 30)
	e, err := s.Cache(m)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, e, m, data)
	e.Release()
	s.Close()
	f, err := os.OpenFile(filepath.Join(dir, "cache", m.ID().String(), "data"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xde, 0xad}, int64(cs)+10)
	f.Close()
	s = open(t, dir, 0)
	defer s.Close()
	if !bytes.Equal(func() []byte { b, _ := s.Chunk(m.ID(), 0, nil); return b }(), data[:cs]) {
		t.Fatal("chunk 0 lost after reopen")
	}
	if b, err := s.Chunk(m.ID(), 1, nil); err == nil {
		t.Fatalf("corrupted chunk served (%d bytes)", len(b))
	}
	if it := item(t, s, m); it.Source != "cache" || it.Complete {
		t.Fatalf("after corruption: %+v", it)
	}
}

// A change found by verification is still reported after a restart.
func TestCorruptMarkSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, 0)
	p, data := writeRandom(t, t.TempDir(), "a.ts", 2*cs, 5)
	m, err := s.Share(p, "", cs)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	data[5] ^= 1
	os.WriteFile(p, data, 0o644)
	os.Chtimes(p, fi.ModTime(), fi.ModTime())
	if _, err := s.Chunk(m.ID(), 0, nil); err == nil {
		t.Fatal("changed chunk served")
	}
	s.Close()
	s = open(t, dir, 0)
	defer s.Close()
	if it := item(t, s, m); it.Problem != ErrChanged.Error() {
		t.Fatalf("after reopen: %+v", it)
	}
	checkNotServed(t, s, m)
	// Sharing it again (a deliberate new version) clears the mark.
	m2, err := s.Share(p, "", cs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, s, m2), data) {
		t.Fatal("re-shared file not served")
	}
}
