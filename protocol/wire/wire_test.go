package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/proto"
)

func testCID(t testing.TB, codec uint64, data string) cid.Cid {
	t.Helper()
	h, err := multihash.Sum([]byte(data), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(codec, h)
}

type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

func TestWriteMsgSingleWrite(t *testing.T) {
	var w countingWriter
	m := &pb.ChunkResponse{Msg: &pb.ChunkResponse_Chunk{Chunk: &pb.Chunk{Index: 7, Data: bytes.Repeat([]byte{1}, 300)}}}
	if err := WriteMsg(&w, m); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 {
		t.Fatalf("%d writes, want 1", w.writes)
	}
	b := w.Bytes()
	n, k := binary.Uvarint(b)
	if k <= 0 || int(n) != len(b)-k || int(n) != proto.Size(m) {
		t.Fatalf("bad prefix %d (%d bytes) for frame of %d", n, k, len(b))
	}
}

func TestRoundTripPipe(t *testing.T) {
	a, b := net.Pipe()
	c := testCID(t, CodecRaw, "x")
	msgs := []proto.Message{
		&pb.ChunkRequest{Content: c.Bytes(), Op: &pb.ChunkRequest_GetRange{GetRange: &pb.GetRange{First: 3, Count: 64}}},
		&pb.ChunkResponse{Msg: &pb.ChunkResponse_Chunk{Chunk: &pb.Chunk{Index: 3, Data: bytes.Repeat([]byte{9}, MaxChunkData)}}},
		&pb.ChunkResponse{Msg: &pb.ChunkResponse_End{End: &pb.Status{}}}, // 2-byte payload
		&pb.PexResponse{}, // empty payload
	}
	go func() {
		for _, m := range msgs {
			if err := WriteMsg(a, m); err != nil {
				t.Error(err)
			}
		}
		a.Close()
	}()
	r := NewReader(b)
	got := []proto.Message{&pb.ChunkRequest{}, &pb.ChunkResponse{}, &pb.ChunkResponse{}, &pb.PexResponse{}}
	limits := []int{MaxRequest, MaxChunkFrame, MaxChunkFrame, MaxPexResponse}
	for i := range got {
		if err := r.ReadMsg(got[i], limits[i]); err != nil {
			t.Fatalf("msg %d: %v", i, err)
		}
		if !proto.Equal(got[i], msgs[i]) {
			t.Fatalf("msg %d differs", i)
		}
	}
	if err := r.ReadMsg(&pb.ChunkResponse{}, MaxChunkFrame); err != io.EOF {
		t.Fatalf("at frame boundary: %v, want io.EOF", err)
	}
}

func frame(prefix uint64, payload []byte) []byte {
	return append(binary.AppendUvarint(nil, prefix), payload...)
}

func TestOversizeRefusedBeforeAllocation(t *testing.T) {
	for _, n := range []uint64{MaxRequest + 1, 1 << 40, 1<<64 - 1} {
		r := NewReader(bytes.NewReader(frame(n, []byte("abc"))))
		err := r.ReadMsg(&pb.ChunkRequest{}, MaxRequest)
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("len %d: %v", n, err)
		}
		if cap(r.buf) != 0 {
			t.Fatalf("len %d: allocated %d bytes", n, cap(r.buf))
		}
	}
	// Exactly at the limit is fine.
	c := testCID(t, CodecRaw, "x")
	big := &pb.ChunkRequest{Content: c.Bytes(), Op: &pb.ChunkRequest_GetDescriptor{GetDescriptor: &pb.GetDescriptor{}}}
	b, _ := AppendFrame(nil, big)
	if err := NewReader(bytes.NewReader(b)).ReadMsg(&pb.ChunkRequest{}, proto.Size(big)); err != nil {
		t.Fatal(err)
	}
	if err := NewReader(bytes.NewReader(b)).ReadMsg(&pb.ChunkRequest{}, proto.Size(big)-1); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatal(err)
	}
}

func TestStalledLargeFrameAllocatesLittle(t *testing.T) {
	// A peer announces a full chunk frame and sends 10 bytes.
	r := NewReader(bytes.NewReader(frame(MaxChunkFrame, make([]byte, 10))))
	err := r.ReadMsg(&pb.ChunkResponse{}, MaxChunkFrame)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	if cap(r.buf) > growStep {
		t.Fatalf("allocated %d bytes for 10 received", cap(r.buf))
	}
}

func TestTruncated(t *testing.T) {
	c := testCID(t, CodecRaw, "x")
	full, _ := AppendFrame(nil, &pb.PexRequest{Content: c.Bytes(), Max: 5})
	for i := 1; i < len(full); i++ {
		err := NewReader(bytes.NewReader(full[:i])).ReadMsg(&pb.PexRequest{}, MaxRequest)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: %v", i, err)
		}
	}
	// Inside a multi-byte length prefix.
	err := NewReader(bytes.NewReader([]byte{0x80, 0x80})).ReadMsg(&pb.PexRequest{}, MaxRequest)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	if err := NewReader(bytes.NewReader(nil)).ReadMsg(&pb.PexRequest{}, MaxRequest); err != io.EOF {
		t.Fatal(err)
	}
}

func TestBadPrefixAndPayload(t *testing.T) {
	over := bytes.Repeat([]byte{0xff}, 10)
	if err := NewReader(bytes.NewReader(over)).ReadMsg(&pb.PexRequest{}, MaxRequest); !errors.Is(err, ErrBadLength) {
		t.Fatal(err)
	}
	// Field 1 as a varint claiming more bytes than the payload holds.
	if err := NewReader(bytes.NewReader(frame(2, []byte{0x0a, 0x05}))).ReadMsg(&pb.PexRequest{}, MaxRequest); !errors.Is(err, ErrBadMessage) {
		t.Fatal(err)
	}
	// Invalid UTF-8 in a proto3 string.
	if err := NewReader(bytes.NewReader(frame(3, []byte{0x12, 0x01, 0xff}))).ReadMsg(&pb.Status{}, MaxRequest); !errors.Is(err, ErrBadMessage) {
		t.Fatal(err)
	}
}

func TestBufferReuseDoesNotAlias(t *testing.T) {
	var buf []byte
	for i := range 2 {
		buf, _ = AppendFrame(buf, &pb.Chunk{Index: uint64(i), Data: []byte{byte(i), byte(i)}})
	}
	r := NewReader(bytes.NewReader(buf))
	var a, b pb.Chunk
	if err := r.ReadMsg(&a, 100); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadMsg(&b, 100); err != nil {
		t.Fatal(err)
	}
	if a.Data[0] != 0 || b.Data[0] != 1 {
		t.Fatalf("decoded data aliases the read buffer: %v %v", a.Data, b.Data)
	}
}

func TestParseContent(t *testing.T) {
	raw := testCID(t, CodecRaw, "f")
	live := testCID(t, CodecLive, "l")
	for _, c := range []cid.Cid{raw, live} {
		if got, err := ParseContent(c.Bytes()); err != nil || !got.Equals(c) {
			t.Fatalf("%v: %v", c, err)
		}
	}
	dagpb := testCID(t, 0x70, "d")
	h, _ := multihash.Sum([]byte("x"), multihash.SHA2_512, -1)
	v0 := cid.NewCidV0(raw.Hash())
	bad := map[string][]byte{
		"empty":    nil,
		"garbage":  []byte("hello"),
		"trailing": append(raw.Bytes(), 0),
		"codec":    dagpb.Bytes(),
		"sha512":   cid.NewCidV1(CodecRaw, h).Bytes(),
		"v0":       v0.Bytes(),
		"nonmin":   append([]byte{1, 0xd5, 0x00}, raw.Bytes()[2:]...),
		"short":    raw.Bytes()[:35],
	}
	for name, b := range bad {
		if _, err := ParseContent(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestValidateChunkRequest(t *testing.T) {
	c := testCID(t, CodecRaw, "f").Bytes()
	rng := func(first uint64, count uint32) *pb.ChunkRequest {
		return &pb.ChunkRequest{Content: c, Op: &pb.ChunkRequest_GetRange{GetRange: &pb.GetRange{First: first, Count: count}}}
	}
	good := []*pb.ChunkRequest{
		{Content: c, Op: &pb.ChunkRequest_GetDescriptor{GetDescriptor: &pb.GetDescriptor{}}},
		rng(0, 1), rng(0, 64), rng(1<<64-64, 64),
	}
	for i, r := range good {
		if err := ValidateChunkRequest(r); err != nil {
			t.Errorf("good %d: %v", i, err)
		}
	}
	bad := []*pb.ChunkRequest{
		{Content: c},
		{Content: []byte{1, 2}, Op: &pb.ChunkRequest_GetDescriptor{GetDescriptor: &pb.GetDescriptor{}}},
		{Content: c, Op: &pb.ChunkRequest_GetRange{}},
		rng(0, 0), rng(0, 65), rng(1<<64-63, 64),
	}
	for i, r := range bad {
		if err := ValidateChunkRequest(r); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad %d: %v", i, err)
		}
	}
}

func TestValidateStatusAndResponse(t *testing.T) {
	if err := ValidateStatus(&pb.Status{Code: 99, Message: strings.Repeat("x", MaxStatusMessage)}); err != nil {
		t.Fatal(err)
	}
	if err := ValidateStatus(&pb.Status{Message: strings.Repeat("x", MaxStatusMessage+1)}); err == nil {
		t.Fatal("long status message accepted")
	}
	bad := []*pb.ChunkResponse{
		{},
		{Msg: &pb.ChunkResponse_Manifest{}},
		{Msg: &pb.ChunkResponse_Chunk{Chunk: &pb.Chunk{Index: 1}}},
		{Msg: &pb.ChunkResponse_Chunk{Chunk: &pb.Chunk{Data: make([]byte, MaxChunkData+1)}}},
		{Msg: &pb.ChunkResponse_End{}},
	}
	for i, r := range bad {
		if err := ValidateChunkResponse(r); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad %d: %v", i, err)
		}
	}
}

func peerIDs() (sha, ident []byte) {
	sha = append([]byte{0x12, 0x20}, bytes.Repeat([]byte{7}, 32)...)
	ident = append([]byte{0x00, 36}, bytes.Repeat([]byte{8}, 36)...)
	return
}

func TestValidatePex(t *testing.T) {
	c := testCID(t, CodecLive, "l").Bytes()
	if err := ValidatePexRequest(&pb.PexRequest{Content: c, Max: 64}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []uint32{0, 65} {
		if err := ValidatePexRequest(&pb.PexRequest{Content: c, Max: m}); err == nil {
			t.Fatalf("max %d accepted", m)
		}
	}
	sha, ident := peerIDs()
	addr := make([]byte, MaxAddrLen)
	full := &pb.PexResponse{}
	for i := range MaxPexPeers {
		id := sha
		if i%2 == 1 {
			id = append([]byte{0x00, maxInlineKey}, bytes.Repeat([]byte{8}, maxInlineKey)...)
		}
		rec := &pb.PeerRecord{Id: id}
		for range MaxPexAddrs {
			rec.Addrs = append(rec.Addrs, addr)
		}
		full.Peers = append(full.Peers, rec)
	}
	if err := ValidatePexResponse(full); err != nil {
		t.Fatal(err)
	}
	if n := proto.Size(full); n > MaxPexResponse {
		t.Fatalf("largest valid response is %d bytes, MaxPexResponse %d", n, MaxPexResponse)
	}
	badRecs := []*pb.PeerRecord{
		{Id: nil},
		{Id: sha[:33]},
		{Id: append([]byte{0x00, 43}, make([]byte, 43)...)},
		{Id: ident[:10]},
		{Id: []byte{0x00, 0x00}},
		{Id: sha, Addrs: [][]byte{{}}},
		{Id: sha, Addrs: [][]byte{make([]byte, MaxAddrLen+1)}},
		{Id: sha, Addrs: make([][]byte, MaxPexAddrs+1)},
	}
	for i, r := range badRecs {
		if err := ValidatePexResponse(&pb.PexResponse{Peers: []*pb.PeerRecord{r}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad record %d: %v", i, err)
		}
	}
	tooMany := &pb.PexResponse{Peers: append(full.Peers, full.Peers[0])}
	if err := ValidatePexResponse(tooMany); err == nil {
		t.Fatal("65 peers accepted")
	}
}
