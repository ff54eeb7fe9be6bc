package player

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func testData(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

func chunkOf(data []byte, cs, i int) []byte {
	end := min((i+1)*cs, len(data))
	return data[i*cs : end]
}

func newTestVOD(t testing.TB, data []byte, cs int, store ChunkStore, opts VODOptions) *VOD {
	t.Helper()
	if store == nil {
		store = newMapStore()
	}
	v, err := NewVOD(int64(len(data)), cs, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// readResult reads r to the end in a goroutine.
func readAllAsync(r io.Reader) <-chan readRes {
	ch := make(chan readRes, 1)
	go func() {
		b, err := io.ReadAll(r)
		ch <- readRes{b, err}
	}()
	return ch
}

type readRes struct {
	b   []byte
	err error
}

func TestVODShuffledPutsSeveralReaders(t *testing.T) {
	data := testData(100_003)
	const cs = 1000
	v := newTestVOD(t, data, cs, nil, VODOptions{})
	const nr = 4
	var res []<-chan readRes
	for range nr {
		r := v.NewReader(context.Background())
		defer r.Close()
		res = append(res, readAllAsync(r))
	}
	order := rand.New(rand.NewPCG(3, 4)).Perm(v.NumChunks())
	for _, i := range order {
		if err := v.Put(i, chunkOf(data, cs, i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range res {
		got := <-ch
		if got.err != nil || !bytes.Equal(got.b, data) {
			t.Fatalf("reader: err %v, %d bytes, equal %v", got.err, len(got.b), bytes.Equal(got.b, data))
		}
	}
}

func TestVODPutValidation(t *testing.T) {
	data := testData(2500)
	v := newTestVOD(t, data, 1000, nil, VODOptions{})
	if v.NumChunks() != 3 {
		t.Fatalf("NumChunks = %d", v.NumChunks())
	}
	if err := v.Put(3, data[:500]); err == nil {
		t.Error("Put out of range succeeded")
	}
	if err := v.Put(2, data[:1000]); err == nil {
		t.Error("Put of a too-long last chunk succeeded")
	}
	if err := v.Put(0, data[:999]); err == nil {
		t.Error("Put of a short chunk succeeded")
	}
	if err := v.Put(2, data[2000:]); err != nil || !v.Has(2) {
		t.Errorf("Put last chunk: %v, Has %v", err, v.Has(2))
	}
	v.Close()
	if err := v.Put(0, data[:1000]); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close: %v", err)
	}
}

func TestReaderBlocksAndUnblocks(t *testing.T) {
	data := testData(3000)
	v := newTestVOD(t, data, 1000, nil, VODOptions{})

	// ctx cancel
	ctx, cancel := context.WithCancel(context.Background())
	r := v.NewReader(ctx)
	ch := readAllAsync(r)
	select {
	case got := <-ch:
		t.Fatalf("Read returned before any data: %v", got.err)
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	if got := <-ch; !errors.Is(got.err, context.Canceled) {
		t.Fatalf("after cancel: %v", got.err)
	}
	r.Close()

	// reader Close
	r = v.NewReader(context.Background())
	ch = readAllAsync(r)
	r.Close()
	if got := <-ch; !errors.Is(got.err, ErrClosed) {
		t.Fatalf("after reader Close: %v", got.err)
	}

	// VOD Close, with partial data read first
	r = v.NewReader(context.Background())
	defer r.Close()
	if err := v.Put(0, data[:1000]); err != nil {
		t.Fatal(err)
	}
	ch = readAllAsync(r)
	time.Sleep(10 * time.Millisecond)
	v.Close()
	got := <-ch
	if !errors.Is(got.err, ErrClosed) || !bytes.Equal(got.b, data[:1000]) {
		t.Fatalf("after VOD Close: %v, %d bytes", got.err, len(got.b))
	}
	if len(v.Playheads()) != 0 {
		t.Fatal("playheads left after Close")
	}
}

func TestReaderNeverReturnsZeroNil(t *testing.T) {
	data := testData(10_000)
	v := newTestVOD(t, data, 100, nil, VODOptions{})
	r := v.NewReader(context.Background())
	defer r.Close()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 333)
		var total int
		for {
			n, err := r.Read(buf)
			if n == 0 && err == nil {
				done <- errors.New("Read returned (0, nil)")
				return
			}
			total += n
			if err == io.EOF {
				if total != len(data) {
					err = fmt.Errorf("EOF after %d bytes", total)
				} else {
					err = nil
				}
				done <- err
				return
			}
			if err != nil {
				done <- err
				return
			}
		}
	}()
	for _, i := range rand.New(rand.NewPCG(5, 6)).Perm(v.NumChunks()) {
		v.Put(i, chunkOf(data, 100, i))
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSeekOnWantAndPlayheads(t *testing.T) {
	data := testData(10_000)
	wants := make(chan int, 16)
	v := newTestVOD(t, data, 1000, nil, VODOptions{OnWant: func(i int) { wants <- i }})
	for i := range 3 {
		v.Put(i, chunkOf(data, 1000, i))
	}
	r := v.NewReader(context.Background())
	defer r.Close()
	if got := r.BufferedAhead(); got != 3000 {
		t.Fatalf("BufferedAhead = %d, want 3000", got)
	}
	buf := make([]byte, 500)
	if n, err := io.ReadFull(r, buf); n != 500 || err != nil {
		t.Fatal(n, err)
	}
	if got := r.BufferedAhead(); got != 2500 {
		t.Fatalf("BufferedAhead = %d, want 2500", got)
	}
	// Seeking within present data calls nothing.
	if _, err := r.Seek(1500, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	// Seek far ahead: the playhead moves at once; the first Read there
	// calls OnWant at once.
	if off, err := r.Seek(7500, io.SeekStart); off != 7500 || err != nil {
		t.Fatal(off, err)
	}
	ph := v.Playheads()
	if len(ph) != 1 || ph[0].Offset != 7500 || ph[0].Chunk != 7 || ph[0].Ahead != 0 {
		t.Fatalf("Playheads = %+v", ph)
	}
	select {
	case i := <-wants:
		t.Fatalf("OnWant(%d) from a Seek", i)
	default:
	}
	ch := readAllAsync(r)
	select {
	case i := <-wants:
		if i != 7 {
			t.Fatalf("OnWant(%d), want 7", i)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnWant not called by a blocked Read")
	}
	// A blocked read on the same chunk does not call OnWant again.
	time.Sleep(10 * time.Millisecond)
	select {
	case i := <-wants:
		t.Fatalf("second OnWant(%d)", i)
	default:
	}
	v.Put(7, chunkOf(data, 1000, 7))
	// The read continues to chunk 8, which is missing: OnWant(8).
	if i := <-wants; i != 8 {
		t.Fatalf("OnWant(%d), want 8", i)
	}
	v.Put(9, chunkOf(data, 1000, 9))
	v.Put(8, chunkOf(data, 1000, 8))
	got := <-ch
	if got.err != nil || !bytes.Equal(got.b, data[7500:]) {
		t.Fatalf("read after seek: %v, %d bytes", got.err, len(got.b))
	}
	// Seek relative and from the end.
	if off, _ := r.Seek(-100, io.SeekEnd); off != 9900 {
		t.Fatal(off)
	}
	if off, _ := r.Seek(-900, io.SeekCurrent); off != 9000 {
		t.Fatal(off)
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("negative seek succeeded")
	}
	if off, err := r.Seek(20_000, io.SeekStart); off != 20_000 || err != nil {
		t.Fatal(off, err)
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatal(n, err)
	}
}

func TestMemWindowBounded(t *testing.T) {
	data := testData(20_000)
	const cs = 1000
	w := NewMemWindow(4)
	v := newTestVOD(t, data, cs, w, VODOptions{})
	r := v.NewReader(context.Background())
	defer r.Close()
	for i := range 4 {
		if err := v.Put(i, chunkOf(data, cs, i)); err != nil {
			t.Fatal(err)
		}
	}
	// Full; chunk 10 is farther from the playhead (0) than any held chunk.
	if err := v.Put(10, chunkOf(data, cs, 10)); !errors.Is(err, ErrFull) {
		t.Fatalf("Put into full window: %v", err)
	}
	// Read past chunks 0 and 1: they are dropped.
	buf := make([]byte, 2*cs)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	if w.Has(0) || w.Has(1) || !w.Has(2) || w.Len() != 2 {
		t.Fatalf("after reading 2 chunks: len %d", w.Len())
	}
	// A second reader far ahead keeps its chunks; the farthest from either
	// playhead goes first.
	r2 := v.NewReader(context.Background())
	defer r2.Close()
	r2.Seek(15*cs, io.SeekStart)
	for _, i := range []int{15, 19} {
		if err := v.Put(i, chunkOf(data, cs, i)); err != nil {
			t.Fatal(err)
		}
	}
	// Held: 2,3 (near r at 2), 15,19 (r2 at 15). Put 4 (2 ahead of r):
	// evicts 19 (4 ahead of r2).
	if err := v.Put(4, chunkOf(data, cs, 4)); err != nil {
		t.Fatal(err)
	}
	if w.Has(19) || !w.Has(15) || !w.Has(4) || w.Len() != 4 {
		t.Fatalf("eviction chose wrong: has19 %v has15 %v len %d", w.Has(19), w.Has(15), w.Len())
	}
	if w.Evicted() != 2 { // chunk 10 refused, chunk 19 evicted
		t.Fatalf("Evicted = %d", w.Evicted())
	}
	// Closing r (at chunk 2) leaves r2 at 15 as the only playhead: all before it go.
	r.Close()
	if w.Len() != 1 || !w.Has(15) {
		t.Fatalf("after closing the rear reader: len %d", w.Len())
	}
	// A chunk behind every reader is not stored.
	v.Put(3, chunkOf(data, cs, 3))
	if w.Has(3) {
		t.Fatal("stored a chunk every reader has passed")
	}
	// A reader seeking back wants the dropped chunk again.
	r3ch := make(chan int, 1)
	v2 := newTestVOD(t, data, cs, NewMemWindow(2), VODOptions{OnWant: func(i int) { r3ch <- i }})
	v2.Put(0, chunkOf(data, cs, 0))
	r3 := v2.NewReader(context.Background())
	defer r3.Close()
	// Size probe (as http.ServeContent and VLC do) must not drop anything.
	r3.Seek(0, io.SeekEnd)
	r3.Seek(0, io.SeekStart)
	if !v2.Has(0) {
		t.Fatal("size probe dropped chunk 0")
	}
}

func TestServeHTTPRanges(t *testing.T) {
	data := testData(50_000)
	const cs = 1000
	wants := make(chan int, 64)
	v := newTestVOD(t, data, cs, nil, VODOptions{MIME: "video/mp2t", OnWant: func(i int) { wants <- i }})
	for i := range 10 { // first 10 000 bytes present
		v.Put(i, chunkOf(data, cs, i))
	}
	srv := httptest.NewServer(v)
	defer srv.Close()
	client := srv.Client()

	get := func(ctx context.Context, rng string) (*http.Response, []byte, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}

	// A range inside what is present.
	resp, b, err := get(context.Background(), "bytes=100-2099")
	if err != nil || resp.StatusCode != 206 || !bytes.Equal(b, data[100:2100]) {
		t.Fatalf("range: %v %v %d bytes", err, resp.Status, len(b))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "video/mp2t" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cr := resp.Header.Get("Content-Range"); cr != "bytes 100-2099/50000" {
		t.Fatalf("Content-Range %q", cr)
	}

	// A range far ahead blocks; the scheduler learns of it through OnWant and
	// fetches; the response then completes.
	type result struct {
		resp *http.Response
		b    []byte
		err  error
	}
	far := make(chan result, 1)
	go func() {
		resp, b, err := get(context.Background(), "bytes=40000-41999")
		far <- result{resp, b, err}
	}()
	var want int
	select {
	case want = <-wants:
	case <-time.After(5 * time.Second):
		t.Fatal("no OnWant for the far range")
	}
	if want != 40 {
		t.Fatalf("OnWant(%d), want 40", want)
	}
	select {
	case r := <-far:
		t.Fatalf("far range answered before its data: %v", r.err)
	case <-time.After(20 * time.Millisecond):
	}
	// The "scheduler" fetches from the wanted chunk on.
	for i := want; i < v.NumChunks(); i++ {
		v.Put(i, chunkOf(data, cs, i))
	}
	r := <-far
	if r.err != nil || r.resp.StatusCode != 206 || !bytes.Equal(r.b, data[40000:42000]) {
		t.Fatalf("far range: %v %d bytes", r.err, len(r.b))
	}

	// Suffix range: the last 500 bytes.
	resp, b, err = get(context.Background(), "bytes=-500")
	if err != nil || resp.StatusCode != 206 || !bytes.Equal(b, data[49500:]) {
		t.Fatalf("suffix range: %v %d bytes", err, len(b))
	}
	// Open-ended and unsatisfiable ranges.
	resp, b, _ = get(context.Background(), "bytes=49000-")
	if resp.StatusCode != 206 || !bytes.Equal(b, data[49000:]) {
		t.Fatalf("open range: %v %d bytes", resp.Status, len(b))
	}
	resp, _, _ = get(context.Background(), "bytes=60000-")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("unsatisfiable: %v", resp.Status)
	}
	drain(wants)

	// Several players at once over the whole file while the middle arrives.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for k := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, b, err := get(context.Background(), "")
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, data) {
				errs <- fmt.Errorf("player %d: %v %d bytes", k, err, len(b))
			}
		}()
	}
	for _, i := range rand.New(rand.NewPCG(7, 8)).Perm(30) {
		v.Put(10+i, chunkOf(data, cs, 10+i))
		time.Sleep(200 * time.Microsecond)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitNoPlayheads(t, v)
}

func TestServeHTTPClientDisconnectFreesReader(t *testing.T) {
	data := testData(10_000)
	const cs = 1000
	wants := make(chan int, 4)
	v := newTestVOD(t, data, cs, nil, VODOptions{OnWant: func(i int) { wants <- i }})
	v.Put(0, chunkOf(data, cs, 0))
	srv := httptest.NewServer(v)
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// Headers arrive; the body stalls at chunk 1.
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	<-wants
	if n := len(v.Playheads()); n != 1 {
		t.Fatalf("%d playheads while serving", n)
	}
	cancel()
	resp.Body.Close()
	waitNoPlayheads(t, v)
}

func waitNoPlayheads(t *testing.T, v *VOD) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(v.Playheads()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("readers not freed: %+v", v.Playheads())
		}
		time.Sleep(time.Millisecond)
	}
}

// mapStore is an unbounded ChunkStore that keeps everything, as the node's
// disk store does.
type mapStore struct {
	mu sync.Mutex
	m  map[int][]byte
}

func newMapStore() *mapStore { return &mapStore{m: make(map[int][]byte)} }

func (s *mapStore) Get(i int, buf []byte) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.m[i]
	if !ok {
		return nil, false
	}
	return append(buf[:0], d...), true // copy, as a disk store would
}

func (s *mapStore) Put(i int, d []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[i] = append([]byte(nil), d...)
	return nil
}

func (s *mapStore) Has(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[i]
	return ok
}

func (s *mapStore) Delete(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, i)
}

func drain(ch chan int) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// BenchmarkVODRead measures reading a fully present VOD through a Reader
// (an unbounded store, 256 KiB chunks, 32 KiB reads as io.Copy does).
func BenchmarkVODRead(b *testing.B) {
	const cs = 256 << 10
	data := testData(64 * cs)
	v := newTestVOD(b, data, cs, newMapStore(), VODOptions{})
	for i := range v.NumChunks() {
		v.Put(i, chunkOf(data, cs, i))
	}
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r := v.NewReader(context.Background())
		for {
			_, err := r.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		r.Close()
	}
}

// BenchmarkVODReadWhileArriving: one reader follows chunks as they are Put.
func BenchmarkVODReadWhileArriving(b *testing.B) {
	const cs = 64 << 10
	data := testData(256 * cs)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for range b.N {
		v, _ := NewVOD(int64(len(data)), cs, newMapStore(), VODOptions{})
		r := v.NewReader(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
			done <- err
		}()
		for i := range v.NumChunks() {
			v.Put(i, chunkOf(data, cs, i))
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		r.Close()
		v.Close()
	}
}
