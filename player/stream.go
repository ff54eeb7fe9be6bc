package player

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// errNotSeekable is returned by the seeks a live stream cannot do.
var errNotSeekable = errors.New("player: live stream is not seekable")

// NonSeekable wraps a live reader as an io.ReadSeeker for players that insist
// on one (libVLC's reader media): Seek(0, io.SeekEnd) fails (size unknown),
// a seek to the current position (Seek(0, io.SeekStart) before the first
// Read, Seek(0, io.SeekCurrent)) succeeds, any other seek fails. Read never
// returns (0, nil) for a non-empty buffer.
func NonSeekable(r io.Reader) io.ReadSeeker { return &nonSeekable{r: r} }

type nonSeekable struct {
	r   io.Reader
	pos int64
}

func (s *nonSeekable) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		s.pos += int64(n)
		if n > 0 || err != nil || len(p) == 0 {
			return n, err
		}
	}
}

func (s *nonSeekable) Seek(offset int64, whence int) (int64, error) {
	switch {
	case whence == io.SeekStart && offset == s.pos,
		whence == io.SeekCurrent && offset == 0:
		return s.pos, nil
	}
	return s.pos, errNotSeekable
}

// StreamReader is a live ChunkSink that a player reads as an io.Reader (for
// example libVLC through NonSeekable). Writes never block: it holds at most
// MaxBytes; when the reader falls further behind, what is queued is
// discarded and the stream resumes at the next start point (counted in
// Overruns). Read blocks until data arrives and returns io.EOF once the
// stream is closed and drained.
type StreamReader struct {
	maxBytes int

	mu       sync.Mutex
	q        [][]byte
	head     int // bytes of q[0] already read
	bytes    int
	waitFor  bool // discarding until the next start point
	closed   bool
	overruns uint64
	avail    chan struct{} // closed and replaced when data arrives or on Close
}

// NewStreamReader returns an empty stream buffering at most maxBytes
// (default 16 MiB if <= 0).
func NewStreamReader(maxBytes int) *StreamReader {
	if maxBytes <= 0 {
		maxBytes = 16 << 20
	}
	return &StreamReader{maxBytes: maxBytes, avail: make(chan struct{})}
}

// WriteChunk implements ChunkSink.
func (s *StreamReader) WriteChunk(c Chunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("player: write to stream: %w", ErrClosed)
	}
	if s.waitFor && !c.Start {
		return nil
	}
	s.waitFor = false
	if len(c.Data) == 0 {
		return nil
	}
	if s.bytes+len(c.Data) > s.maxBytes {
		s.q, s.head, s.bytes = nil, 0, 0
		s.overruns++
		if !c.Start {
			s.waitFor = true
			return nil
		}
	}
	s.q = append(s.q, c.Data)
	s.bytes += len(c.Data)
	close(s.avail)
	s.avail = make(chan struct{})
	return nil
}

// Write implements Sink: p continues the stream (not a start point).
func (s *StreamReader) Write(p []byte) error { return s.WriteChunk(Chunk{Data: p}) }

// Close ends the stream: Read returns what is queued, then io.EOF.
func (s *StreamReader) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.avail)
	}
	return nil
}

// Overruns returns how many times the reader fell behind by more than
// MaxBytes.
func (s *StreamReader) Overruns() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overruns
}

// Read implements io.Reader.
func (s *StreamReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		s.mu.Lock()
		if len(s.q) > 0 {
			n := 0
			for n < len(p) && len(s.q) > 0 {
				c := copy(p[n:], s.q[0][s.head:])
				n += c
				s.head += c
				if s.head == len(s.q[0]) {
					s.q[0] = nil
					s.q, s.head = s.q[1:], 0
				}
			}
			s.bytes -= n
			s.mu.Unlock()
			return n, nil
		}
		if s.closed {
			s.mu.Unlock()
			return 0, io.EOF
		}
		avail := s.avail
		s.mu.Unlock()
		<-avail
	}
}
