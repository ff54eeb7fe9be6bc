package live

import (
	"errors"
	"fmt"

	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
)

// PushID is the live push protocol: a child subscribes once and its parent
// pushes every new chunk (docs/protocol.md, "Live push").
const PushID = "/hivecast/live/1.0.0"

// Limits of the live push protocol.
const (
	// MaxPushRequest bounds a LiveRequest frame.
	MaxPushRequest = 1 << 10
	// MaxPushFrame bounds a LiveMessage frame: a chunk of MaxChunkData plus
	// its header and signature, or a redirect of MaxRedirect peers.
	MaxPushFrame = MaxChunkData + 4<<10
	// MaxAncestors bounds LiveStatus.ancestors (the depth of the tree).
	MaxAncestors = 64
	// MaxRedirect bounds Redirect.peers.
	MaxRedirect = 64
	// MaxFetch bounds LiveRequest.fetch (the chunks of one repair fetch).
	MaxFetch = 32
)

// ErrBadPush wraps every validation failure of a live push message.
var ErrBadPush = errors.New("live push: invalid message")

// ValidateRequest checks a LiveRequest and returns its stream ID.
func ValidateRequest(r *pb.LiveRequest) (cid.Cid, error) {
	id, err := wire.ParseContent(r.GetStream())
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: stream: %v", ErrBadPush, err)
	}
	if id.Prefix().Codec != CodecLive {
		return cid.Undef, fmt.Errorf("%w: not a live stream ID", ErrBadPush)
	}
	if r.Stripes > MaxStripes {
		return cid.Undef, fmt.Errorf("%w: %d stripes (max %d)", ErrBadPush, r.Stripes, MaxStripes)
	}
	if len(r.Fetch) > MaxFetch {
		return cid.Undef, fmt.Errorf("%w: fetch of %d chunks (max %d)", ErrBadPush, len(r.Fetch), MaxFetch)
	}
	if k := max(r.Stripes, 1); k < 32 && r.StripeMask>>k != 0 {
		return cid.Undef, fmt.Errorf("%w: stripe mask %#x names stripes beyond %d", ErrBadPush, r.StripeMask, k)
	}
	return id, nil
}

// ValidateMessage checks the shape of a LiveMessage (not signatures: the
// receiver verifies chunks with a Verifier and infos with VerifyInfo).
func ValidateMessage(m *pb.LiveMessage) error {
	switch x := m.GetMsg().(type) {
	case *pb.LiveMessage_Info:
		if x.Info == nil {
			return fmt.Errorf("%w: empty info", ErrBadPush)
		}
	case *pb.LiveMessage_Chunk:
		if x.Chunk == nil {
			return fmt.Errorf("%w: empty chunk", ErrBadPush)
		}
		if err := ValidateChunk(x.Chunk); err != nil {
			return fmt.Errorf("%w: %v", ErrBadPush, err)
		}
	case *pb.LiveMessage_Status:
		s := x.Status
		if s == nil {
			return fmt.Errorf("%w: empty status", ErrBadPush)
		}
		if len(s.Ancestors) > MaxAncestors {
			return fmt.Errorf("%w: %d ancestors (max %d)", ErrBadPush, len(s.Ancestors), MaxAncestors)
		}
		for _, a := range s.Ancestors {
			if !wire.ValidPeerID(a) {
				return fmt.Errorf("%w: bad ancestor peer ID", ErrBadPush)
			}
		}
		if s.Depth > MaxAncestors+1 {
			return fmt.Errorf("%w: depth %d", ErrBadPush, s.Depth)
		}
	case *pb.LiveMessage_Redirect:
		if x.Redirect == nil || len(x.Redirect.Peers) > MaxRedirect {
			return fmt.Errorf("%w: redirect of %d peers (max %d)", ErrBadPush, len(x.Redirect.GetPeers()), MaxRedirect)
		}
		for _, p := range x.Redirect.Peers {
			if p.Peer == nil {
				return fmt.Errorf("%w: redirect without peer", ErrBadPush)
			}
			if err := wire.ValidatePeerRecord(p.Peer); err != nil {
				return fmt.Errorf("%w: %v", ErrBadPush, err)
			}
		}
	case *pb.LiveMessage_End:
		if x.End == nil {
			return fmt.Errorf("%w: empty status", ErrBadPush)
		}
		if err := wire.ValidateStatus(x.End); err != nil {
			return fmt.Errorf("%w: %v", ErrBadPush, err)
		}
	default:
		return fmt.Errorf("%w: no known message", ErrBadPush)
	}
	return nil
}

// ReadMessage reads and validates one LiveMessage.
func ReadMessage(r *wire.Reader) (*pb.LiveMessage, error) {
	m := new(pb.LiveMessage)
	if err := r.ReadMsg(m, MaxPushFrame); err != nil {
		return nil, err
	}
	if err := ValidateMessage(m); err != nil {
		return nil, err
	}
	return m, nil
}

// ReadRequest reads and validates a LiveRequest.
func ReadRequest(r *wire.Reader) (*pb.LiveRequest, cid.Cid, error) {
	m := new(pb.LiveRequest)
	if err := r.ReadMsg(m, MaxPushRequest); err != nil {
		return nil, cid.Undef, err
	}
	id, err := ValidateRequest(m)
	return m, id, err
}
