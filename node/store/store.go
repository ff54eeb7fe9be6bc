// Package store keeps what a node holds on disk: the files it shares (served
// from where they lie, never copied) and the cache of what it downloaded.
//
// Layout under the store directory:
//
//	shares.json                  the shared files: ID, path, size, mtime
//	cache/<ID>/manifest          the verified manifest bytes
//	cache/<ID>/data              sparse file of the content, chunks at their offsets
//	cache/<ID>/have              bitmap of the chunks present in data
//
// Everything served is verified against its manifest first: a shared file
// that changed or vanished since it was shared is reported, never served as if
// it were the old one.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hivecast/hivecast/protocol/chunk"
	"github.com/hivecast/hivecast/protocol/manifest"
	"github.com/ipfs/go-cid"
)

// Errors.
var (
	// ErrChanged: a shared file is no longer what was shared.
	ErrChanged = errors.New("shared file changed since it was shared")
	// ErrMissing: a shared file vanished.
	ErrMissing = errors.New("shared file is missing")
	// ErrNotShared: no share or cache entry has that ID.
	ErrNotShared = errors.New("not shared or cached here")
)

// share is one shared file.
type share struct {
	ID      string    `json:"id"`
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	// Corrupt is set once a chunk read from the file failed verification
	// (a change the size/mtime check missed, e.g. an mtime put back). It is
	// sticky: only sharing the file again clears it.
	Corrupt bool `json:"corrupt,omitempty"`

	m     *manifest.Manifest
	state error // nil, ErrChanged or ErrMissing
}

// Store is a node's disk store. It is safe for concurrent use.
type Store struct {
	dir      string
	cacheCap int64

	mu     sync.Mutex
	shares map[cid.Cid]*share
	cache  map[cid.Cid]*Entry
	clock  int64 // logical LRU clock
}

// Open opens (creating) the store in dir. cacheCap bounds the cache's bytes
// on disk (0: unbounded).
func Open(dir string, cacheCap int64) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "cache"), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{dir: dir, cacheCap: cacheCap, shares: map[cid.Cid]*share{}, cache: map[cid.Cid]*Entry{}}
	if err := s.loadShares(); err != nil {
		return nil, err
	}
	if err := s.loadCache(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) sharesPath() string { return filepath.Join(s.dir, "shares.json") }

type sharesFile struct {
	Shares []struct {
		share
		Manifest []byte `json:"manifest"`
	} `json:"shares"`
}

func (s *Store) loadShares() error {
	b, err := os.ReadFile(s.sharesPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	var f sharesFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("store: %s is corrupt: %v", s.sharesPath(), err)
	}
	for _, e := range f.Shares {
		id, err := cid.Decode(e.ID)
		if err != nil {
			continue
		}
		m, err := manifest.Decode(e.Manifest, id)
		if err != nil {
			continue
		}
		sh := e.share
		sh.m = m
		s.shares[id] = &sh
		s.checkShare(&sh)
	}
	return nil
}

func (s *Store) saveSharesLocked() error {
	var f sharesFile
	ids := make([]cid.Cid, 0, len(s.shares))
	for id := range s.shares {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].KeyString() < ids[j].KeyString() })
	for _, id := range ids {
		sh := s.shares[id]
		f.Shares = append(f.Shares, struct {
			share
			Manifest []byte `json:"manifest"`
		}{*sh, sh.m.Bytes()})
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(s.sharesPath(), b)
}

// checkShare updates sh.state from the file's current size and mtime (and
// the sticky Corrupt mark).
func (s *Store) checkShare(sh *share) {
	fi, err := os.Stat(sh.Path)
	switch {
	case err != nil:
		sh.state = ErrMissing
	case fi.Size() != sh.Size || !fi.ModTime().Equal(sh.ModTime) || sh.Corrupt:
		sh.state = ErrChanged
	default:
		sh.state = nil
	}
}

// Share chunks and hashes the file at path and records it. It returns the
// manifest; sharing a file already shared is idempotent.
func (s *Store) Share(path, name string, chunkSize int) (*manifest.Manifest, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, fmt.Errorf("cannot share %s: %w", path, unwrapPathErr(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot share %s: %w", path, err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("cannot share %s: it is a directory; share the video files in it one by one", path)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cannot share %s: not a regular file", path)
	}
	if fi.Size() == 0 {
		return nil, fmt.Errorf("cannot share %s: the file is empty", path)
	}
	if name == "" {
		name = filepath.Base(abs)
	}
	m, err := manifest.Build(f, name, manifest.MimeFromName(abs), chunkSize)
	if err != nil {
		return nil, fmt.Errorf("cannot share %s: %w", path, err)
	}
	// The file must not have changed while we hashed it.
	fi2, err := os.Stat(abs)
	if err != nil || fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		return nil, fmt.Errorf("cannot share %s: it changed while being read", path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shares[m.ID()] = &share{ID: m.ID().String(), Path: abs, Size: fi.Size(), ModTime: fi.ModTime(), m: m}
	if err := s.saveSharesLocked(); err != nil {
		delete(s.shares, m.ID())
		return nil, fmt.Errorf("record share: %w", err)
	}
	return m, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Unshare stops sharing id and drops it from the cache. It reports
// ErrNotShared if neither held it.
func (s *Store) Unshare(id cid.Cid) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, shared := s.shares[id]
	e, cached := s.cache[id]
	if !shared && !cached {
		return ErrNotShared
	}
	if shared {
		delete(s.shares, id)
		if err := s.saveSharesLocked(); err != nil {
			return err
		}
	}
	if cached {
		s.removeEntryLocked(e)
	}
	return nil
}

// Item is one line of List.
type Item struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	Size     int64   `json:"size"`
	Mime     string  `json:"mime"`
	Source   string  `json:"source"` // "shared" or "cache"
	Path     string  `json:"path,omitempty"`
	Have     float64 `json:"have"` // share of chunks held, 0..1
	Problem  string  `json:"problem,omitempty"`
	Complete bool    `json:"complete"`
}

// List returns what the store shares and caches, shares first, by name.
func (s *Store) List() []Item {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Item
	for _, sh := range s.shares {
		s.checkShare(sh)
		it := Item{ID: sh.ID, Name: sh.m.Name(), Size: sh.m.Size(), Mime: sh.m.Mime(), Source: "shared", Path: sh.Path, Have: 1, Complete: true}
		if sh.state != nil {
			it.Problem = sh.state.Error()
			it.Have = 0
			it.Complete = false
		}
		out = append(out, it)
	}
	for _, e := range s.cache {
		n := e.count()
		it := Item{ID: e.m.ID().String(), Name: e.m.Name(), Size: e.m.Size(), Mime: e.m.Mime(), Source: "cache",
			Have: float64(n) / float64(e.m.NumChunks()), Complete: n == e.m.NumChunks()}
		out = append(out, it)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Source != out[j].Source {
			return out[i].Source == "shared"
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Held returns the IDs this node can serve (shares in good state and cache
// entries with at least one chunk): what it announces in the DHT.
func (s *Store) Held() []cid.Cid {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []cid.Cid
	for id, sh := range s.shares {
		s.checkShare(sh)
		if sh.state == nil {
			out = append(out, id)
		}
	}
	for id, e := range s.cache {
		if _, shared := s.shares[id]; !shared && e.count() > 0 {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].KeyString() < out[j].KeyString() })
	return out
}

// Shared reports whether id is a share of this node in good state (its file
// unchanged since it was shared).
func (s *Store) Shared(id cid.Cid) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, ok := s.shares[id]
	if !ok {
		return false
	}
	s.checkShare(sh)
	return sh.state == nil
}

// Lookup returns the manifest of id if it is shared or cached here.
func (s *Store) Lookup(id cid.Cid) (*manifest.Manifest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh, ok := s.shares[id]; ok {
		if s.checkShare(sh); sh.state == nil {
			return sh.m, true
		}
	}
	if e, ok := s.cache[id]; ok {
		return e.m, true
	}
	return nil, false
}

// Manifest implements chunk.Source.
func (s *Store) Manifest(id cid.Cid) ([]byte, error) {
	m, ok := s.Lookup(id)
	if !ok {
		return nil, chunk.ErrNotFound
	}
	return m.Bytes(), nil
}

// Chunk implements chunk.Source: it reads chunk index of id from the shared
// file or the cache and verifies it before returning it.
func (s *Store) Chunk(id cid.Cid, index uint64, buf []byte) ([]byte, error) {
	s.mu.Lock()
	sh, shared := s.shares[id]
	e, cached := s.cache[id]
	if cached {
		s.clock++
		e.used = s.clock
	}
	s.mu.Unlock()
	if shared {
		data, err := s.readShare(sh, index, buf)
		if err == nil || !cached {
			return data, err
		}
	}
	if cached {
		if int(index) >= e.m.NumChunks() {
			return nil, chunk.ErrNotFound
		}
		data, ok := e.Get(int(index), buf)
		if !ok {
			return nil, chunk.ErrNotFound
		}
		return data, nil
	}
	return nil, chunk.ErrNotFound
}

func (s *Store) readShare(sh *share, index uint64, buf []byte) ([]byte, error) {
	m := sh.m
	if index >= uint64(m.NumChunks()) {
		return nil, chunk.ErrNotFound
	}
	s.mu.Lock()
	s.checkShare(sh)
	state := sh.state
	s.mu.Unlock()
	if state != nil {
		return nil, shareErr(sh, state)
	}
	f, err := os.Open(sh.Path)
	if err != nil {
		s.markShare(sh, ErrMissing)
		return nil, shareErr(sh, ErrMissing)
	}
	defer f.Close()
	n := m.ChunkLen(int(index))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := f.ReadAt(buf, m.ChunkOffset(int(index))); err != nil && !(errors.Is(err, io.EOF)) {
		return nil, fmt.Errorf("read %s: %w", sh.Path, err)
	}
	if err := m.Verify(int(index), buf); err != nil {
		s.mu.Lock()
		sh.Corrupt = true
		sh.state = ErrChanged
		_ = s.saveSharesLocked()
		s.mu.Unlock()
		return nil, shareErr(sh, ErrChanged)
	}
	return buf, nil
}

// shareErr is the error for a share that cannot be served: it names the
// problem and counts as chunk.ErrNotFound, so a peer is answered NOT_FOUND
// (this node does not hold that content any more), not INTERNAL.
func shareErr(sh *share, state error) error {
	return fmt.Errorf("%s: %w (%w)", sh.Path, state, chunk.ErrNotFound)
}

func (s *Store) markShare(sh *share, err error) {
	s.mu.Lock()
	sh.state = err
	s.mu.Unlock()
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
