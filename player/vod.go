package player

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// ErrClosed is returned by operations on a closed VOD or Reader.
var ErrClosed = errors.New("player: closed")

// VODOptions configures a VOD. The zero value is usable.
type VODOptions struct {
	// OnWant, if set, is called as soon as a reader needs chunk i and the
	// store does not hold it: when a Read has to wait for it, typically
	// right after a seek (or after a bounded store dropped it). It is called once per reader per wait (not again while the
	// same reader keeps waiting for the same chunk), from the reader's
	// goroutine, with no lock held; it must not block for long. The scheduler
	// should fetch chunk i (and what follows it) first.
	OnWant func(chunk int)
	// Name and MIME are used by ServeHTTP (Content-Type; default
	// application/octet-stream). ModTime, if set, enables If-Range /
	// If-Modified-Since handling.
	Name    string
	MIME    string
	ModTime time.Time
}

// VOD is one file being played while it downloads: verified chunks arrive in
// any order through Put and any number of Readers read it as a byte stream.
// It is safe for concurrent use.
type VOD struct {
	size      int64
	chunkSize int
	nchunks   int
	store     ChunkStore
	opts      VODOptions

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every Put and on Close
	closed  bool
	readers map[*Reader]struct{}
	nextID  uint64
}

// NewVOD returns a VOD for a file of size bytes cut into chunks of chunkSize
// bytes (the last may be shorter), held in store. The store may already hold
// chunks (a resumed download).
func NewVOD(size int64, chunkSize int, store ChunkStore, opts VODOptions) (*VOD, error) {
	if size < 0 || chunkSize <= 0 || store == nil {
		return nil, fmt.Errorf("player: bad VOD geometry (size %d, chunk size %d)", size, chunkSize)
	}
	n := int((size + int64(chunkSize) - 1) / int64(chunkSize))
	return &VOD{
		size:      size,
		chunkSize: chunkSize,
		nchunks:   n,
		store:     store,
		opts:      opts,
		changed:   make(chan struct{}),
		readers:   make(map[*Reader]struct{}),
	}, nil
}

// Size returns the file size in bytes.
func (v *VOD) Size() int64 { return v.size }

// ChunkSize returns the chunk size in bytes.
func (v *VOD) ChunkSize() int { return v.chunkSize }

// NumChunks returns the number of chunks.
func (v *VOD) NumChunks() int { return v.nchunks }

// chunkLen is the length of chunk i.
func (v *VOD) chunkLen(i int) int {
	if i == v.nchunks-1 {
		return int(v.size - int64(i)*int64(v.chunkSize))
	}
	return v.chunkSize
}

// Put stores chunk i, which the caller has verified, and wakes the readers
// waiting for it. Putting a chunk already held is a no-op.
func (v *VOD) Put(i int, data []byte) error {
	if i < 0 || i >= v.nchunks {
		return fmt.Errorf("player: chunk %d out of range [0,%d)", i, v.nchunks)
	}
	if len(data) != v.chunkLen(i) {
		return fmt.Errorf("player: chunk %d has %d bytes, want %d", i, len(data), v.chunkLen(i))
	}
	v.mu.Lock()
	closed := v.closed
	v.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := v.store.Put(i, data); err != nil {
		return fmt.Errorf("player: store chunk %d: %w", i, err)
	}
	v.mu.Lock()
	v.wakeLocked()
	v.mu.Unlock()
	return nil
}

func (v *VOD) wakeLocked() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// Has reports whether chunk i is held.
func (v *VOD) Has(i int) bool { return v.store.Has(i) }

// Close closes the VOD and every reader; blocked Reads return ErrClosed.
// The store is not closed.
func (v *VOD) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil
	}
	v.closed = true
	for r := range v.readers {
		r.closed = true
	}
	clear(v.readers)
	v.wakeLocked()
	v.observeLocked()
	return nil
}

// Playhead describes one open reader.
type Playhead struct {
	ID     uint64 // reader ID, unique within the VOD
	Offset int64  // byte offset of the next Read
	Chunk  int    // chunk of Offset (NumChunks at the end of the file)
	// Ahead is how many bytes from Offset onward are present without a gap.
	Ahead int64
}

// Playheads returns every open reader's position, ordered by ID.
func (v *VOD) Playheads() []Playhead {
	v.mu.Lock()
	ps := make([]Playhead, 0, len(v.readers))
	for r := range v.readers {
		ps = append(ps, Playhead{ID: r.id, Offset: r.off, Chunk: v.chunkOf(r.off)})
	}
	v.mu.Unlock()
	slices.SortFunc(ps, func(a, b Playhead) int { return cmp.Compare(a.ID, b.ID) })
	for i := range ps {
		ps[i].Ahead = v.ahead(ps[i].Offset)
	}
	return ps
}

func (v *VOD) chunkOf(off int64) int {
	if off >= v.size {
		return v.nchunks
	}
	return int(off / int64(v.chunkSize))
}

// ahead is the number of bytes present from off onward without a gap.
func (v *VOD) ahead(off int64) int64 {
	if off >= v.size {
		return 0
	}
	i := v.chunkOf(off)
	end := int64(i) * int64(v.chunkSize)
	for ; i < v.nchunks && v.store.Has(i); i++ {
		end += int64(v.chunkLen(i))
	}
	return max(end-off, 0)
}

// observeLocked tells a PlayheadObserver store where the readers are.
func (v *VOD) observeLocked() {
	o, ok := v.store.(PlayheadObserver)
	if !ok {
		return
	}
	chunks := make([]int, 0, len(v.readers))
	for r := range v.readers {
		// A reader at the end (often just probing the size with
		// Seek(0, io.SeekEnd)) holds nothing back.
		if r.off < v.size {
			chunks = append(chunks, v.chunkOf(r.off))
		}
	}
	o.SetPlayheads(chunks)
}

// NewReader returns a reader positioned at offset 0. Its Reads fail once ctx
// is done. Close it when done; closing the VOD closes it too.
func (v *VOD) NewReader(ctx context.Context) *Reader {
	r := &Reader{v: v, ctx: ctx, wanted: -1, cachedIdx: -1, done: make(chan struct{})}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.nextID++
	r.id = v.nextID
	if v.closed {
		r.closed = true
		close(r.done)
		return r
	}
	v.readers[r] = struct{}{}
	v.observeLocked()
	return r
}

// Reader reads a VOD as a byte stream: an io.ReadSeekCloser whose Read blocks
// until the bytes at its offset are present. Read and Seek must not be called
// concurrently with each other; Close may be called at any time and makes a
// blocked Read return.
type Reader struct {
	v   *VOD
	ctx context.Context
	id  uint64
	buf []byte

	// the last chunk got from the store (it may alias buf); used only by Read
	cached    []byte
	cachedIdx int

	// guarded by v.mu
	off    int64
	closed bool
	wanted int // chunk announced through OnWant and not yet read from; -1 none

	closeOnce sync.Once
	done      chan struct{}
}

// ID returns the reader's ID (Playhead.ID).
func (r *Reader) ID() uint64 { return r.id }

// Offset returns the offset of the next Read.
func (r *Reader) Offset() int64 {
	r.v.mu.Lock()
	defer r.v.mu.Unlock()
	return r.off
}

// BufferedAhead returns how many bytes from the reader's offset onward are
// present without a gap: how long it can read without waiting.
func (r *Reader) BufferedAhead() int64 {
	return r.v.ahead(r.Offset())
}

// Read implements io.Reader. It blocks until at least one byte at the
// reader's offset is present, then returns as many contiguous present bytes
// as fit. It returns io.EOF at the end of the file, ctx.Err() once the
// reader's context is done and ErrClosed once the reader or VOD is closed.
func (r *Reader) Read(p []byte) (int, error) {
	v := r.v
	for {
		v.mu.Lock()
		if r.closed {
			v.mu.Unlock()
			return 0, ErrClosed
		}
		off, changed := r.off, v.changed
		v.mu.Unlock()
		if err := r.ctx.Err(); err != nil {
			return 0, err
		}
		if off >= v.size {
			return 0, io.EOF
		}
		if len(p) == 0 {
			return 0, nil
		}
		n := r.copyPresent(p, off)
		if n > 0 {
			r.advance(off, off+int64(n))
			return n, nil
		}
		// Chunk missing: tell the scheduler once, then wait for a Put.
		r.want(v.chunkOf(off))
		select {
		case <-changed:
		case <-r.done:
		case <-r.ctx.Done():
		}
	}
}

// copyPresent copies present bytes from off into p, crossing chunk
// boundaries while the next chunk is present.
func (r *Reader) copyPresent(p []byte, off int64) int {
	v := r.v
	n := 0
	for n < len(p) && off < v.size {
		i := v.chunkOf(off)
		if r.buf == nil {
			r.buf = make([]byte, 0, v.chunkSize)
		}
		data, ok := r.cached, r.cachedIdx == i && r.cached != nil
		if !ok {
			// Verified chunks never change, so the last one is kept for the
			// next Reads (a disk store is then read once per chunk).
			r.cached, r.cachedIdx = nil, -1
			data, ok = v.store.Get(i, r.buf[:0])
			if !ok {
				break
			}
			r.cached, r.cachedIdx = data, i
		}
		start := int(off - int64(i)*int64(v.chunkSize))
		if start >= len(data) { // a store returning a short chunk; treat as missing
			break
		}
		c := copy(p[n:], data[start:])
		n += c
		off += int64(c)
	}
	return n
}

func (r *Reader) advance(from, to int64) {
	v := r.v
	v.mu.Lock()
	defer v.mu.Unlock()
	if r.closed || r.off != from {
		return
	}
	r.off = to
	r.wanted = -1
	if v.chunkOf(from) != v.chunkOf(to) {
		v.observeLocked()
	}
}

// want calls OnWant(i) unless this reader already announced i.
func (r *Reader) want(i int) {
	v := r.v
	v.mu.Lock()
	fire := !r.closed && r.wanted != i && v.opts.OnWant != nil
	if fire {
		r.wanted = i
	}
	v.mu.Unlock()
	if fire {
		v.opts.OnWant(i)
	}
}

// Seek implements io.Seeker. The new position shows in Playheads at once;
// OnWant is called by the first Read there if its chunk is missing (not by
// Seek itself: players probe with seeks they never read from, e.g. the
// Seek(0, io.SeekStart) of http.ServeContent and VLC). Seeking past the end
// is allowed (Read then returns io.EOF).
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	v := r.v
	v.mu.Lock()
	if r.closed {
		v.mu.Unlock()
		return 0, ErrClosed
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		abs = v.size + offset
	default:
		v.mu.Unlock()
		return 0, fmt.Errorf("player: seek: bad whence %d", whence)
	}
	if abs < 0 {
		v.mu.Unlock()
		return 0, fmt.Errorf("player: seek to negative offset %d", abs)
	}
	old := r.off
	r.off = abs
	if v.chunkOf(old) != v.chunkOf(abs) {
		r.wanted = -1
		v.observeLocked()
	}
	v.mu.Unlock()
	return abs, nil
}

// Close releases the reader; a blocked Read returns ErrClosed.
func (r *Reader) Close() error {
	r.closeOnce.Do(func() {
		v := r.v
		v.mu.Lock()
		r.closed = true
		if _, ok := v.readers[r]; ok {
			delete(v.readers, r)
			v.observeLocked()
		}
		v.mu.Unlock()
		select {
		case <-r.done:
		default:
			close(r.done)
		}
	})
	return nil
}

// ServeHTTP serves the file with full Range support (http.ServeContent) from
// a fresh Reader per request, which is closed when the request ends or the
// client goes away. A range over chunks not yet present blocks until they
// arrive (and calls OnWant at once).
func (v *VOD) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	mime := v.opts.MIME
	if mime == "" {
		mime = "application/octet-stream"
	}
	// Set before ServeContent so that it does not read the content to sniff.
	w.Header().Set("Content-Type", mime)
	w.Header().Set("Accept-Ranges", "bytes")
	r := v.NewReader(req.Context())
	defer r.Close()
	http.ServeContent(w, req, v.opts.Name, v.opts.ModTime, r)
}
