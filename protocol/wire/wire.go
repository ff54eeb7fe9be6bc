// Package wire implements hivecast's message framing and the validation of
// decoded messages. It knows nothing about connections: it reads from an
// io.Reader and writes to an io.Writer, so the same code runs over libp2p
// streams, net.Pipe in tests and byte slices in fuzz targets.
//
// A frame is an unsigned varint (LEB128, as in protobuf) holding the length
// of the payload, followed by that many bytes of protobuf. See
// docs/protocol.md for the normative description.
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"
)

// Size limits. A reader refuses a frame whose announced length exceeds the
// limit for the message it expects before it allocates anything.
const (
	// MaxRequest bounds a ChunkRequest or PexRequest frame.
	MaxRequest = 4 << 10
	// MaxChunkData is the largest chunk payload (the largest chunk size).
	MaxChunkData = 4 << 20
	// MaxChunkFrame bounds a ChunkResponse carrying a chunk, a live chunk, a
	// stream description or a status.
	MaxChunkFrame = MaxChunkData + 1<<10
	// MaxManifest bounds the serialized Manifest.
	MaxManifest = 8 << 20
	// MaxManifestFrame bounds a ChunkResponse carrying a manifest.
	MaxManifestFrame = MaxManifest + 1<<10
	// MaxStatusMessage bounds Status.message in bytes.
	MaxStatusMessage = 1024
	// MaxRangeCount is the largest GetRange.count.
	MaxRangeCount = 64
	// MaxPexPeers bounds PexRequest.max and the records of a PexResponse.
	MaxPexPeers = 64
	// MaxPexAddrs bounds the addresses of one PeerRecord.
	MaxPexAddrs = 16
	// MaxAddrLen bounds one binary multiaddr in a PeerRecord.
	MaxAddrLen = 256
	// MaxPeerIDLen bounds a binary peer ID (identity multihash of an
	// inlined key of at most 42 bytes, or sha2-256 multihash).
	MaxPeerIDLen = 2 + maxInlineKey
	// MaxPexResponse bounds a PexResponse frame. It follows from the limits
	// above: every field costs at most 3 bytes of tag and length besides its
	// content (4 for a record).
	MaxPexResponse = MaxPexPeers * (4 + (2 + MaxPeerIDLen) + MaxPexAddrs*(3+MaxAddrLen))

	maxInlineKey = 42
)

// Errors returned by Reader.ReadMsg. They are wrapped with detail; test them
// with errors.Is.
var (
	// ErrFrameTooLarge: the announced length exceeds the limit. Nothing was
	// allocated; the stream is unusable afterwards.
	ErrFrameTooLarge = errors.New("wire: frame too large")
	// ErrBadLength: the length prefix is not a valid varint.
	ErrBadLength = errors.New("wire: malformed length prefix")
	// ErrBadMessage: the payload is not a valid protobuf encoding of the
	// expected message.
	ErrBadMessage = errors.New("wire: malformed message")
)

// AppendFrame appends the frame of m (length prefix and payload) to dst.
func AppendFrame(dst []byte, m proto.Message) ([]byte, error) {
	size := proto.Size(m)
	dst = binary.AppendUvarint(dst, uint64(size))
	start := len(dst)
	dst, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(dst, m)
	if err != nil {
		return nil, fmt.Errorf("wire: marshal %T: %w", m, err)
	}
	if len(dst)-start != size {
		return nil, fmt.Errorf("wire: marshal %T: size changed during encoding", m)
	}
	return dst, nil
}

// WriteMsg writes m as one frame with a single Write call.
func WriteMsg(w io.Writer, m proto.Message) error {
	buf, err := AppendFrame(make([]byte, 0, binary.MaxVarintLen64+proto.Size(m)), m)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// growStep is how much of an announced frame is allocated before its bytes
// arrive: a peer that announces a large frame and then stalls costs us at most
// this much, not the whole announced length.
const growStep = 64 << 10

// Reader reads frames from a buffered stream. It is not safe for concurrent
// use. Its payload buffer is reused between messages; decoded messages never
// alias it (protobuf copies bytes fields).
type Reader struct {
	br  *bufio.Reader
	buf []byte
}

// NewReader returns a Reader over r. If r is already a *bufio.Reader it is
// used directly.
func NewReader(r io.Reader) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	return &Reader{br: br}
}

// ReadMsg reads one frame of at most max payload bytes and unmarshals it into
// m (which it resets first).
//
// It returns io.EOF (unwrapped) if the stream ended cleanly before the first
// byte of a frame, an error wrapping io.ErrUnexpectedEOF if it ended inside a
// frame, ErrFrameTooLarge if the announced length exceeds max (checked before
// any allocation), ErrBadLength for a malformed prefix, ErrBadMessage if the
// payload does not decode, and other read errors as they come. ReadMsg does
// not validate message contents beyond protobuf; see the Validate functions.
func (r *Reader) ReadMsg(m proto.Message, max int) error {
	n, err := r.readLen()
	if err != nil {
		return err
	}
	if n > uint64(max) {
		return fmt.Errorf("%w: %d bytes announced, limit %d", ErrFrameTooLarge, n, max)
	}
	payload, err := r.readPayload(int(n))
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(payload, m); err != nil {
		return fmt.Errorf("%w: %T: %v", ErrBadMessage, m, err)
	}
	return nil
}

func (r *Reader) readLen() (uint64, error) {
	var x uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		b, err := r.br.ReadByte()
		if err != nil {
			if err == io.EOF {
				if i == 0 {
					return 0, io.EOF
				}
				return 0, fmt.Errorf("wire: stream ended inside a length prefix: %w", io.ErrUnexpectedEOF)
			}
			return 0, err
		}
		if i == binary.MaxVarintLen64-1 && b > 1 {
			return 0, fmt.Errorf("%w: overflows 64 bits", ErrBadLength)
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return x, nil
		}
	}
	return 0, fmt.Errorf("%w: overflows 64 bits", ErrBadLength)
}

func (r *Reader) readPayload(n int) ([]byte, error) {
	buf := r.buf[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			c := max(2*cap(buf), growStep)
			buf = append(make([]byte, 0, min(c, n)), buf...)
			r.buf = buf
		}
		end := min(n, cap(buf))
		k, err := io.ReadFull(r.br, buf[len(buf):end])
		buf = buf[:len(buf)+k]
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil, fmt.Errorf("wire: stream ended after %d of %d payload bytes: %w", len(buf), n, io.ErrUnexpectedEOF)
			}
			return nil, err
		}
	}
	return buf, nil
}
