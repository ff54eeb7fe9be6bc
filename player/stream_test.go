package player

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

func TestNonSeekable(t *testing.T) {
	s := NonSeekable(iotest.HalfReader(bytes.NewReader([]byte("abcdef"))))
	if _, err := s.Seek(0, io.SeekEnd); err == nil {
		t.Fatal("Seek(0, End) succeeded on a live stream")
	}
	if off, err := s.Seek(0, io.SeekStart); off != 0 || err != nil {
		t.Fatalf("Seek(0, Start) = %d, %v", off, err)
	}
	b := make([]byte, 2)
	io.ReadFull(s, b)
	if off, err := s.Seek(0, io.SeekCurrent); off != 2 || err != nil {
		t.Fatal(off, err)
	}
	if _, err := s.Seek(0, io.SeekStart); err == nil {
		t.Fatal("rewinding a live stream succeeded")
	}
	if off, err := s.Seek(2, io.SeekStart); off != 2 || err != nil {
		t.Fatal(off, err)
	}
}

func TestStreamReader(t *testing.T) {
	s := NewStreamReader(10)
	got := readAllAsync(s)
	time.Sleep(5 * time.Millisecond)
	s.WriteChunk(Chunk{Start: true, Data: []byte("0123")})
	s.WriteChunk(Chunk{Data: []byte("4567")})
	time.Sleep(5 * time.Millisecond) // let the reader drain
	s.Close()
	if r := <-got; r.err != nil || string(r.b) != "01234567" {
		t.Fatalf("%q %v", r.b, r.err)
	}
	if err := s.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}

	// Overrun: a reader that does not read loses the queue and resumes at
	// the next start point.
	s = NewStreamReader(10)
	s.WriteChunk(Chunk{Start: true, Data: []byte("aaaa")})
	s.WriteChunk(Chunk{Data: []byte("bbbb")})
	s.WriteChunk(Chunk{Data: []byte("cccc")}) // overrun: all dropped
	s.WriteChunk(Chunk{Data: []byte("dddd")}) // still waiting for a start point
	s.WriteChunk(Chunk{Start: true, Data: []byte("eeee")})
	s.Close()
	if b, err := io.ReadAll(s); err != nil || string(b) != "eeee" || s.Overruns() != 1 {
		t.Fatalf("%q %v overruns %d", b, err, s.Overruns())
	}
}
