package live

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
)

// LiveChunk flags.
const (
	FlagStart  uint32 = 1 << 0 // chunk is a start point: PAT, PMT, then a keyframe
	FlagEnd    uint32 = 1 << 1 // end of stream; data is empty
	knownFlags        = FlagStart | FlagEnd
)

// Chunk limits.
const (
	PacketSize    = 188     // MPEG-TS packet size
	MaxChunkData  = 1 << 20 // bytes of LiveChunk.data, at most
	SignatureSize = ed25519.SignatureSize
	chunkContext  = "hivecast-live-chunk-v1"
)

// ValidateChunk checks the shape of c without its signature: flags only
// FlagStart and FlagEnd; FlagEnd chunks have no data and no FlagStart; other
// chunks have 1 to MaxChunkData bytes of data, a multiple of 188, and every
// packet begins with the sync byte 0x47; a FlagStart chunk begins with a
// packet of PID 0 (the PAT).
func ValidateChunk(c *pb.LiveChunk) error {
	if c == nil {
		return fmt.Errorf("%w: nil", ErrBadChunk)
	}
	f, d := c.GetFlags(), c.GetData()
	if f&^knownFlags != 0 {
		return fmt.Errorf("%w: unknown flags %#x", ErrBadChunk, f&^knownFlags)
	}
	if f&FlagEnd != 0 {
		if len(d) != 0 || f&FlagStart != 0 {
			return fmt.Errorf("%w: end-of-stream chunk with data or start flag", ErrBadChunk)
		}
		return nil
	}
	if len(d) == 0 {
		return fmt.Errorf("%w: empty data", ErrBadChunk)
	}
	if len(d) > MaxChunkData {
		return fmt.Errorf("%w: %d bytes of data, at most %d", ErrBadChunk, len(d), MaxChunkData)
	}
	if len(d)%PacketSize != 0 {
		return fmt.Errorf("%w: %d bytes of data is not a multiple of %d", ErrBadChunk, len(d), PacketSize)
	}
	for i := 0; i < len(d); i += PacketSize {
		if d[i] != syncByte {
			return fmt.Errorf("%w: no sync byte at offset %d", ErrBadChunk, i)
		}
	}
	if f&FlagStart != 0 && pid(d) != pidPAT {
		return fmt.Errorf("%w: start chunk does not begin with a PAT packet", ErrBadChunk)
	}
	return nil
}

// signedMessage holds the fixed prefix "hivecast-live-chunk-v1" || binary
// stream ID and appends the per-chunk part.
type signedMessage []byte

func newSignedMessage(id cid.Cid) signedMessage {
	idb := id.Bytes()
	m := make([]byte, 0, len(chunkContext)+len(idb)+8+8+4+sha256.Size)
	m = append(m, chunkContext...)
	return append(m, idb...)
}

// build returns prefix || seq || capture_unix_micros || flags || sha2-256(data)
// in a fresh buffer (safe for concurrent use).
func (p signedMessage) build(c *pb.LiveChunk) []byte {
	m := make([]byte, len(p), cap(p))
	copy(m, p)
	m = binary.BigEndian.AppendUint64(m, c.GetSeq())
	m = binary.BigEndian.AppendUint64(m, uint64(c.GetCaptureUnixMicros()))
	m = binary.BigEndian.AppendUint32(m, c.GetFlags())
	sum := sha256.Sum256(c.GetData())
	return append(m, sum[:]...)
}

// Signer signs the chunks of one stream. It is safe for concurrent use.
type Signer struct {
	priv crypto.PrivKey
	raw  ed25519.PrivateKey // nil: sign through priv
	name string
	id   cid.Cid
	msg  signedMessage
}

// NewSigner returns a signer for the stream named name published with priv,
// which must be an Ed25519 key.
func NewSigner(priv crypto.PrivKey, name string) (*Signer, error) {
	if priv == nil || priv.Type() != cryptopb.KeyType_Ed25519 {
		return nil, ErrKeyType
	}
	id, err := StreamID(priv.GetPublic(), name)
	if err != nil {
		return nil, err
	}
	s := &Signer{priv: priv, name: name, id: id, msg: newSignedMessage(id)}
	if raw, err := priv.Raw(); err == nil && len(raw) == ed25519.PrivateKeySize {
		s.raw = ed25519.PrivateKey(raw)
	}
	return s, nil
}

// ID returns the stream ID.
func (s *Signer) ID() cid.Cid { return s.id }

// Info returns the stream's StreamInfo with the given hints.
func (s *Signer) Info(bitrate uint64, chunkMillis uint32) *pb.StreamInfo {
	info, err := NewStreamInfo(s.priv.GetPublic(), s.name, bitrate, chunkMillis)
	if err != nil { // checked in NewSigner
		panic(err)
	}
	return info
}

// Sign checks the shape of c (ValidateChunk) and sets c.Signature to the
// Ed25519 signature of
// "hivecast-live-chunk-v1" || stream ID (binary CID) || seq (uint64 BE) ||
// capture_unix_micros (int64 BE, two's complement) || flags (uint32 BE) ||
// sha2-256(data).
func (s *Signer) Sign(c *pb.LiveChunk) error {
	if err := ValidateChunk(c); err != nil {
		return err
	}
	m := s.msg.build(c)
	if s.raw != nil {
		c.Signature = ed25519.Sign(s.raw, m)
		return nil
	}
	sig, err := s.priv.Sign(m)
	if err != nil {
		return fmt.Errorf("live: sign: %w", err)
	}
	c.Signature = sig
	return nil
}

// Verifier checks the chunks of one stream. It is safe for concurrent use.
type Verifier struct {
	id  cid.Cid
	pub ed25519.PublicKey
	msg signedMessage
}

// NewVerifier returns a verifier for stream id after checking info with
// VerifyInfo.
func NewVerifier(id cid.Cid, info *pb.StreamInfo) (*Verifier, error) {
	pub, err := VerifyInfo(id, info)
	if err != nil {
		return nil, err
	}
	raw, err := pub.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: raw Ed25519 key", ErrBadInfo)
	}
	return &Verifier{id: id, pub: ed25519.PublicKey(raw), msg: newSignedMessage(id)}, nil
}

// ID returns the stream ID.
func (v *Verifier) ID() cid.Cid { return v.id }

// Verify checks the shape of c (ValidateChunk, and a 64-byte signature)
// and then its signature. It returns nil only for an unmodified chunk
// signed by the stream's key.
func (v *Verifier) Verify(c *pb.LiveChunk) error {
	if err := ValidateChunk(c); err != nil {
		return err
	}
	if len(c.GetSignature()) != SignatureSize {
		return fmt.Errorf("%w: signature is %d bytes", ErrBadChunk, len(c.GetSignature()))
	}
	if !ed25519.Verify(v.pub, v.msg.build(c), c.GetSignature()) {
		return ErrBadSignature
	}
	return nil
}
