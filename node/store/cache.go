package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hivecast/hivecast/protocol/manifest"
	"github.com/ipfs/go-cid"
)

// Entry is the cache of one file: a sparse data file plus a bitmap of the
// chunks present. It implements player.ChunkStore. Every chunk read back is
// verified against the manifest, so a torn write or a corrupted disk is
// noticed and the chunk fetched again.
type Entry struct {
	st   *Store
	m    *manifest.Manifest
	dir  string
	used int64 // LRU clock, under st.mu
	pins int   // sessions using it, under st.mu

	mu        sync.Mutex
	f         *os.File
	have      []uint64
	n         int
	dirty     bool
	lastFlush time.Time
	closed    bool
}

func (s *Store) entryDir(id cid.Cid) string { return filepath.Join(s.dir, "cache", id.String()) }

func (s *Store) loadCache() error {
	ents, err := os.ReadDir(filepath.Join(s.dir, "cache"))
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, de := range ents {
		id, err := cid.Decode(de.Name())
		if err != nil || !de.IsDir() {
			continue
		}
		dir := filepath.Join(s.dir, "cache", de.Name())
		raw, err := os.ReadFile(filepath.Join(dir, "manifest"))
		if err != nil {
			os.RemoveAll(dir)
			continue
		}
		m, err := manifest.Decode(raw, id)
		if err != nil {
			os.RemoveAll(dir)
			continue
		}
		e, err := s.openEntry(m, dir)
		if err != nil {
			return err
		}
		s.cache[id] = e
	}
	return nil
}

func (s *Store) openEntry(m *manifest.Manifest, dir string) (*Entry, error) {
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	e := &Entry{st: s, m: m, dir: dir, f: f, have: make([]uint64, (m.NumChunks()+63)/64)}
	if b, err := os.ReadFile(filepath.Join(dir, "have")); err == nil && len(b) == 8*len(e.have) {
		for i := range e.have {
			e.have[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
		// Bits beyond the last chunk are never valid.
		if r := m.NumChunks() % 64; r != 0 {
			e.have[len(e.have)-1] &= (1 << r) - 1
		}
		for _, w := range e.have {
			e.n += bits.OnesCount64(w)
		}
	}
	return e, nil
}

// Cache returns the cache entry of m, creating it, and pins it against
// eviction until Release.
func (s *Store) Cache(m *manifest.Manifest) (*Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.cache[m.ID()]; ok {
		e.pins++
		s.clock++
		e.used = s.clock
		return e, nil
	}
	dir := s.entryDir(m.ID())
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, "manifest"), m.Bytes()); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cache: %w", err)
	}
	e, err := s.openEntry(m, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e.pins = 1
	s.clock++
	e.used = s.clock
	s.cache[m.ID()] = e
	return e, nil
}

// Release unpins the entry and flushes its bitmap.
func (e *Entry) Release() {
	e.st.mu.Lock()
	if e.pins > 0 {
		e.pins--
	}
	e.st.mu.Unlock()
	e.mu.Lock()
	_ = e.flushLocked()
	e.mu.Unlock()
}

// Manifest is the entry's manifest.
func (e *Entry) Manifest() *manifest.Manifest { return e.m }

func (e *Entry) hasLocked(i int) bool {
	return i >= 0 && i < e.m.NumChunks() && e.have[i/64]&(1<<(i%64)) != 0
}

// Has implements player.ChunkStore.
func (e *Entry) Has(i int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hasLocked(i)
}

func (e *Entry) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

// Held returns the indexes of the chunks present.
func (e *Entry) Held() []int {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []int
	for i := 0; i < e.m.NumChunks(); i++ {
		if e.hasLocked(i) {
			out = append(out, i)
		}
	}
	return out
}

// Get implements player.ChunkStore; the chunk is verified before it is returned.
func (e *Entry) Get(i int, buf []byte) ([]byte, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.hasLocked(i) || e.closed {
		return nil, false
	}
	n := e.m.ChunkLen(i)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := e.f.ReadAt(buf, e.m.ChunkOffset(i)); err != nil || e.m.Verify(i, buf) != nil {
		e.clearLocked(i)
		return nil, false
	}
	return buf, true
}

// Put implements player.ChunkStore. The caller has verified data. A write
// error (a full disk) is returned and the chunk is not marked present.
func (e *Entry) Put(i int, data []byte) error {
	if i < 0 || i >= e.m.NumChunks() || len(data) != e.m.ChunkLen(i) {
		return fmt.Errorf("cache: chunk %d of wrong size %d", i, len(data))
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return errors.New("cache: entry removed")
	}
	if e.hasLocked(i) {
		e.mu.Unlock()
		return nil
	}
	if _, err := e.f.WriteAt(data, e.m.ChunkOffset(i)); err != nil {
		e.mu.Unlock()
		return fmt.Errorf("cache write: %w", err)
	}
	e.have[i/64] |= 1 << (i % 64)
	e.n++
	e.dirty = true
	if time.Since(e.lastFlush) > time.Second || e.n == e.m.NumChunks() {
		_ = e.flushLocked()
	}
	e.mu.Unlock()
	e.st.afterPut(e)
	return nil
}

// Delete implements player.ChunkStore.
func (e *Entry) Delete(i int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hasLocked(i) {
		e.clearLocked(i)
	}
}

func (e *Entry) clearLocked(i int) {
	e.have[i/64] &^= 1 << (i % 64)
	e.n--
	e.dirty = true
}

func (e *Entry) flushLocked() error {
	if !e.dirty || e.closed {
		return nil
	}
	b := make([]byte, 8*len(e.have))
	for i, w := range e.have {
		binary.LittleEndian.PutUint64(b[8*i:], w)
	}
	if err := e.f.Sync(); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(e.dir, "have"), b); err != nil {
		return err
	}
	e.dirty = false
	e.lastFlush = time.Now()
	return nil
}

// bytes is the disk space the entry's chunks take.
func (e *Entry) bytes() int64 {
	return int64(e.count()) * int64(e.m.ChunkSize())
}

// afterPut evicts least recently used, unpinned entries while the cache is
// over its cap.
func (s *Store) afterPut(just *Entry) {
	if s.cacheCap <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock++
	just.used = s.clock
	var total int64
	for _, e := range s.cache {
		total += e.bytes()
	}
	for total > s.cacheCap {
		var victim *Entry
		for _, e := range s.cache {
			if e.pins > 0 {
				continue
			}
			if victim == nil || e.used < victim.used {
				victim = e
			}
		}
		if victim == nil {
			return // everything in use; the cap is exceeded until a session ends
		}
		total -= victim.bytes()
		s.removeEntryLocked(victim)
	}
}

func (s *Store) removeEntryLocked(e *Entry) {
	delete(s.cache, e.m.ID())
	e.mu.Lock()
	e.closed = true
	e.f.Close()
	e.mu.Unlock()
	os.RemoveAll(e.dir)
}

// Close flushes and closes every cache entry.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, e := range s.cache {
		e.mu.Lock()
		errs = append(errs, e.flushLocked())
		e.closed = true
		errs = append(errs, e.f.Close())
		e.mu.Unlock()
	}
	return errors.Join(errs...)
}
