package pex

import (
	"bytes"
	"io"
	"testing"

	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"google.golang.org/protobuf/proto"
)

func fuzzFrame(m proto.Message) []byte { b, _ := wire.AppendFrame(nil, m); return b }

// FuzzServe: arbitrary request bytes. The server writes either nothing (and
// returns an error) or one valid response within the limits.
func FuzzServe(f *testing.F) {
	c := testCID(f).Bytes()
	f.Add(fuzzFrame(&pb.PexRequest{Content: c, Max: 1}))
	f.Add(fuzzFrame(&pb.PexRequest{Content: c, Max: 64}))
	f.Add(fuzzFrame(&pb.PexRequest{Content: c}))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	var peers []*pb.PeerRecord
	for i := range 70 {
		p := &pb.PeerRecord{Id: peerID(byte(i)), Addrs: [][]byte{bytes.Repeat([]byte{byte(i)}, 1+i%300)}}
		if i%7 == 0 {
			p.Id = p.Id[:5]
		}
		peers = append(peers, p)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &src{peers: peers}
		var out bytes.Buffer
		err := Serve(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), &out}, s)
		if err != nil {
			if out.Len() != 0 {
				t.Fatal("wrote a response and returned an error")
			}
			return
		}
		var resp pb.PexResponse
		r := wire.NewReader(&out)
		if err := r.ReadMsg(&resp, wire.MaxPexResponse); err != nil {
			t.Fatal(err)
		}
		if err := wire.ValidatePexResponse(&resp); err != nil || len(resp.Peers) > s.max {
			t.Fatalf("invalid response (%d peers for max %d): %v", len(resp.Peers), s.max, err)
		}
		if r.ReadMsg(&resp, wire.MaxPexResponse) != io.EOF {
			t.Fatal("more than one response")
		}
	})
}

// FuzzRequest: arbitrary response bytes. Whatever Request returns without an
// error is within the limits.
func FuzzRequest(f *testing.F) {
	f.Add(fuzzFrame(&pb.PexResponse{}))
	f.Add(fuzzFrame(&pb.PexResponse{Peers: []*pb.PeerRecord{{Id: peerID(1), Addrs: [][]byte{{4, 1, 2, 3, 4}}}}}))
	f.Add(fuzzFrame(&pb.PexResponse{Peers: []*pb.PeerRecord{{Id: append([]byte{0, 36}, make([]byte, 36)...)}, {Id: peerID(2)}}}))
	f.Add(fuzzFrame(&pb.PexResponse{Peers: []*pb.PeerRecord{{Id: []byte{0, 0}}}}))
	f.Add([]byte{0x80})
	c := testCID(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		peers, err := Request(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), io.Discard}, c, 8)
		if err != nil {
			return
		}
		if len(peers) > 8 {
			t.Fatalf("%d peers for max 8", len(peers))
		}
		for _, p := range peers {
			if err := wire.ValidatePeerRecord(p); err != nil {
				t.Fatal(err)
			}
		}
	})
}
