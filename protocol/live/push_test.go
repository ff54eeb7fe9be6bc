package live

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func pushSigner(t testing.TB) *Signer {
	priv, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(priv, "push")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func frame(t testing.TB, m *pb.LiveMessage) []byte {
	var b bytes.Buffer
	if err := wire.WriteMsg(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestPushMessagesRoundTrip(t *testing.T) {
	s := pushSigner(t)
	pid, _ := peer.Decode("12D3KooWA4YWmWPajye8V7pHN7zJEv72jJfK7MSqM4dFQVbBpJst")
	data := make([]byte, 188)
	data[0] = 0x47
	c := &pb.LiveChunk{Seq: 3, CaptureUnixMicros: 1, Data: data}
	if err := s.Sign(c); err != nil {
		t.Fatal(err)
	}
	msgs := []*pb.LiveMessage{
		{Msg: &pb.LiveMessage_Info{Info: s.Info(2e6, 100)}},
		{Msg: &pb.LiveMessage_Chunk{Chunk: c}},
		{Msg: &pb.LiveMessage_Status{Status: &pb.LiveStatus{LatestSeq: 3, Depth: 1, Ancestors: [][]byte{[]byte(pid)}}}},
		{Msg: &pb.LiveMessage_Redirect{Redirect: &pb.Redirect{Peers: []*pb.LivePeer{{Peer: &pb.PeerRecord{Id: []byte(pid)}, Depth: 1, Spare: 2}}}}},
		{Msg: &pb.LiveMessage_End{End: &pb.Status{Code: pb.Code_BUSY}}},
	}
	var all []byte
	for _, m := range msgs {
		all = append(all, frame(t, m)...)
	}
	r := wire.NewReader(bytes.NewReader(all))
	for i := range msgs {
		got, err := ReadMessage(r)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if _, ok := got.Msg.(*pb.LiveMessage_Chunk); ok {
			v, err := NewVerifier(s.ID(), s.Info(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Verify(got.GetChunk()); err != nil {
				t.Fatalf("chunk does not verify after the round trip: %v", err)
			}
		}
	}
}

func TestPushRejects(t *testing.T) {
	bad := []*pb.LiveMessage{
		{},
		{Msg: &pb.LiveMessage_Chunk{Chunk: &pb.LiveChunk{Data: []byte{1, 2, 3}}}},
		{Msg: &pb.LiveMessage_Status{Status: &pb.LiveStatus{Ancestors: [][]byte{[]byte("not a peer id")}}}},
		{Msg: &pb.LiveMessage_Redirect{Redirect: &pb.Redirect{Peers: make([]*pb.LivePeer, MaxRedirect+1)}}},
		{Msg: &pb.LiveMessage_Redirect{Redirect: &pb.Redirect{Peers: []*pb.LivePeer{{}}}}},
	}
	for i, m := range bad {
		if err := ValidateMessage(m); !errors.Is(err, ErrBadPush) {
			t.Errorf("case %d: err = %v, want ErrBadPush", i, err)
		}
	}
	if _, err := ValidateRequest(&pb.LiveRequest{Stream: []byte("junk")}); !errors.Is(err, ErrBadPush) {
		t.Errorf("junk stream ID accepted: %v", err)
	}
	// A file ID is not a live stream.
	s := pushSigner(t)
	if _, err := ValidateRequest(&pb.LiveRequest{Stream: s.ID().Bytes()}); err != nil {
		t.Errorf("valid live ID refused: %v", err)
	}
	// A repair fetch names at most MaxFetch chunks.
	if _, err := ValidateRequest(&pb.LiveRequest{Stream: s.ID().Bytes(), Fetch: make([]uint64, MaxFetch)}); err != nil {
		t.Errorf("fetch of MaxFetch chunks refused: %v", err)
	}
	if _, err := ValidateRequest(&pb.LiveRequest{Stream: s.ID().Bytes(), Fetch: make([]uint64, MaxFetch+1)}); !errors.Is(err, ErrBadPush) {
		t.Errorf("fetch of MaxFetch+1 chunks: err = %v, want ErrBadPush", err)
	}
	// The largest fetch fits a request frame.
	big := make([]uint64, MaxFetch)
	for i := range big {
		big[i] = ^uint64(0)
	}
	var b bytes.Buffer
	if err := wire.WriteMsg(&b, &pb.LiveRequest{Stream: s.ID().Bytes(), Fetch: big}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadRequest(wire.NewReader(&b)); err != nil {
		t.Errorf("largest fetch does not fit a request frame: %v", err)
	}
}

func FuzzReadMessage(f *testing.F) {
	s := pushSigner(f)
	data := make([]byte, 188)
	data[0] = 0x47
	c := &pb.LiveChunk{Seq: 1, Data: data}
	_ = s.Sign(c)
	f.Add(frame(f, &pb.LiveMessage{Msg: &pb.LiveMessage_Chunk{Chunk: c}}))
	f.Add(frame(f, &pb.LiveMessage{Msg: &pb.LiveMessage_Info{Info: s.Info(1, 100)}}))
	f.Add(frame(f, &pb.LiveMessage{Msg: &pb.LiveMessage_Status{Status: &pb.LiveStatus{LatestSeq: 9}}}))
	f.Add(frame(f, &pb.LiveMessage{Msg: &pb.LiveMessage_Status{Status: &pb.LiveStatus{LatestSeq: 9, Depth: 2, Children: 5, MaxChildren: 5, Pushable: 3}}}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{})
	v, err := NewVerifier(s.ID(), s.Info(0, 0))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := wire.NewReader(bytes.NewReader(b))
		for {
			m, err := ReadMessage(r)
			if err != nil {
				return
			}
			if ch := m.GetChunk(); ch != nil {
				// A chunk that verifies must be one the source signed.
				if v.Verify(ch) == nil && !(ch.Seq == 1 && bytes.Equal(ch.Data, data)) {
					t.Fatalf("forged chunk verified: seq %d", ch.Seq)
				}
			}
		}
	})
}

func FuzzReadRequest(f *testing.F) {
	s := pushSigner(f)
	var b bytes.Buffer
	_ = wire.WriteMsg(&b, &pb.LiveRequest{Stream: s.ID().Bytes(), FromLatest: true})
	f.Add(b.Bytes())
	b.Reset()
	_ = wire.WriteMsg(&b, &pb.LiveRequest{Stream: s.ID().Bytes(), Fetch: []uint64{7, 8, 1 << 40}})
	f.Add(b.Bytes())
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, in []byte) {
		_, _, _ = ReadRequest(wire.NewReader(bytes.NewReader(in)))
	})
}
