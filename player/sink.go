package player

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// Sink receives the bytes of a stream, in order.
type Sink interface {
	// Write writes all of p or returns an error.
	Write(p []byte) error
	Close() error
}

// ChunkSink is a Sink that wants whole live chunks, to know the start points.
type ChunkSink interface {
	Sink
	WriteChunk(c Chunk) error
}

// FileSink writes a stream to a file or to stdout. After the first error every
// Write returns it.
type FileSink struct {
	name   string
	w      io.Writer
	f      *os.File // nil for a plain writer
	closeF bool

	mu  sync.Mutex
	err error
}

// CreateFileSink creates (truncates) the file name; "-" means stdout, which
// Close leaves open.
func CreateFileSink(name string) (*FileSink, error) {
	if name == "-" {
		return &FileSink{name: "stdout", w: os.Stdout, f: os.Stdout}, nil
	}
	f, err := os.Create(name)
	if err != nil {
		return nil, fmt.Errorf("player: %w", err)
	}
	return &FileSink{name: name, w: f, f: f, closeF: true}, nil
}

// NewWriterSink writes to w; name is used in error messages. Close does not
// close w.
func NewWriterSink(w io.Writer, name string) *FileSink {
	return &FileSink{name: name, w: w}
}

// Write implements Sink.
func (s *FileSink) Write(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	n, err := s.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		s.err = s.wrap("write", err)
	}
	return s.err
}

func (s *FileSink) wrap(op string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("player: %s %s: disk full: %w", op, s.name, err)
	case errors.Is(err, syscall.EPIPE):
		return fmt.Errorf("player: %s %s: reader went away: %w", op, s.name, err)
	}
	return fmt.Errorf("player: %s %s: %w", op, s.name, err)
}

// Close implements Sink: it syncs a file and closes it (not stdout).
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	f := s.f
	s.f = nil
	if !s.closeF {
		return nil
	}
	err := f.Close()
	if err != nil {
		err = s.wrap("close", err)
		if s.err == nil {
			s.err = err
		}
	}
	if s.err == nil {
		s.err = fmt.Errorf("player: %s: %w", s.name, os.ErrClosed)
	}
	return err
}

// FanoutOptions configures an HTTPFanout. Zero fields take defaults.
type FanoutOptions struct {
	// QueueLen is how many chunks may wait for one client beyond those it got
	// at start; a client that falls further behind is dropped. Default 64.
	QueueLen int
	// MaxCache bounds the bytes kept since the last start point, which a new
	// client gets first. Default 16 MiB.
	MaxCache int
	// WriteTimeout bounds each write to a client's connection. Default 10s.
	WriteTimeout time.Duration
}

// HTTPFanout is a live Sink and an http.Handler: each GET gets the stream
// (MPEG-TS, chunked) starting at the most recent start point, then follows
// it live. Any number of clients; one that cannot keep up is dropped instead
// of stalling the others.
type HTTPFanout struct {
	opts FanoutOptions

	mu         sync.Mutex
	clients    map[*fanClient]struct{}
	cache      []Chunk // from the last start point
	cacheBytes int
	closed     bool
	dropped    uint64

	done chan struct{}
}

type fanClient struct {
	q       chan []byte
	gone    chan struct{} // closed when dropped
	started bool
}

// NewHTTPFanout returns an empty fan-out.
func NewHTTPFanout(opts FanoutOptions) *HTTPFanout {
	if opts.QueueLen <= 0 {
		opts.QueueLen = 64
	}
	if opts.MaxCache <= 0 {
		opts.MaxCache = 16 << 20
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	return &HTTPFanout{opts: opts, clients: make(map[*fanClient]struct{}), done: make(chan struct{})}
}

// WriteChunk implements ChunkSink. It never blocks on a client.
func (f *HTTPFanout) WriteChunk(c Chunk) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	if c.Start {
		f.cache, f.cacheBytes = f.cache[:0], 0
	}
	if c.Start || len(f.cache) > 0 {
		f.cache = append(f.cache, c)
		f.cacheBytes += len(c.Data)
		if f.cacheBytes > f.opts.MaxCache {
			f.cache, f.cacheBytes = nil, 0
		}
	}
	if len(c.Data) == 0 {
		return nil
	}
	for cl := range f.clients {
		if !cl.started {
			if !c.Start {
				continue
			}
			cl.started = true
		}
		select {
		case cl.q <- c.Data:
		default: // too slow: drop it
			delete(f.clients, cl)
			close(cl.gone)
			f.dropped++
		}
	}
	return nil
}

// Write implements Sink: p is a chunk that is not a start point.
func (f *HTTPFanout) Write(p []byte) error { return f.WriteChunk(Chunk{Data: p}) }

// Close disconnects every client; later requests get 503.
func (f *HTTPFanout) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.done)
		clear(f.clients)
		f.cache = nil
	}
	return nil
}

// Clients returns the number of clients connected.
func (f *HTTPFanout) Clients() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.clients)
}

// Dropped returns how many clients were dropped for being too slow.
func (f *HTTPFanout) Dropped() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropped
}

// ServeHTTP implements http.Handler.
func (f *HTTPFanout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		http.Error(w, "stream ended", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "video/mp2t")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		f.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		return
	}
	cl := &fanClient{
		q:    make(chan []byte, f.opts.QueueLen+len(f.cache)),
		gone: make(chan struct{}),
	}
	for _, c := range f.cache {
		if len(c.Data) > 0 {
			cl.q <- c.Data
		}
	}
	cl.started = len(f.cache) > 0
	f.clients[cl] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.clients, cl)
		f.mu.Unlock()
	}()

	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	for {
		select {
		case p := <-cl.q:
			_ = rc.SetWriteDeadline(time.Now().Add(f.opts.WriteTimeout))
			if _, err := w.Write(p); err != nil {
				return
			}
			if len(cl.q) == 0 {
				if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
					return
				}
			}
		case <-cl.gone:
			return
		case <-f.done:
			return
		case <-r.Context().Done():
			return
		}
	}
}
