// Package manifest describes shared files: it chunks a file, hashes each
// chunk with sha2-256, serializes the description (a pb.Manifest) once and
// derives the file's content ID from those exact bytes. A Manifest is
// immutable and safe for concurrent use.
package manifest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

const (
	// Version is the only manifest version this package reads and writes.
	Version = 1
	// DefaultChunkSize is the chunk size used when none is given.
	DefaultChunkSize = 256 << 10
	// MinChunkSize and MaxChunkSize bound the chunk size, which must also be
	// a power of two.
	MinChunkSize = 16 << 10
	MaxChunkSize = wire.MaxChunkData
	// MaxNameLen and MaxMimeLen bound the name and MIME type in bytes.
	MaxNameLen = 255
	MaxMimeLen = 255
	// MaxChunks bounds the number of chunks: every chunk hash costs 34 bytes
	// of the serialized manifest, which is at most wire.MaxManifest bytes.
	MaxChunks = (wire.MaxManifest - 1024) / (2 + sha256.Size)

	// CodecRaw is the CID codec of a file ID, CodecLive that of a live
	// stream ID.
	CodecRaw  = wire.CodecRaw
	CodecLive = wire.CodecLive
)

// Errors returned by Decode and Build, wrapped with detail.
var (
	// ErrMismatch: the manifest bytes do not hash to the requested ID.
	ErrMismatch = errors.New("manifest: bytes do not match the content ID")
	// ErrInvalid: the manifest is malformed or breaks a rule or limit.
	ErrInvalid = errors.New("manifest: invalid")
)

// Errors carried by a *ChunkError.
var (
	ErrChunkIndex  = errors.New("chunk index out of range")
	ErrChunkLength = errors.New("chunk has the wrong length")
	ErrChunkHash   = errors.New("chunk hash mismatch")
)

// ChunkError is returned by Verify. Err is ErrChunkIndex, ErrChunkLength or
// ErrChunkHash; errors.Is sees through it.
type ChunkError struct {
	Index int
	Err   error
}

func (e *ChunkError) Error() string { return fmt.Sprintf("manifest: chunk %d: %v", e.Index, e.Err) }
func (e *ChunkError) Unwrap() error { return e.Err }

// Manifest is a decoded, validated file manifest.
type Manifest struct {
	raw       []byte
	id        cid.Cid
	name      string
	mime      string
	size      int64
	chunkSize int
	hashes    []byte // NumChunks()*32 bytes, chunk i at [32i, 32i+32)
}

// ID returns the file's content ID: CIDv1, codec raw (0x55), multihash
// sha2-256 of Bytes().
func (m *Manifest) ID() cid.Cid { return m.id }

// Bytes returns the serialized manifest, exactly the bytes ID() hashes. The
// caller must not modify them.
func (m *Manifest) Bytes() []byte { return m.raw }

func (m *Manifest) Name() string   { return m.name }
func (m *Manifest) Mime() string   { return m.mime }
func (m *Manifest) Size() int64    { return m.size }
func (m *Manifest) ChunkSize() int { return m.chunkSize }

// NumChunks returns ceil(Size / ChunkSize).
func (m *Manifest) NumChunks() int { return len(m.hashes) / sha256.Size }

// ChunkLen returns the length of chunk i: ChunkSize, except for the last
// chunk which may be shorter. It returns 0 if i is out of range.
func (m *Manifest) ChunkLen(i int) int {
	n := m.NumChunks()
	switch {
	case i < 0 || i >= n:
		return 0
	case i < n-1:
		return m.chunkSize
	default:
		return int(m.size - int64(n-1)*int64(m.chunkSize))
	}
}

// ChunkOffset returns the byte offset of chunk i in the file.
func (m *Manifest) ChunkOffset(i int) int64 { return int64(i) * int64(m.chunkSize) }

// ChunkHash returns the sha2-256 digest of chunk i (not a copy; do not
// modify), or nil if i is out of range.
func (m *Manifest) ChunkHash(i int) []byte {
	if i < 0 || i >= m.NumChunks() {
		return nil
	}
	return m.hashes[i*sha256.Size : (i+1)*sha256.Size : (i+1)*sha256.Size]
}

// Verify checks that data is chunk i: its length and its sha2-256 digest. It
// returns nil or a *ChunkError.
func (m *Manifest) Verify(i int, data []byte) error {
	want := m.ChunkHash(i)
	if want == nil {
		return &ChunkError{Index: i, Err: ErrChunkIndex}
	}
	if len(data) != m.ChunkLen(i) {
		return &ChunkError{Index: i, Err: fmt.Errorf("%w: %d bytes, want %d", ErrChunkLength, len(data), m.ChunkLen(i))}
	}
	if sum := sha256.Sum256(data); !bytes.Equal(sum[:], want) {
		return &ChunkError{Index: i, Err: ErrChunkHash}
	}
	return nil
}

// checkChunkSize enforces the chunk size rule.
func checkChunkSize(n uint64) error {
	if n < MinChunkSize || n > MaxChunkSize || n&(n-1) != 0 {
		return fmt.Errorf("%w: chunk size %d is not a power of two in [%d, %d]", ErrInvalid, n, MinChunkSize, MaxChunkSize)
	}
	return nil
}

func checkText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s of %d bytes, limit %d", ErrInvalid, field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, field)
	}
	return nil
}

// numChunks returns ceil(size/chunkSize) without overflow.
func numChunks(size, chunkSize uint64) uint64 {
	n := size / chunkSize
	if size%chunkSize != 0 {
		n++
	}
	return n
}

// Build reads r to its end, splits it into chunks of chunkSize bytes (0 means
// DefaultChunkSize) and returns the manifest. The file must not be empty.
func Build(r io.Reader, name, mime string, chunkSize int) (*Manifest, error) {
	if chunkSize == 0 {
		chunkSize = DefaultChunkSize
	}
	if chunkSize < 0 {
		return nil, fmt.Errorf("%w: negative chunk size", ErrInvalid)
	}
	if err := checkChunkSize(uint64(chunkSize)); err != nil {
		return nil, err
	}
	if err := checkText("name", name, MaxNameLen); err != nil {
		return nil, err
	}
	if err := checkText("mime", mime, MaxMimeLen); err != nil {
		return nil, err
	}
	buf := make([]byte, chunkSize)
	var hashes [][]byte
	var size int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if len(hashes) == MaxChunks {
				return nil, fmt.Errorf("%w: file has more than %d chunks of %d bytes", ErrInvalid, MaxChunks, chunkSize)
			}
			sum := sha256.Sum256(buf[:n])
			hashes = append(hashes, sum[:])
			size += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("manifest: reading file: %w", err)
		}
	}
	if size == 0 {
		return nil, fmt.Errorf("%w: empty file", ErrInvalid)
	}
	raw, err := proto.Marshal(&pb.Manifest{
		Version:     Version,
		Name:        name,
		Size:        uint64(size),
		ChunkSize:   uint32(chunkSize),
		Mime:        mime,
		ChunkHashes: hashes,
	})
	if err != nil {
		return nil, fmt.Errorf("manifest: marshal: %w", err)
	}
	flat := make([]byte, 0, len(hashes)*sha256.Size)
	for _, h := range hashes {
		flat = append(flat, h...)
	}
	return &Manifest{
		raw:       raw,
		id:        idOf(raw),
		name:      name,
		mime:      mime,
		size:      size,
		chunkSize: chunkSize,
		hashes:    flat,
	}, nil
}

func idOf(raw []byte) cid.Cid {
	sum := sha256.Sum256(raw)
	h, err := multihash.Encode(sum[:], multihash.SHA2_256)
	if err != nil {
		panic(err) // cannot happen: sha2-256 with a 32-byte digest
	}
	return cid.NewCidV1(CodecRaw, h)
}

// Decode checks that raw hashes to want (a file ID) and decodes and validates
// it. Errors wrap ErrMismatch or ErrInvalid. Decode keeps its own copy of raw.
//
// The encoding is parsed field by field so that a hostile manifest cannot
// make Decode allocate more than a small multiple of len(raw), which is at
// most wire.MaxManifest: known fields with the wrong wire type, uint32
// fields above 2^32-1 and chunk hashes that are not 32 bytes are rejected;
// unknown fields are skipped; for a repeated scalar field the last value
// wins, as in protobuf.
func Decode(raw []byte, want cid.Cid) (*Manifest, error) {
	if err := wire.CheckContent(want); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if want.Type() != CodecRaw {
		return nil, fmt.Errorf("manifest: %v is not a file ID", want)
	}
	if len(raw) > wire.MaxManifest {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalid, len(raw), wire.MaxManifest)
	}
	if got := idOf(raw); !got.Equals(want) {
		return nil, fmt.Errorf("%w: got %v, want %v", ErrMismatch, got, want)
	}
	m, err := parse(raw)
	if err != nil {
		return nil, err
	}
	m.raw = bytes.Clone(raw)
	m.id = want
	return m, nil
}

func parse(b []byte) (*Manifest, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	var (
		version, chunkSize, size uint64
		name, mime               []byte
		hashes                   []byte
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, bad("field tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		want := protowire.Type(-1)
		switch num {
		case 1, 3, 4:
			want = protowire.VarintType
		case 2, 5, 6:
			want = protowire.BytesType
		}
		if want >= 0 && typ != want {
			return nil, bad("field %d has wire type %d, want %d", num, typ, want)
		}
		switch num {
		case 1, 3, 4:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, bad("field %d: %v", num, protowire.ParseError(n))
			}
			b = b[n:]
			if num != 3 && v > math.MaxUint32 {
				return nil, bad("field %d: %d overflows uint32", num, v)
			}
			switch num {
			case 1:
				version = v
			case 3:
				size = v
			case 4:
				chunkSize = v
			}
		case 2, 5, 6:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, bad("field %d: %v", num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case 2:
				name = v
			case 5:
				mime = v
			case 6:
				if len(v) != sha256.Size {
					return nil, bad("chunk hash %d has %d bytes, want %d", len(hashes)/sha256.Size, len(v), sha256.Size)
				}
				if hashes == nil {
					hashes = make([]byte, 0, min(len(b)+len(v), MaxChunks*sha256.Size))
				}
				hashes = append(hashes, v...)
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, bad("field %d: %v", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	if version != Version {
		return nil, bad("version %d, want %d", version, Version)
	}
	if err := checkText("name", string(name), MaxNameLen); err != nil {
		return nil, err
	}
	if err := checkText("mime", string(mime), MaxMimeLen); err != nil {
		return nil, err
	}
	if err := checkChunkSize(chunkSize); err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, bad("size is 0")
	}
	nh := uint64(len(hashes) / sha256.Size)
	if want := numChunks(size, chunkSize); nh != want {
		return nil, bad("%d chunk hashes for %d bytes in chunks of %d, want %d", nh, size, chunkSize, want)
	}
	if nh > MaxChunks {
		return nil, bad("%d chunks, limit %d", nh, MaxChunks)
	}
	return &Manifest{
		name:      string(name),
		mime:      string(mime),
		size:      int64(size),
		chunkSize: int(chunkSize),
		hashes:    bytes.Clone(hashes),
	}, nil
}

// Kind tells a file ID from a live stream ID.
type Kind int

const (
	KindFile Kind = iota + 1
	KindLive
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindLive:
		return "live"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ParseID parses a content ID in its text form (any multibase; hivecast
// prints base32, "bafk..." for files) and tells its kind.
func ParseID(s string) (cid.Cid, Kind, error) {
	s = strings.TrimSpace(s)
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, 0, fmt.Errorf("malformed ID: %q: %v", s, err)
	}
	k, err := KindOf(c)
	if err != nil {
		return cid.Undef, 0, err
	}
	return c, k, nil
}

// KindOf checks that c is a hivecast content ID (CIDv1, sha2-256) and returns
// its kind.
func KindOf(c cid.Cid) (Kind, error) {
	if c.Version() != 1 {
		return 0, fmt.Errorf("malformed ID: %v is a CIDv%d, want CIDv1", c, c.Version())
	}
	var k Kind
	switch c.Type() {
	case CodecRaw:
		k = KindFile
	case CodecLive:
		k = KindLive
	default:
		return 0, fmt.Errorf("unknown content type (codec 0x%x) in %v: not a hivecast file or stream", c.Type(), c)
	}
	if err := wire.CheckContent(c); err != nil {
		return 0, fmt.Errorf("malformed ID: %v: %v", c, err)
	}
	return k, nil
}

// MimeFromName guesses a container MIME type from a file name's extension.
func MimeFromName(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".ts", ".m2ts", ".mts":
		return "video/mp2t"
	case ".mp4", ".m4v":
		return "video/mp4"
	case ".mkv":
		return "video/x-matroska"
	case ".webm":
		return "video/webm"
	case ".mov":
		return "video/quicktime"
	case ".avi":
		return "video/x-msvideo"
	case ".flv":
		return "video/x-flv"
	case ".ogv":
		return "video/ogg"
	}
	return "application/octet-stream"
}
