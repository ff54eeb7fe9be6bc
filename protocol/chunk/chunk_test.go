package chunk

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"

	"github.com/hivecast/hivecast/protocol/manifest"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"google.golang.org/protobuf/proto"
)

const testChunk = manifest.MinChunkSize

// testFile is a file of n chunks (the last one short) and its manifest.
func testFile(t testing.TB, n int, seed uint64) ([]byte, *manifest.Manifest) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 2))
	data := make([]byte, n*testChunk-100)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	m, err := manifest.Build(bytes.NewReader(data), "test.ts", "video/mp2t", testChunk)
	if err != nil {
		t.Fatal(err)
	}
	return data, m
}

// memSource serves files from memory.
type memSource struct {
	mu       sync.Mutex
	files    map[string]*memFile
	missing  map[uint64]bool // chunks not held
	corrupt  map[uint64]bool // chunks served with a flipped bit
	failAt   map[uint64]bool // chunks whose read fails
	manifest []byte          // if set, served for every ID
	calls    int
}

type memFile struct {
	data []byte
	m    *manifest.Manifest
}

func newMemSource(files ...*memFile) *memSource {
	s := &memSource{files: map[string]*memFile{}, missing: map[uint64]bool{}, corrupt: map[uint64]bool{}, failAt: map[uint64]bool{}}
	for _, f := range files {
		s.files[f.m.ID().KeyString()] = f
	}
	return s
}

func (s *memSource) Manifest(id cid.Cid) ([]byte, error) {
	if s.manifest != nil {
		return s.manifest, nil
	}
	f, ok := s.files[id.KeyString()]
	if !ok {
		return nil, ErrNotFound
	}
	return f.m.Bytes(), nil
}

func (s *memSource) Chunk(id cid.Cid, index uint64, buf []byte) ([]byte, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	f, ok := s.files[id.KeyString()]
	if !ok || index >= uint64(f.m.NumChunks()) || s.missing[index] {
		return nil, ErrNotFound
	}
	if s.failAt[index] {
		return nil, errors.New("file vanished")
	}
	off := f.m.ChunkOffset(int(index))
	buf = append(buf[:0], f.data[off:off+int64(f.m.ChunkLen(int(index)))]...)
	if s.corrupt[index] {
		buf[len(buf)/2] ^= 1
	}
	return buf, nil
}

// serve runs Serve on one end of a pipe and returns the other end and a
// channel with Serve's result.
func serve(t *testing.T, src Source) (net.Conn, <-chan error) {
	t.Helper()
	c, s := net.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Serve(s, src)
		s.Close()
		done <- err
	}()
	t.Cleanup(func() { c.Close() })
	return c, done
}

type got struct {
	idx  []uint64
	data [][]byte
}

func (g *got) fn(i uint64, d []byte) error {
	g.idx = append(g.idx, i)
	g.data = append(g.data, bytes.Clone(d))
	return nil
}

func TestFetchManifestRoundTrip(t *testing.T) {
	data, m := testFile(t, 3, 1)
	src := newMemSource(&memFile{data, m})
	c, done := serve(t, src)
	got, err := FetchManifest(c, m.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), m.Bytes()) || !got.ID().Equals(m.ID()) {
		t.Fatal("manifest differs")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestFetchRangeRoundTrip(t *testing.T) {
	data, m := testFile(t, 70, 2)
	src := newMemSource(&memFile{data, m})
	for _, tc := range []struct {
		first uint64
		count int
	}{{0, 1}, {0, 64}, {6, 64}, {69, 1}, {60, 10}} {
		c, done := serve(t, src)
		var g got
		if err := FetchRange(c, m, tc.first, tc.count, g.fn); err != nil {
			t.Fatal(err)
		}
		if len(g.idx) != tc.count {
			t.Fatalf("%+v: got %d chunks", tc, len(g.idx))
		}
		for k, i := range g.idx {
			off := m.ChunkOffset(int(i))
			if i != tc.first+uint64(k) || !bytes.Equal(g.data[k], data[off:off+int64(m.ChunkLen(int(i)))]) {
				t.Fatalf("%+v: chunk %d wrong", tc, i)
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestPartialAndNotFound(t *testing.T) {
	data, m := testFile(t, 10, 3)
	src := newMemSource(&memFile{data, m})
	src.missing[2], src.missing[5] = true, true
	c, done := serve(t, src)
	var g got
	if err := FetchRange(c, m, 0, 10, g.fn); !errors.Is(err, ErrPartial) {
		t.Fatalf("partial: %v", err)
	}
	if len(g.idx) != 8 || g.idx[2] != 3 || g.idx[4] != 6 {
		t.Fatalf("partial delivered %v", g.idx)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	c, _ = serve(t, src)
	g = got{}
	if err := FetchRange(c, m, 5, 1, g.fn); !errors.Is(err, ErrNotFound) || len(g.idx) != 0 {
		t.Fatalf("missing chunk: %v %v", err, g.idx)
	}

	_, other := testFile(t, 2, 4)
	c, _ = serve(t, src)
	if _, err := FetchManifest(c, other.ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown manifest: %v", err)
	}
	c, _ = serve(t, src)
	if err := FetchRange(c, other, 0, 2, g.fn); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown file: %v", err)
	}
}

func TestInternal(t *testing.T) {
	data, m := testFile(t, 10, 5)
	src := newMemSource(&memFile{data, m})
	src.failAt[4] = true
	c, done := serve(t, src)
	var g got
	err := FetchRange(c, m, 0, 10, g.fn)
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != pb.Code_INTERNAL {
		t.Fatalf("got %v", err)
	}
	if len(g.idx) != 4 {
		t.Fatalf("delivered %v before the failure", g.idx)
	}
	if err := <-done; err == nil {
		t.Fatal("Serve hid the source error")
	}
}

func TestCorruptChunkDetected(t *testing.T) {
	data, m := testFile(t, 10, 6)
	src := newMemSource(&memFile{data, m})
	src.corrupt[3] = true
	c, _ := serve(t, src)
	var g got
	err := FetchRange(c, m, 0, 10, g.fn)
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Index != 3 || !errors.Is(err, ErrProtocol) || !errors.Is(err, manifest.ErrChunkHash) {
		t.Fatalf("got %v", err)
	}
	if len(g.idx) != 3 {
		t.Fatalf("fn called for %v", g.idx)
	}
}

func TestWrongManifest(t *testing.T) {
	data, m := testFile(t, 3, 7)
	_, other := testFile(t, 3, 8)
	src := newMemSource(&memFile{data, m})
	src.manifest = other.Bytes() // a liar
	c, _ := serve(t, src)
	_, err := FetchManifest(c, m.ID())
	if !errors.Is(err, ErrProtocol) || !errors.Is(err, manifest.ErrMismatch) {
		t.Fatalf("got %v", err)
	}
}

func TestFnErrorStops(t *testing.T) {
	data, m := testFile(t, 10, 9)
	c, _ := serve(t, newMemSource(&memFile{data, m}))
	stop := errors.New("enough")
	n := 0
	err := FetchRange(c, m, 0, 10, func(uint64, []byte) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Fatalf("got %v after %d", err, n)
	}
}

func TestFetchRangeRefusesBadRange(t *testing.T) {
	_, m := testFile(t, 10, 10)
	for _, tc := range []struct {
		first uint64
		count int
	}{{0, 0}, {0, 65}, {10, 1}, {9, 2}, {1<<64 - 1, 2}} {
		if err := FetchRange(failRW{}, m, tc.first, tc.count, nil); err == nil {
			t.Errorf("%+v accepted", tc)
		}
	}
	if _, err := FetchManifest(failRW{}, cid.NewCidV1(wire.CodecLive, m.ID().Hash())); err == nil {
		t.Error("live ID accepted by FetchManifest")
	}
}

type failRW struct{}

func (failRW) Read([]byte) (int, error)  { panic("read") }
func (failRW) Write([]byte) (int, error) { panic("write") }

// scripted runs a fake server that reads the request and writes raw bytes.
func scripted(t *testing.T, frames ...[]byte) net.Conn {
	c, s := net.Pipe()
	go func() {
		defer s.Close()
		var req pb.ChunkRequest
		if err := wire.NewReader(s).ReadMsg(&req, wire.MaxRequest); err != nil {
			return
		}
		for _, f := range frames {
			if _, err := s.Write(f); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return c
}

func frame(t testing.TB, m proto.Message) []byte {
	b, err := wire.AppendFrame(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func chunkFrame(t testing.TB, data []byte, m *manifest.Manifest, i uint64) []byte {
	off := m.ChunkOffset(int(i))
	d := data[off : off+int64(m.ChunkLen(int(i)))]
	return frame(t, &pb.ChunkResponse{Msg: &pb.ChunkResponse_Chunk{Chunk: &pb.Chunk{Index: i, Data: d}}})
}

func statusFrame(t testing.TB, code pb.Code) []byte {
	return frame(t, &pb.ChunkResponse{Msg: &pb.ChunkResponse_End{End: &pb.Status{Code: code, Message: "x"}}})
}

func TestClientRejectsMisbehaviour(t *testing.T) {
	data, m := testFile(t, 10, 11)
	ch := func(i uint64) []byte { return chunkFrame(t, data, m, i) }
	st := func(c pb.Code) []byte { return statusFrame(t, c) }
	huge := append([]byte{0xff, 0xff, 0xff, 0x7f}, 0)
	cases := map[string]struct {
		frames    [][]byte
		want      error
		delivered int
	}{
		"out of order":    {[][]byte{ch(3), ch(2)}, ErrProtocol, 1},
		"duplicate":       {[][]byte{ch(2), ch(2)}, ErrProtocol, 1},
		"not requested":   {[][]byte{ch(6)}, ErrProtocol, 0},
		"before range":    {[][]byte{ch(1)}, ErrProtocol, 0},
		"OK but missing":  {[][]byte{ch(2), st(pb.Code_OK)}, ErrProtocol, 1},
		"PARTIAL but all": {[][]byte{ch(2), ch(3), ch(4), ch(5), st(pb.Code_PARTIAL)}, ErrProtocol, 4},
		"NOT_FOUND after": {[][]byte{ch(2), st(pb.Code_NOT_FOUND)}, ErrProtocol, 1},
		"no status":       {[][]byte{ch(2), ch(3)}, io.ErrUnexpectedEOF, 2},
		"nothing":         {nil, io.ErrUnexpectedEOF, 0},
		"oversize":        {[][]byte{huge}, ErrProtocol, 0},
		"garbage":         {[][]byte{{3, 0xff, 0xff, 0xff}}, ErrProtocol, 0},
		"manifest":        {[][]byte{frame(t, &pb.ChunkResponse{Msg: &pb.ChunkResponse_Manifest{Manifest: m.Bytes()}})}, ErrProtocol, 0},
		"busy":            {[][]byte{st(pb.Code_BUSY)}, ErrBusy, 0},
		"partial ok":      {[][]byte{ch(2), ch(5), st(pb.Code_PARTIAL)}, ErrPartial, 2},
		"gap then ok":     {[][]byte{ch(2), ch(4), ch(5), st(pb.Code_OK)}, ErrProtocol, 3},
		"wrong length":    {[][]byte{frame(t, &pb.ChunkResponse{Msg: &pb.ChunkResponse_Chunk{Chunk: &pb.Chunk{Index: 2, Data: []byte{1}}}})}, ErrProtocol, 0},
	}
	for name, tc := range cases {
		c := scripted(t, tc.frames...)
		var g got
		err := FetchRange(c, m, 2, 4, g.fn)
		if !errors.Is(err, tc.want) || len(g.idx) != tc.delivered {
			t.Errorf("%s: got %v with %d delivered, want %v with %d", name, err, len(g.idx), tc.want, tc.delivered)
		}
	}
	var re *RemoteError
	if err := FetchRange(scripted(t, st(pb.Code(42))), m, 0, 1, (&got{}).fn); !errors.As(err, &re) || re.Code != 42 {
		t.Errorf("unknown code: %v", err)
	}
	// FetchManifest: manifest then something other than OK.
	mf := frame(t, &pb.ChunkResponse{Msg: &pb.ChunkResponse_Manifest{Manifest: m.Bytes()}})
	for name, frames := range map[string][][]byte{
		"no status":      {mf},
		"partial":        {mf, st(pb.Code_PARTIAL)},
		"ok only":        {st(pb.Code_OK)},
		"chunk":          {ch(0), st(pb.Code_OK)},
		"two manifests":  {mf, mf},
		"truncated":      {mf[:len(mf)-1]},
		"oversize frame": {huge},
	} {
		if _, err := FetchManifest(scripted(t, frames...), m.ID()); err == nil {
			t.Errorf("manifest %s: accepted", name)
		}
	}
	if _, err := FetchManifest(scripted(t, mf, st(pb.Code_OK)), m.ID()); err != nil {
		t.Errorf("scripted good manifest: %v", err)
	}
}

// runServe feeds raw request bytes to Serve and returns what it wrote.
func runServe(src Source, in []byte) ([]byte, error) {
	var out bytes.Buffer
	err := Serve(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(in), &out}, src)
	return out.Bytes(), err
}

// responses decodes a server's output, which must be valid frames ending
// with exactly one status.
func responses(t testing.TB, out []byte) ([]*pb.ChunkResponse, *pb.Status) {
	r := wire.NewReader(bytes.NewReader(out))
	var all []*pb.ChunkResponse
	for {
		var resp pb.ChunkResponse
		err := r.ReadMsg(&resp, wire.MaxManifestFrame)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("server wrote a bad frame: %v", err)
		}
		if err := wire.ValidateChunkResponse(&resp); err != nil {
			t.Fatalf("server wrote an invalid response: %v", err)
		}
		all = append(all, &resp)
	}
	if len(all) == 0 {
		return nil, nil
	}
	for _, r := range all[:len(all)-1] {
		if r.GetEnd() != nil {
			t.Fatal("status before the end")
		}
	}
	st := all[len(all)-1].GetEnd()
	if st == nil {
		t.Fatal("response does not end with a status")
	}
	return all[:len(all)-1], st
}

func reqBytes(t testing.TB, content []byte, op any) []byte {
	req := &pb.ChunkRequest{Content: content}
	switch op := op.(type) {
	case *pb.GetRange:
		req.Op = &pb.ChunkRequest_GetRange{GetRange: op}
	case *pb.GetDescriptor:
		req.Op = &pb.ChunkRequest_GetDescriptor{GetDescriptor: op}
	}
	return frame(t, req)
}

func TestServeBadRequests(t *testing.T) {
	data, m := testFile(t, 3, 12)
	src := newMemSource(&memFile{data, m})
	id := m.ID().Bytes()
	for name, in := range map[string][]byte{
		"garbage":    {4, 0xff, 0xff, 0xff, 0xff},
		"oversize":   {0x81, 0x20},
		"no op":      reqBytes(t, id, nil),
		"bad cid":    reqBytes(t, []byte("nope"), &pb.GetDescriptor{}),
		"count 0":    reqBytes(t, id, &pb.GetRange{First: 0, Count: 0}),
		"count 65":   reqBytes(t, id, &pb.GetRange{First: 0, Count: 65}),
		"bad prefix": bytes.Repeat([]byte{0xff}, 11),
	} {
		out, err := runServe(src, in)
		if err == nil {
			t.Errorf("%s: Serve returned nil", name)
		}
		rs, st := responses(t, out)
		if len(rs) != 0 || st == nil || st.Code != pb.Code_BAD_REQUEST {
			t.Errorf("%s: answered %v %v", name, rs, st)
		}
	}
	// No request at all, or a truncated one: nothing is written.
	for _, in := range [][]byte{nil, reqBytes(t, id, &pb.GetDescriptor{})[:5]} {
		out, err := runServe(src, in)
		if err == nil || len(out) != 0 {
			t.Errorf("truncated request: %v, wrote %d bytes", err, len(out))
		}
	}
	if src.calls != 0 {
		t.Errorf("source called %d times for bad requests", src.calls)
	}
	// Past the end of the file: NOT_FOUND.
	out, err := runServe(src, reqBytes(t, id, &pb.GetRange{First: 1<<64 - 64, Count: 64}))
	if _, st := responses(t, out); err != nil || st.GetCode() != pb.Code_NOT_FOUND {
		t.Errorf("range past the end: %v %v", err, st)
	}
}

// liveSource adds a trivial live stream to memSource.
type liveSource struct {
	*memSource
	reqs int
}

func (l *liveSource) ServeLive(id cid.Cid, req *pb.ChunkRequest, send func(*pb.ChunkResponse) error) *pb.Status {
	l.reqs++
	r := req.GetGetRange()
	if r == nil {
		return &pb.Status{Code: pb.Code_NOT_FOUND}
	}
	for i := range uint64(r.Count) {
		if err := send(&pb.ChunkResponse{Msg: &pb.ChunkResponse_LiveChunk{LiveChunk: &pb.LiveChunk{Seq: r.First + i, Data: make([]byte, 188)}}}); err != nil {
			return nil
		}
	}
	return &pb.Status{Code: pb.Code_OK}
}

func TestLiveSeam(t *testing.T) {
	_, m := testFile(t, 1, 13)
	liveID := cid.NewCidV1(wire.CodecLive, m.ID().Hash()).Bytes()
	in := reqBytes(t, liveID, &pb.GetRange{First: 5, Count: 3})
	out, err := runServe(newMemSource(), in)
	if _, st := responses(t, out); err != nil || st.GetCode() != pb.Code_NOT_FOUND {
		t.Fatalf("live without LiveSource: %v %v", err, st)
	}
	ls := &liveSource{memSource: newMemSource()}
	out, err = runServe(ls, in)
	rs, st := responses(t, out)
	if err != nil || st.GetCode() != pb.Code_OK || len(rs) != 3 || rs[2].GetLiveChunk().GetSeq() != 7 || ls.reqs != 1 {
		t.Fatalf("live: %v %v %d", err, st, len(rs))
	}
}
