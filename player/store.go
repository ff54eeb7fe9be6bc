package player

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
)

// ChunkStore holds the verified chunks of one file. Implementations must be
// safe for concurrent use. The node's disk store implements it too.
type ChunkStore interface {
	// Get returns chunk i, or false if it is not held. The returned slice may
	// alias buf (when cap(buf) suffices, a disk store reads into it) or the
	// store's own memory; the caller must not modify it.
	Get(i int, buf []byte) ([]byte, bool)
	// Put stores chunk i. The store must not keep a reference to data after
	// returning (it copies).
	Put(i int, data []byte) error
	// Has reports whether chunk i is held.
	Has(i int) bool
	// Delete forgets chunk i; deleting a chunk not held is a no-op.
	Delete(i int)
}

// PlayheadObserver is implemented by stores that evict according to where
// readers are (MemWindow). VOD calls SetPlayheads, with the chunk index of
// every open reader, whenever that set changes.
type PlayheadObserver interface {
	SetPlayheads(chunks []int)
}

// ErrFull is returned by MemWindow.Put when the window is full and the chunk
// offered is itself the one farthest from every playhead: it is not stored.
// The download scheduler should not fetch more than the window's capacity
// ahead of the playheads.
var ErrFull = errors.New("player: chunk window full")

// MemWindow is a bounded in-memory ChunkStore for playing without storing
// (--no-store). It holds at most Capacity chunks. Once every reader has read
// past a chunk (all playheads are beyond it) the chunk is dropped. A Put into a
// full window evicts the held chunk farthest ahead of its nearest playhead
// (chunks behind every playhead first); if the new chunk is the farthest, it
// is refused with ErrFull.
type MemWindow struct {
	capacity int

	mu        sync.Mutex
	chunks    map[int][]byte
	playheads []int // sorted ascending
	evicted   uint64
}

// NewMemWindow returns a window that holds at most capacity (>= 1) chunks.
func NewMemWindow(capacity int) *MemWindow {
	if capacity < 1 {
		capacity = 1
	}
	return &MemWindow{capacity: capacity, chunks: make(map[int][]byte, capacity)}
}

// Capacity returns the most chunks the window holds.
func (m *MemWindow) Capacity() int { return m.capacity }

// Len returns the number of chunks held.
func (m *MemWindow) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.chunks)
}

// Evicted returns how many chunks were evicted or refused for lack of room
// (not counting chunks dropped because every reader had passed them).
func (m *MemWindow) Evicted() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.evicted
}

// Get implements ChunkStore. The slice returned is the window's own copy.
func (m *MemWindow) Get(i int, _ []byte) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.chunks[i]
	return d, ok
}

// Has implements ChunkStore.
func (m *MemWindow) Has(i int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.chunks[i]
	return ok
}

// Delete implements ChunkStore.
func (m *MemWindow) Delete(i int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.chunks, i)
}

// Put implements ChunkStore.
func (m *MemWindow) Put(i int, data []byte) error {
	if i < 0 {
		return fmt.Errorf("player: chunk index %d out of range", i)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.chunks[i]; ok {
		return nil
	}
	if len(m.playheads) > 0 && i < m.playheads[0] {
		// Every reader is past it already: nobody will read it.
		return nil
	}
	if len(m.chunks) >= m.capacity {
		victim, vd := -1, int64(-1)
		for j := range m.chunks {
			d := m.distance(j)
			if d > vd || (d == vd && j > victim) {
				victim, vd = j, d
			}
		}
		if d := m.distance(i); d > vd || (d == vd && i > victim) {
			m.evicted++
			return ErrFull
		}
		delete(m.chunks, victim)
		m.evicted++
	}
	m.chunks[i] = append([]byte(nil), data...)
	return nil
}

// distance is how far chunk j lies ahead of the nearest playhead at or before
// it; a chunk behind every playhead is infinitely far. With no readers the
// distance is from chunk 0.
func (m *MemWindow) distance(j int) int64 {
	if len(m.playheads) == 0 {
		return int64(j)
	}
	best := int64(math.MaxInt64)
	for _, p := range m.playheads {
		if p > j {
			break
		}
		best = int64(j - p)
	}
	return best
}

// SetPlayheads implements PlayheadObserver: chunks before the lowest playhead
// are dropped.
func (m *MemWindow) SetPlayheads(chunks []int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.playheads = append(m.playheads[:0], chunks...)
	slices.Sort(m.playheads)
	if len(m.playheads) == 0 {
		return
	}
	low := m.playheads[0]
	for j := range m.chunks {
		if j < low {
			delete(m.chunks, j)
		}
	}
}
