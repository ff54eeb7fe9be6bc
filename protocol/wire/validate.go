package wire

import (
	"errors"
	"fmt"
	"math"

	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
)

// Content ID codecs (multicodec table values).
const (
	// CodecRaw marks a file: the CID hashes the serialized Manifest.
	CodecRaw = 0x55
	// CodecLive marks a live stream (hivecast-live, private-use range).
	CodecLive = 0x300001
)

const (
	mhSHA2256     = 0x12
	mhIdentity    = 0x00
	sha256DigestN = 32
)

// ErrInvalid is wrapped by every validation error of this package.
var ErrInvalid = errors.New("wire: invalid message")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// ParseContent parses a binary content ID as sent on the wire. It must be the
// canonical encoding of a CIDv1 with codec CodecRaw or CodecLive and a
// sha2-256 multihash: 0x01, varint codec, 0x12 0x20, 32 digest bytes, nothing
// else.
func ParseContent(b []byte) (cid.Cid, error) {
	c, err := cid.Cast(b)
	if err != nil {
		return cid.Undef, invalid("content ID: %v", err)
	}
	if err := CheckContent(c); err != nil {
		return cid.Undef, err
	}
	return c, nil
}

// CheckContent reports whether c is a hivecast content ID: CIDv1, codec
// CodecRaw or CodecLive, multihash sha2-256 with a 32-byte digest.
func CheckContent(c cid.Cid) error {
	if !c.Defined() {
		return invalid("content ID: undefined")
	}
	if c.Version() != 1 {
		return invalid("content ID: CIDv%d, want CIDv1", c.Version())
	}
	if t := c.Type(); t != CodecRaw && t != CodecLive {
		return invalid("content ID: unknown content type (codec 0x%x)", t)
	}
	h := []byte(c.Hash())
	if len(h) != 2+sha256DigestN || h[0] != mhSHA2256 || h[1] != sha256DigestN {
		return invalid("content ID: multihash is not sha2-256")
	}
	return nil
}

// ValidateChunkRequest checks a decoded ChunkRequest: a valid content ID,
// exactly one operation, and for GetRange a count in 1..MaxRangeCount whose
// last index does not overflow.
func ValidateChunkRequest(req *pb.ChunkRequest) error {
	if _, err := ParseContent(req.GetContent()); err != nil {
		return err
	}
	switch op := req.GetOp().(type) {
	case *pb.ChunkRequest_GetDescriptor:
		if op.GetDescriptor == nil {
			return invalid("get_descriptor is nil")
		}
	case *pb.ChunkRequest_GetRange:
		r := op.GetRange
		if r == nil {
			return invalid("get_range is nil")
		}
		if r.Count < 1 || r.Count > MaxRangeCount {
			return invalid("get_range count %d, want 1..%d", r.Count, MaxRangeCount)
		}
		if r.First > math.MaxUint64-uint64(r.Count-1) {
			return invalid("get_range overflows: first %d count %d", r.First, r.Count)
		}
	case nil:
		return invalid("chunk request has no operation")
	default:
		return invalid("chunk request: unknown operation %T", op)
	}
	return nil
}

// ValidateStatus checks a decoded Status. Unknown codes are accepted here
// (enums are open); the receiver treats them as a generic remote error.
func ValidateStatus(s *pb.Status) error {
	if s == nil {
		return invalid("status is nil")
	}
	if len(s.Message) > MaxStatusMessage {
		return invalid("status message of %d bytes, limit %d", len(s.Message), MaxStatusMessage)
	}
	return nil
}

// ValidateChunkResponse checks the structure of a decoded ChunkResponse:
// exactly one message set, within its limits. It does not check content
// against a manifest or a signature; that is the client's job.
func ValidateChunkResponse(resp *pb.ChunkResponse) error {
	switch msg := resp.GetMsg().(type) {
	case *pb.ChunkResponse_Manifest:
		if len(msg.Manifest) == 0 || len(msg.Manifest) > MaxManifest {
			return invalid("manifest of %d bytes, want 1..%d", len(msg.Manifest), MaxManifest)
		}
	case *pb.ChunkResponse_StreamInfo:
		if msg.StreamInfo == nil {
			return invalid("stream_info is nil")
		}
	case *pb.ChunkResponse_Chunk:
		if msg.Chunk == nil {
			return invalid("chunk is nil")
		}
		if n := len(msg.Chunk.Data); n == 0 || n > MaxChunkData {
			return invalid("chunk of %d bytes, want 1..%d", n, MaxChunkData)
		}
	case *pb.ChunkResponse_LiveChunk:
		if msg.LiveChunk == nil {
			return invalid("live_chunk is nil")
		}
		if n := len(msg.LiveChunk.Data); n > MaxChunkData {
			return invalid("live chunk of %d bytes, limit %d", n, MaxChunkData)
		}
	case *pb.ChunkResponse_End:
		return ValidateStatus(msg.End)
	case nil:
		return invalid("chunk response is empty")
	default:
		return invalid("chunk response: unknown message %T", msg)
	}
	return nil
}

// ValidatePexRequest checks a decoded PexRequest.
func ValidatePexRequest(req *pb.PexRequest) error {
	if _, err := ParseContent(req.GetContent()); err != nil {
		return err
	}
	if req.GetMax() < 1 || req.GetMax() > MaxPexPeers {
		return invalid("pex max %d, want 1..%d", req.GetMax(), MaxPexPeers)
	}
	return nil
}

// ValidatePexResponse checks a decoded PexResponse: at most MaxPexPeers
// records, each valid per ValidatePeerRecord.
func ValidatePexResponse(resp *pb.PexResponse) error {
	if n := len(resp.GetPeers()); n > MaxPexPeers {
		return invalid("pex response with %d peers, limit %d", n, MaxPexPeers)
	}
	for i, p := range resp.GetPeers() {
		if err := ValidatePeerRecord(p); err != nil {
			return fmt.Errorf("peer %d: %w", i, err)
		}
	}
	return nil
}

// ValidatePeerRecord checks one PeerRecord: the ID looks like a binary peer ID
// (see ValidPeerID) and there are at most MaxPexAddrs addresses of
// 1..MaxAddrLen bytes. Addresses are not parsed as multiaddrs here; the node
// parses them and drops those it cannot use.
func ValidatePeerRecord(p *pb.PeerRecord) error {
	if p == nil {
		return invalid("peer record is nil")
	}
	if !ValidPeerID(p.Id) {
		return invalid("malformed peer ID %x", truncate(p.Id, 48))
	}
	if len(p.Addrs) > MaxPexAddrs {
		return invalid("%d addresses, limit %d", len(p.Addrs), MaxPexAddrs)
	}
	for _, a := range p.Addrs {
		if len(a) == 0 || len(a) > MaxAddrLen {
			return invalid("address of %d bytes, want 1..%d", len(a), MaxAddrLen)
		}
	}
	return nil
}

// ValidPeerID reports whether id has the shape of a binary libp2p peer ID: an
// identity multihash (0x00, length 1..42, the inlined public key) or a
// sha2-256 multihash (0x12 0x20 and 32 bytes).
func ValidPeerID(id []byte) bool {
	switch {
	case len(id) == 2+sha256DigestN && id[0] == mhSHA2256 && id[1] == sha256DigestN:
		return true
	case len(id) >= 3 && id[0] == mhIdentity && id[1] >= 1 && id[1] <= maxInlineKey && len(id) == 2+int(id[1]):
		return true
	}
	return false
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
