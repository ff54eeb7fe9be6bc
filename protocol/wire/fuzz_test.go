package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hivecast/hivecast/protocol/wire/pb"
	"google.golang.org/protobuf/proto"
)

// fuzzKinds lists the message types a Reader is used for, with their limits
// and validators. The first byte of fuzz input picks one.
var fuzzKinds = []struct {
	new      func() proto.Message
	max      int
	validate func(proto.Message) error
}{
	{func() proto.Message { return &pb.ChunkRequest{} }, MaxRequest, func(m proto.Message) error { return ValidateChunkRequest(m.(*pb.ChunkRequest)) }},
	{func() proto.Message { return &pb.ChunkResponse{} }, MaxManifestFrame, func(m proto.Message) error { return ValidateChunkResponse(m.(*pb.ChunkResponse)) }},
	{func() proto.Message { return &pb.PexRequest{} }, MaxRequest, func(m proto.Message) error { return ValidatePexRequest(m.(*pb.PexRequest)) }},
	{func() proto.Message { return &pb.PexResponse{} }, MaxPexResponse, func(m proto.Message) error { return ValidatePexResponse(m.(*pb.PexResponse)) }},
	{func() proto.Message { return &pb.Status{} }, MaxRequest, func(m proto.Message) error { return ValidateStatus(m.(*pb.Status)) }},
}

func FuzzReader(f *testing.F) {
	c := testCID(f, CodecRaw, "x").Bytes()
	sha, ident := peerIDs()
	seeds := []struct {
		kind byte
		msgs []proto.Message
	}{
		{0, []proto.Message{&pb.ChunkRequest{Content: c, Op: &pb.ChunkRequest_GetDescriptor{GetDescriptor: &pb.GetDescriptor{}}}}},
		{0, []proto.Message{&pb.ChunkRequest{Content: c, Op: &pb.ChunkRequest_GetRange{GetRange: &pb.GetRange{First: 1 << 63, Count: 64}}}}},
		{1, []proto.Message{
			&pb.ChunkResponse{Msg: &pb.ChunkResponse_Manifest{Manifest: []byte{8, 1}}},
			&pb.ChunkResponse{Msg: &pb.ChunkResponse_Chunk{Chunk: &pb.Chunk{Index: 2, Data: []byte("data")}}},
			&pb.ChunkResponse{Msg: &pb.ChunkResponse_LiveChunk{LiveChunk: &pb.LiveChunk{Seq: 1, Data: make([]byte, 188)}}},
			&pb.ChunkResponse{Msg: &pb.ChunkResponse_StreamInfo{StreamInfo: &pb.StreamInfo{Version: 1, Name: "n"}}},
			&pb.ChunkResponse{Msg: &pb.ChunkResponse_End{End: &pb.Status{Code: pb.Code_PARTIAL, Message: "m"}}},
		}},
		{2, []proto.Message{&pb.PexRequest{Content: c, Max: 64}}},
		{3, []proto.Message{&pb.PexResponse{Peers: []*pb.PeerRecord{{Id: sha, Addrs: [][]byte{{4, 127, 0, 0, 1}}}, {Id: ident}}}}},
		{4, []proto.Message{&pb.Status{Code: pb.Code_BUSY, Message: "later"}}},
	}
	for _, s := range seeds {
		data := []byte{s.kind}
		for _, m := range s.msgs {
			data, _ = AppendFrame(data, m)
		}
		f.Add(data)
		f.Add(data[:len(data)-1])
	}
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{1, 0x80})
	f.Add([]byte{3, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0x00})

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		k := fuzzKinds[int(data[0])%len(fuzzKinds)]
		r := NewReader(bytes.NewReader(data[1:]))
		for {
			m := k.new()
			err := r.ReadMsg(m, k.max)
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrFrameTooLarge) &&
					!errors.Is(err, ErrBadLength) && !errors.Is(err, ErrBadMessage) {
					t.Fatalf("unexpected error class: %v", err)
				}
				return
			}
			if cap(r.buf) > k.max {
				t.Fatalf("buffer of %d bytes for limit %d", cap(r.buf), k.max)
			}
			if k.validate(m) == nil {
				// A valid message survives a round trip.
				b, err := AppendFrame(nil, m)
				if err != nil {
					t.Fatal(err)
				}
				m2 := k.new()
				if err := NewReader(bytes.NewReader(b)).ReadMsg(m2, k.max); err != nil {
					t.Fatalf("re-read: %v", err)
				}
				if !proto.Equal(m, m2) || k.validate(m2) != nil {
					t.Fatal("round trip changed a valid message")
				}
			}
		}
	})
}
