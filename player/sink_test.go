package player

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestFileSink(t *testing.T) {
	name := filepath.Join(t.TempDir(), "out.ts")
	s, err := CreateFileSink(name)
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("hello "))
	s.Write([]byte("world"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(name); string(b) != "hello world" {
		t.Fatalf("file holds %q", b)
	}
	if err := s.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	if _, err := CreateFileSink(filepath.Join(t.TempDir(), "no", "such", "dir")); err == nil {
		t.Fatal("created a file in a missing directory")
	}
}

func TestFileSinkDiskFull(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full:", err)
	}
	defer f.Close()
	s := NewWriterSink(f, "/dev/full")
	err = s.Write(make([]byte, 188))
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Write to a full disk: %v", err)
	}
	if err2 := s.Write([]byte{1}); err2 != err {
		t.Fatalf("error not sticky: %v", err2)
	}
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestFileSinkShortWrite(t *testing.T) {
	if err := NewWriterSink(shortWriter{}, "w").Write([]byte("abcd")); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("short write: %v", err)
	}
}

func tsChunk(seq uint64, start bool, n int) Chunk {
	return Chunk{Seq: seq, Start: start, Data: bytes.Repeat([]byte{byte(seq)}, n)}
}

func TestHTTPFanoutClients(t *testing.T) {
	f := NewHTTPFanout(FanoutOptions{})
	srv := httptest.NewServer(f)
	defer srv.Close()
	defer f.Close()

	open := func() (*http.Response, *bufio.Reader) {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
			t.Fatalf("transfer encoding %v, want chunked", resp.TransferEncoding)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/mp2t" {
			t.Fatalf("%v %q", resp.Status, resp.Header.Get("Content-Type"))
		}
		return resp, bufio.NewReader(resp.Body)
	}
	expect := func(r *bufio.Reader, seqs ...uint64) {
		t.Helper()
		for _, s := range seqs {
			b := make([]byte, 10)
			if _, err := io.ReadFull(r, b); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, tsChunk(s, false, 10).Data) {
				t.Fatalf("got chunk %d, want %d", b[0], s)
			}
		}
	}
	waitClients := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); f.Clients() != n; {
			if time.Now().After(deadline) {
				t.Fatalf("%d clients, want %d", f.Clients(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}

	// A client before any start point waits for one.
	respA, a := open()
	defer respA.Body.Close()
	waitClients(1)
	f.WriteChunk(tsChunk(1, false, 10))
	f.WriteChunk(tsChunk(2, true, 10))
	f.WriteChunk(tsChunk(3, false, 10))
	expect(a, 2, 3)
	// A client joining mid-GOP starts at the last start point.
	respB, b := open()
	defer respB.Body.Close()
	expect(b, 2, 3)
	f.WriteChunk(tsChunk(4, false, 10))
	f.WriteChunk(tsChunk(5, true, 10))
	expect(a, 4, 5)
	expect(b, 4, 5)
	respC, c := open()
	expect(c, 5)
	// A client going away is removed.
	respC.Body.Close()
	waitClients(2)
	// Close ends every response.
	f.Close()
	if _, err := io.ReadAll(a); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after Close: %v", resp.Status)
	}
}

// blockingWriter is a ResponseWriter whose Write blocks until released: a
// client that does not read.
type blockingWriter struct {
	h       http.Header
	release chan struct{}
}

func (w *blockingWriter) Header() http.Header { return w.h }
func (w *blockingWriter) WriteHeader(int)     {}
func (w *blockingWriter) Write(p []byte) (int, error) {
	<-w.release
	return len(p), nil
}

type countingWriter struct {
	h  http.Header
	mu sync.Mutex
	n  int
}

func (w *countingWriter) Header() http.Header { return w.h }
func (w *countingWriter) WriteHeader(int)     {}
func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += len(p)
	return len(p), nil
}
func (w *countingWriter) Flush() {}
func (w *countingWriter) bytes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func TestHTTPFanoutDropsSlowClient(t *testing.T) {
	f := NewHTTPFanout(FanoutOptions{QueueLen: 4})
	defer f.Close()
	slow := &blockingWriter{h: http.Header{}, release: make(chan struct{})}
	fast := &countingWriter{h: http.Header{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/", nil)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); f.ServeHTTP(slow, req) }()
	go func() { defer wg.Done(); f.ServeHTTP(fast, req) }()
	for f.Clients() != 2 {
		time.Sleep(time.Millisecond)
	}
	const n = 100
	for k := range uint64(n) {
		if err := f.WriteChunk(tsChunk(k, k%10 == 0, 188)); err != nil {
			t.Fatal(err)
		}
		// Let the fast client keep up; the slow one is stuck in its first Write.
		for fast.bytes() < int(k+1)*188 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	if f.Dropped() != 1 || f.Clients() != 1 {
		t.Fatalf("dropped %d clients %d", f.Dropped(), f.Clients())
	}
	close(slow.release) // its handler returns after the blocked Write
	cancel()
	wg.Wait()
	if fast.bytes() != n*188 {
		t.Fatalf("fast client got %d bytes", fast.bytes())
	}
}

func mustReq(t *testing.T) *http.Request {
	return httptest.NewRequest("GET", "/", nil)
}
