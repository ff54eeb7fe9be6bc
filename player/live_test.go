package player

import (
	"errors"
	"sync"
	"testing"
	"time"
)

type recSink struct {
	mu     sync.Mutex
	chunks []Chunk
	closed bool
	err    error
	got    chan struct{}
}

func newRecSink() *recSink { return &recSink{got: make(chan struct{}, 1000)} }

func (s *recSink) Write(p []byte) error { return s.WriteChunk(Chunk{Data: p}) }
func (s *recSink) WriteChunk(c Chunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.chunks = append(s.chunks, c)
	s.got <- struct{}{}
	return nil
}
func (s *recSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *recSink) wait(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-s.got:
		case <-time.After(5 * time.Second):
			t.Fatalf("sink got %d chunks, want %d more", len(s.chunks), n)
		}
	}
}

func (s *recSink) none(t *testing.T) {
	t.Helper()
	select {
	case <-s.got:
		t.Fatal("unexpected chunk")
	case <-time.After(20 * time.Millisecond):
	}
}

func TestLiveRunnerPlaysAtDeadlines(t *testing.T) {
	clk := newFakeClock()
	sink := newRecSink()
	l := NewLive(sink, LiveOptions{Clock: clk, Jitter: JitterConfig{TargetLatency: 500 * ms}})
	base := clk.Now()
	c := func(seq uint64) Chunk {
		return Chunk{Seq: seq, Capture: base.Add(time.Duration(seq) * 100 * ms), Start: seq == 0, Data: []byte{byte(seq)}}
	}
	l.Push(c(0))
	l.Push(c(2))
	l.Push(c(1))
	sink.none(t)
	clk.Advance(499 * ms)
	sink.none(t)
	clk.Advance(1 * ms) // 500ms: chunk 0
	sink.wait(t, 1)
	clk.Advance(200 * ms) // 700ms: chunks 1, 2
	sink.wait(t, 2)
	// 3 never comes; 4 is pushed and plays at 900ms, 3 skipped.
	l.Push(c(4))
	clk.Advance(200 * ms)
	sink.wait(t, 1)
	sink.mu.Lock()
	var got []uint64
	for _, c := range sink.chunks {
		got = append(got, c.Seq)
	}
	sink.mu.Unlock()
	if !eq(got, []uint64{0, 1, 2, 4}) {
		t.Fatalf("played %v", got)
	}
	st := l.Stats()
	if st.Delivered != 4 || st.Missed != 1 || st.Startup != 500*ms {
		t.Fatalf("stats %+v", st)
	}
	// End of stream stops the goroutine.
	end := c(5)
	end.End = true
	l.Push(end)
	clk.Advance(time.Second)
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("runner did not stop at end of stream")
	}
	if err := l.Close(); err != nil || !sink.closed {
		t.Fatalf("Close: %v, sink closed %v", err, sink.closed)
	}
}

func TestLiveRunnerSinkErrorAndClose(t *testing.T) {
	clk := newFakeClock()
	sink := newRecSink()
	boom := errors.New("boom")
	sink.err = boom
	l := NewLive(sink, LiveOptions{Clock: clk})
	l.Push(Chunk{Seq: 0, Capture: clk.Now(), Start: true, Data: []byte{1}})
	clk.Advance(time.Second)
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("runner did not stop on a sink error")
	}
	if !errors.Is(l.Err(), boom) || !errors.Is(l.Close(), boom) {
		t.Fatalf("Err %v", l.Err())
	}

	// Close of an idle runner stops its goroutine (goleak checks).
	l2 := NewLive(newRecSink(), LiveOptions{})
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	l2.Close()
}

// The live path end to end with the real clock: runner -> HTTP fan-out.
func TestLiveToFanout(t *testing.T) {
	f := NewHTTPFanout(FanoutOptions{})
	w := &countingWriter{h: make(map[string][]string)}
	l := NewLive(f, LiveOptions{Jitter: JitterConfig{TargetLatency: 20 * ms}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.ServeHTTP(w, mustReq(t))
	}()
	for f.Clients() != 1 {
		time.Sleep(time.Millisecond)
	}
	now := time.Now()
	for k := range uint64(10) {
		l.Push(Chunk{Seq: k, Capture: now.Add(time.Duration(k) * ms), Start: k == 0, Data: make([]byte, 188)})
	}
	for deadline := time.Now().Add(5 * time.Second); w.bytes() < 10*188; {
		if time.Now().After(deadline) {
			t.Fatalf("client got %d bytes", w.bytes())
		}
		time.Sleep(time.Millisecond)
	}
	l.Close() // closes the fan-out, which ends the response
	<-done
}
