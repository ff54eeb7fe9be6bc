package live

import (
	"github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Internals the external tests check.
var (
	ParentTag  = parentTag
	ProtectTag = protectTag
)

// FetchBurstMin is the least a node answers at once to fetches.
const FetchBurstMin = fetchBurstMin

// RepairFetch has st fetch seqs from p at once, as its repair loop does.
func (st *Stream) RepairFetch(p peer.ID, seqs []uint64) { st.fetch(p, seqs) }

// Holds reports whether st holds chunk seq.
func (st *Stream) Holds(seq uint64) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.getLocked(seq) != nil
}

// Chunk returns chunk seq as st holds it (nil if it does not).
func (st *Stream) Chunk(seq uint64) *pb.LiveChunk {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.getLocked(seq)
}

// Info returns the stream's info (nil before it is known).
func (st *Stream) Info() *pb.StreamInfo {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.info
}

// Detached starts a viewer's stream of id on s that knows info (verified)
// and subscribes to nobody: its chunks come only from repair fetches.
func (s *Service) Detached(id cid.Cid, info *pb.StreamInfo) (*Stream, error) {
	v, err := live.NewVerifier(id, info)
	if err != nil {
		return nil, err
	}
	st, err := s.add(newStream(s, id, false))
	if err != nil {
		return nil, err
	}
	st.setInfo(info, v)
	return st, nil
}
