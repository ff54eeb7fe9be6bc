package live

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	mh "github.com/multiformats/go-multihash"
)

// CodecLive is the multicodec of a live stream ID (private-use range).
const CodecLive = 0x300001

// Limits of a StreamInfo.
const (
	InfoVersion     = 1            // the only StreamInfo version understood
	MaxNameBytes    = 255          // stream name, UTF-8
	MaxPublicKey    = 64           // bytes of a marshalled public key (Ed25519 needs 36)
	MIMETypeTS      = "video/mp2t" // the only container supported
	MaxChunkMillis  = 60_000       // sanity bound on StreamInfo.chunk_millis
	streamIDContext = "hivecast-live-v1"
)

// Errors returned by VerifyInfo, Verify and Sign. They are wrapped with detail.
var (
	ErrBadInfo      = errors.New("live: invalid stream info")
	ErrWrongStream  = errors.New("live: stream info does not belong to this stream ID")
	ErrKeyType      = errors.New("live: only Ed25519 keys are accepted")
	ErrBadChunk     = errors.New("live: malformed live chunk")
	ErrBadSignature = errors.New("live: bad chunk signature")
)

// StreamID returns the content ID of the stream named name published with
// key pub: CIDv1(CodecLive, sha2-256 multihash of
// "hivecast-live-v1" || 0x00 || MarshalPublicKey(pub) || 0x00 || name).
// Only Ed25519 keys are accepted; name must be valid UTF-8 of at most
// MaxNameBytes bytes.
func StreamID(pub crypto.PubKey, name string) (cid.Cid, error) {
	if pub == nil || pub.Type() != cryptopb.KeyType_Ed25519 {
		return cid.Undef, ErrKeyType
	}
	if err := checkName(name); err != nil {
		return cid.Undef, err
	}
	kb, err := crypto.MarshalPublicKey(pub)
	if err != nil {
		return cid.Undef, fmt.Errorf("live: marshal public key: %w", err)
	}
	return streamID(kb, name), nil
}

func streamID(marshalledKey []byte, name string) cid.Cid {
	h := sha256.New()
	h.Write([]byte(streamIDContext))
	h.Write([]byte{0})
	h.Write(marshalledKey)
	h.Write([]byte{0})
	h.Write([]byte(name))
	m, err := mh.Encode(h.Sum(nil), mh.SHA2_256)
	if err != nil { // cannot happen: sha2-256 with a 32-byte digest
		panic(err)
	}
	return cid.NewCidV1(CodecLive, m)
}

func checkName(name string) error {
	if len(name) > MaxNameBytes {
		return fmt.Errorf("%w: name is %d bytes, at most %d", ErrBadInfo, len(name), MaxNameBytes)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: name is not valid UTF-8", ErrBadInfo)
	}
	return nil
}

// NewStreamInfo returns the StreamInfo (version 1, MIME video/mp2t) of the
// stream named name published with pub. bitrate (bit/s, 0 if unknown) and
// chunkMillis are hints: they are not covered by the stream ID.
func NewStreamInfo(pub crypto.PubKey, name string, bitrate uint64, chunkMillis uint32) (*pb.StreamInfo, error) {
	if _, err := StreamID(pub, name); err != nil {
		return nil, err
	}
	kb, err := crypto.MarshalPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("live: marshal public key: %w", err)
	}
	return &pb.StreamInfo{
		Version:     InfoVersion,
		PublicKey:   kb,
		Name:        name,
		Mime:        MIMETypeTS,
		Bitrate:     bitrate,
		ChunkMillis: chunkMillis,
	}, nil
}

// VerifyInfo checks that info, received from an untrusted peer, describes
// the stream id, and returns the publisher's key. It checks: id is a CIDv1
// with codec CodecLive and a sha2-256 multihash; info.version is 1; the key
// is a canonically encoded Ed25519 libp2p public key; the name is valid
// UTF-8 of at most 255 bytes; mime is "video/mp2t"; chunk_millis is at most
// MaxChunkMillis; and StreamID(key, name) equals id.
//
// Only public_key and name are authenticated by the stream ID. bitrate and
// chunk_millis are unauthenticated hints that a relaying peer may alter.
func VerifyInfo(id cid.Cid, info *pb.StreamInfo) (crypto.PubKey, error) {
	if !id.Defined() || id.Version() != 1 || id.Type() != CodecLive {
		return nil, fmt.Errorf("%w: %v is not a live stream ID", ErrWrongStream, id)
	}
	dec, err := mh.Decode(id.Hash())
	if err != nil || dec.Code != mh.SHA2_256 || len(dec.Digest) != sha256.Size {
		return nil, fmt.Errorf("%w: stream ID does not use sha2-256", ErrWrongStream)
	}
	if info == nil {
		return nil, fmt.Errorf("%w: missing", ErrBadInfo)
	}
	if info.GetVersion() != InfoVersion {
		return nil, fmt.Errorf("%w: version %d", ErrBadInfo, info.GetVersion())
	}
	kb := info.GetPublicKey()
	if len(kb) == 0 || len(kb) > MaxPublicKey {
		return nil, fmt.Errorf("%w: public key is %d bytes", ErrBadInfo, len(kb))
	}
	pub, err := crypto.UnmarshalPublicKey(kb)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrBadInfo, err)
	}
	if pub.Type() != cryptopb.KeyType_Ed25519 {
		return nil, ErrKeyType
	}
	canon, err := crypto.MarshalPublicKey(pub)
	if err != nil || !bytes.Equal(canon, kb) {
		return nil, fmt.Errorf("%w: public key is not canonically encoded", ErrBadInfo)
	}
	if err := checkName(info.GetName()); err != nil {
		return nil, err
	}
	if info.GetMime() != MIMETypeTS {
		return nil, fmt.Errorf("%w: unsupported mime %q", ErrBadInfo, truncate(info.GetMime(), 64))
	}
	if info.GetChunkMillis() > MaxChunkMillis {
		return nil, fmt.Errorf("%w: chunk_millis %d", ErrBadInfo, info.GetChunkMillis())
	}
	if !streamID(kb, info.GetName()).Equals(id) {
		return nil, ErrWrongStream
	}
	return pub, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
