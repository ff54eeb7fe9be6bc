package pex

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/proto"
)

func testCID(t testing.TB) cid.Cid {
	h, err := multihash.Sum([]byte("content"), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(wire.CodecRaw, h)
}

func peerID(n byte) []byte { return append([]byte{0x12, 0x20}, bytes.Repeat([]byte{n}, 32)...) }

type src struct {
	peers []*pb.PeerRecord
	asked cid.Cid
	max   int
}

func (s *src) Peers(c cid.Cid, max int) []*pb.PeerRecord {
	s.asked, s.max = c, max
	return s.peers
}

func exchange(t *testing.T, s *src, content cid.Cid, max int) ([]*pb.PeerRecord, error, error) {
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() {
		err := Serve(b, s)
		b.Close()
		done <- err
	}()
	defer a.Close()
	peers, err := Request(a, content, max)
	return peers, err, <-done
}

func TestRoundTrip(t *testing.T) {
	c := testCID(t)
	s := &src{}
	for i := range 10 {
		s.peers = append(s.peers, &pb.PeerRecord{Id: peerID(byte(i)), Addrs: [][]byte{{4, 10, 0, 0, byte(i), 6, 0x1f, 0x40}}})
	}
	// One bad record (too many addresses) is dropped by the server.
	s.peers[3].Addrs = make([][]byte, wire.MaxPexAddrs+1)
	peers, err, serr := exchange(t, s, c, 5)
	if err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	if !s.asked.Equals(c) || s.max != 5 || len(peers) != 5 {
		t.Fatalf("asked %v max %d, got %d peers", s.asked, s.max, len(peers))
	}
	for i, want := range []int{0, 1, 2, 4, 5} {
		if !proto.Equal(peers[i], s.peers[want]) {
			t.Fatalf("peer %d differs", i)
		}
	}
	s.peers = nil
	if peers, err, serr := exchange(t, s, c, 64); err != nil || serr != nil || len(peers) != 0 {
		t.Fatal(peers, err, serr)
	}
}

func TestRequestRejects(t *testing.T) {
	c := testCID(t)
	for _, max := range []int{0, 65} {
		if _, err := Request(nil, c, max); err == nil {
			t.Fatalf("max %d accepted", max)
		}
	}
	if _, err := Request(nil, cid.Undef, 1); err == nil {
		t.Fatal("undefined CID accepted")
	}
	respond := func(resp []byte) error {
		a, b := net.Pipe()
		go func() {
			defer b.Close()
			var req pb.PexRequest
			if wire.NewReader(b).ReadMsg(&req, wire.MaxRequest) == nil {
				b.Write(resp)
			}
		}()
		defer a.Close()
		_, err := Request(a, c, 2)
		return err
	}
	frame := func(m proto.Message) []byte { b, _ := wire.AppendFrame(nil, m); return b }
	three := &pb.PexResponse{Peers: []*pb.PeerRecord{{Id: peerID(1)}, {Id: peerID(2)}, {Id: peerID(3)}}}
	for name, tc := range map[string]struct {
		resp []byte
		want error
	}{
		"more than max": {frame(three), wire.ErrInvalid},
		"bad id":        {frame(&pb.PexResponse{Peers: []*pb.PeerRecord{{Id: []byte("alice")}}}), wire.ErrInvalid},
		"long addr":     {frame(&pb.PexResponse{Peers: []*pb.PeerRecord{{Id: peerID(1), Addrs: [][]byte{make([]byte, 257)}}}}), wire.ErrInvalid},
		"oversize":      {[]byte{0xff, 0xff, 0xff, 0x0f}, wire.ErrFrameTooLarge},
		"garbage":       {[]byte{2, 0x0a, 0x05}, wire.ErrBadMessage},
		"nothing":       {nil, io.ErrUnexpectedEOF},
		"truncated":     {frame(three)[:10], io.ErrUnexpectedEOF},
	} {
		if err := respond(tc.resp); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestServeRejects(t *testing.T) {
	c := testCID(t).Bytes()
	frame := func(m proto.Message) []byte { b, _ := wire.AppendFrame(nil, m); return b }
	for name, in := range map[string][]byte{
		"empty":    nil,
		"max 0":    frame(&pb.PexRequest{Content: c}),
		"max 65":   frame(&pb.PexRequest{Content: c, Max: 65}),
		"bad cid":  frame(&pb.PexRequest{Content: []byte{1, 0x55}, Max: 3}),
		"oversize": {0x81, 0x20},
	} {
		s := &src{}
		var out bytes.Buffer
		err := Serve(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), &out}, s)
		if err == nil || out.Len() != 0 || s.asked.Defined() {
			t.Errorf("%s: err %v, wrote %d bytes, source asked: %v", name, err, out.Len(), s.asked.Defined())
		}
	}
}
