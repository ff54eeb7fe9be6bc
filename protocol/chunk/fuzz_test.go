package chunk

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
)

// FuzzServe feeds arbitrary request bytes to the server. Whatever it writes
// must be valid frames ending with exactly one status, and it must write
// something unless it could not read a request.
func FuzzServe(f *testing.F) {
	data, m := testFile(f, 5, 20)
	id := m.ID().Bytes()
	liveID := cid.NewCidV1(wire.CodecLive, m.ID().Hash()).Bytes()
	f.Add(reqBytes(f, id, &pb.GetDescriptor{}))
	f.Add(reqBytes(f, id, &pb.GetRange{First: 0, Count: 5}))
	f.Add(reqBytes(f, id, &pb.GetRange{First: 3, Count: 64}))
	f.Add(reqBytes(f, id, &pb.GetRange{First: 1<<64 - 1, Count: 1}))
	f.Add(reqBytes(f, liveID, &pb.GetRange{First: 3, Count: 2}))
	f.Add(reqBytes(f, liveID, &pb.GetDescriptor{}))
	f.Add(reqBytes(f, id, nil))
	f.Add([]byte{})
	f.Add([]byte{0x81, 0x20})
	f.Add(bytes.Repeat([]byte{0xff}, 11))

	f.Fuzz(func(t *testing.T, in []byte) {
		src := &liveSource{memSource: newMemSource(&memFile{data, m})}
		src.missing[1] = true
		src.failAt[4] = true
		out, err := runServe(src, in)
		rs, st := responses(t, out)
		if st == nil {
			if err == nil {
				t.Fatal("Serve wrote nothing and returned nil")
			}
			return
		}
		if st.Code == pb.Code_BAD_REQUEST && (len(rs) != 0 || err == nil) {
			t.Fatal("BAD_REQUEST after data, or without an error")
		}
		last := int64(-1)
		for _, r := range rs {
			if c := r.GetChunk(); c != nil {
				if int64(c.Index) <= last || m.Verify(int(c.Index), c.Data) != nil {
					t.Fatalf("server sent chunk %d out of order or wrong", c.Index)
				}
				last = int64(c.Index)
			}
		}
	})
}

// FuzzClient feeds arbitrary response bytes to FetchRange (first input byte
// odd) or FetchManifest (even). fn must only ever see verified chunks, in
// increasing order, within the requested range. Inputs hold 16 KiB chunks;
// when fuzzing, pass -fuzzminimizetime=200x or minimization stalls the run.
func FuzzClient(f *testing.F) {
	data, m := testFile(f, 6, 21)
	const first, count = 1, 4
	ch := func(i uint64) []byte { return chunkFrame(f, data, m, i) }
	st := func(c pb.Code) []byte { return statusFrame(f, c) }
	cat := func(sel byte, parts ...[]byte) []byte { return append([]byte{sel}, bytes.Join(parts, nil)...) }
	mf := frame(f, &pb.ChunkResponse{Msg: &pb.ChunkResponse_Manifest{Manifest: m.Bytes()}})
	f.Add(cat(1, ch(1), ch(2), ch(3), ch(4), st(pb.Code_OK)))
	f.Add(cat(1, ch(1), ch(3), st(pb.Code_PARTIAL)))
	f.Add(cat(1, ch(2), ch(1), st(pb.Code_PARTIAL)))
	f.Add(cat(1, ch(1), ch(1), st(pb.Code_OK)))
	f.Add(cat(1, st(pb.Code_NOT_FOUND)))
	f.Add(cat(1, st(pb.Code_BUSY)))
	f.Add(cat(1, ch(5)))
	f.Add(cat(1, ch(1)[:100]))
	f.Add(cat(1, mf))
	f.Add(cat(0, mf, st(pb.Code_OK)))
	f.Add(cat(0, mf[:len(mf)-3], st(pb.Code_OK)))
	f.Add(cat(0, st(pb.Code_INTERNAL)))
	f.Add(cat(0, ch(0)))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})

	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in[1:]), io.Discard}
		if in[0]&1 == 0 {
			got, err := FetchManifest(rw, m.ID())
			if err == nil && !bytes.Equal(got.Bytes(), m.Bytes()) {
				t.Fatal("accepted a manifest that differs")
			}
			if err != nil && got != nil {
				t.Fatal("manifest returned with an error")
			}
			return
		}
		next := uint64(first)
		n := 0
		err := FetchRange(rw, m, first, count, func(i uint64, d []byte) error {
			if i < next || i >= first+count {
				t.Fatalf("fn got chunk %d, next acceptable %d", i, next)
			}
			if err := m.Verify(int(i), d); err != nil {
				t.Fatalf("fn got unverified data: %v", err)
			}
			next = i + 1
			n++
			return nil
		})
		switch {
		case err == nil && n != count:
			t.Fatalf("nil error after %d of %d chunks", n, count)
		case errors.Is(err, ErrPartial) && (n == 0 || n == count):
			t.Fatalf("ErrPartial after %d chunks", n)
		case errors.Is(err, ErrNotFound) && n != 0:
			t.Fatalf("ErrNotFound after %d chunks", n)
		}
	})
}
