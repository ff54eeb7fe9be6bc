// Package chunk implements the chunk protocol, /hivecast/chunk/1.0.0, over any
// io.ReadWriter (a libp2p stream in the node, net.Pipe in tests). One stream
// carries one request: the client writes a ChunkRequest, the server answers
// with zero or more ChunkResponses and always ends with a Status.
//
// Neither side sets deadlines or closes the stream: cancellation and
// timeouts are the caller's job. To abandon a request, close (or reset) the
// stream; the blocked call then returns with the stream's error.
package chunk

import (
	"errors"
	"fmt"

	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
)

// ID is the protocol ID the node registers (as a protocol.ID).
const ID = "/hivecast/chunk/1.0.0"

// MaxRangeCount is the most chunks one GetRange may ask for.
const MaxRangeCount = 64

var (
	// ErrNotFound is returned by a Source that does not hold the content or
	// chunk, and by the client when the server answered NOT_FOUND.
	ErrNotFound = errors.New("chunk: not found")
	// ErrBusy: the server answered BUSY; retry later or elsewhere.
	ErrBusy = errors.New("chunk: peer busy")
	// ErrPartial: the server answered PARTIAL; the chunks it sent were
	// verified and delivered, the others must be fetched elsewhere.
	ErrPartial = errors.New("chunk: peer skipped some chunks")
	// ErrProtocol is wrapped by every error that means the peer broke the
	// protocol (malformed or unexpected messages, bad data). The caller
	// should stop using that peer. *VerifyError matches it too.
	ErrProtocol = errors.New("chunk: protocol violation")
)

// RemoteError is a status other than OK, NOT_FOUND, BUSY and PARTIAL:
// BAD_REQUEST, INTERNAL or a code this version does not know.
type RemoteError struct {
	Code    pb.Code
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("chunk: remote error %v: %q", e.Code, e.Message)
}

// VerifyError means the peer sent data that does not match the manifest: a
// chunk with a wrong hash or length. The caller should drop that peer.
// errors.Is(err, ErrProtocol) is true for it.
type VerifyError struct {
	Index uint64
	Err   error
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("chunk: chunk %d failed verification: %v", e.Index, e.Err)
}
func (e *VerifyError) Unwrap() error        { return e.Err }
func (e *VerifyError) Is(target error) bool { return target == ErrProtocol }

// Source is what the server needs from the application for files.
type Source interface {
	// Manifest returns the serialized manifest of the file id, exactly the
	// bytes its ID hashes, or ErrNotFound.
	Manifest(id cid.Cid) ([]byte, error)
	// Chunk returns chunk index of file id, or ErrNotFound if it is not
	// held. buf is a scratch buffer the source may fill and return (for
	// example buf[:n] or append(buf[:0], ...)); it is reused after the
	// chunk has been written. Any other error ends the response INTERNAL.
	Chunk(id cid.Cid, index uint64, buf []byte) ([]byte, error)
}

// LiveSource is implemented by a Source that also serves live streams.
// Serve hands it every valid request whose content ID has the live codec;
// if the Source does not implement it, such requests get NOT_FOUND.
type LiveSource interface {
	// ServeLive answers req (already validated) about stream id. It sends
	// StreamInfo or LiveChunk responses (never a Status) through send, in
	// order, and returns the Status that ends the response, which Serve
	// writes. If send fails, ServeLive should return at once; its status is
	// then dropped.
	ServeLive(id cid.Cid, req *pb.ChunkRequest, send func(*pb.ChunkResponse) error) *pb.Status
}
