package chunk

import (
	"errors"
	"fmt"
	"io"

	"github.com/hivecast/hivecast/protocol/manifest"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
)

func protocolErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// readResponse reads and structurally validates one ChunkResponse. A stream
// that ends before the Status is an error wrapping io.ErrUnexpectedEOF; a
// malformed or oversize frame wraps ErrProtocol.
func readResponse(r *wire.Reader, max int) (*pb.ChunkResponse, error) {
	var resp pb.ChunkResponse
	if err := r.ReadMsg(&resp, max); err != nil {
		switch {
		case err == io.EOF:
			return nil, fmt.Errorf("chunk: stream ended before the status: %w", io.ErrUnexpectedEOF)
		case errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, wire.ErrBadMessage), errors.Is(err, wire.ErrBadLength):
			return nil, protocolErr("%v", err)
		}
		return nil, fmt.Errorf("chunk: reading response: %w", err)
	}
	if err := wire.ValidateChunkResponse(&resp); err != nil {
		return nil, protocolErr("%v", err)
	}
	return &resp, nil
}

// statusErr maps a final status to the error the caller gets.
func statusErr(st *pb.Status) error {
	switch st.Code {
	case pb.Code_OK:
		return nil
	case pb.Code_NOT_FOUND:
		return ErrNotFound
	case pb.Code_BUSY:
		return ErrBusy
	case pb.Code_PARTIAL:
		return ErrPartial
	}
	return &RemoteError{Code: st.Code, Message: st.Message}
}

// FetchManifest asks for the manifest of file id over rw and returns it
// verified against id. The response must be exactly the manifest followed
// by an OK status. It returns ErrNotFound, ErrBusy or a *RemoteError for
// those statuses, and an error wrapping ErrProtocol if the peer misbehaved
// (for a bad manifest it also wraps manifest.ErrMismatch or
// manifest.ErrInvalid).
func FetchManifest(rw io.ReadWriter, id cid.Cid) (*manifest.Manifest, error) {
	if k, err := manifest.KindOf(id); err != nil {
		return nil, fmt.Errorf("chunk: %w", err)
	} else if k != manifest.KindFile {
		return nil, fmt.Errorf("chunk: %v is not a file ID", id)
	}
	req := &pb.ChunkRequest{Content: id.Bytes(), Op: &pb.ChunkRequest_GetDescriptor{GetDescriptor: &pb.GetDescriptor{}}}
	if err := wire.WriteMsg(rw, req); err != nil {
		return nil, fmt.Errorf("chunk: writing request: %w", err)
	}
	r := wire.NewReader(rw)
	resp, err := readResponse(r, wire.MaxManifestFrame)
	if err != nil {
		return nil, err
	}
	var raw []byte
	switch msg := resp.Msg.(type) {
	case *pb.ChunkResponse_End:
		if err := statusErr(msg.End); err != nil && !errors.Is(err, ErrPartial) {
			return nil, err
		}
		return nil, protocolErr("status %v without a manifest", msg.End.Code)
	case *pb.ChunkResponse_Manifest:
		raw = msg.Manifest
	default:
		return nil, protocolErr("unexpected %T in answer to get_descriptor", msg)
	}
	m, err := manifest.Decode(raw, id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	resp, err = readResponse(r, wire.MaxChunkFrame)
	if err != nil {
		return nil, err
	}
	if st := resp.GetEnd(); st == nil || st.Code != pb.Code_OK {
		return nil, protocolErr("manifest not followed by an OK status")
	}
	return m, nil
}

// FetchRange asks for chunks first .. first+count-1 of file m over rw. It
// calls fn for each chunk the server sends, in increasing index order, and
// only after the chunk has been verified against m; data is valid only
// during the call. If fn returns an error, FetchRange returns it at once
// (the caller should then close the stream).
//
// Result: nil if all chunks arrived (status OK); ErrPartial if the server
// skipped some (those it sent were delivered); ErrNotFound, ErrBusy or
// *RemoteError for those statuses; *VerifyError for a chunk that fails
// verification; an error wrapping ErrProtocol for any other violation: a
// chunk not requested, out of order or repeated, a status inconsistent with
// what was sent, or an unexpected message. A range outside the manifest or a
// count outside 1..MaxRangeCount is refused before anything is sent.
func FetchRange(rw io.ReadWriter, m *manifest.Manifest, first uint64, count int, fn func(index uint64, data []byte) error) error {
	n := uint64(m.NumChunks())
	if count < 1 || count > MaxRangeCount || first >= n || uint64(count) > n-first {
		return fmt.Errorf("chunk: range %d+%d outside 1..%d chunks of %d", first, count, MaxRangeCount, n)
	}
	req := &pb.ChunkRequest{Content: m.ID().Bytes(), Op: &pb.ChunkRequest_GetRange{GetRange: &pb.GetRange{First: first, Count: uint32(count)}}}
	if err := wire.WriteMsg(rw, req); err != nil {
		return fmt.Errorf("chunk: writing request: %w", err)
	}
	r := wire.NewReader(rw)
	next, end := first, first+uint64(count) // next: lowest index still acceptable
	got := 0
	for {
		resp, err := readResponse(r, wire.MaxChunkFrame)
		if err != nil {
			return err
		}
		switch msg := resp.Msg.(type) {
		case *pb.ChunkResponse_Chunk:
			idx := msg.Chunk.Index
			if idx < next || idx >= end {
				return protocolErr("chunk %d not expected (requested %d..%d, next acceptable %d)", idx, first, end-1, next)
			}
			if err := m.Verify(int(idx), msg.Chunk.Data); err != nil {
				return &VerifyError{Index: idx, Err: err}
			}
			next = idx + 1
			got++
			if err := fn(idx, msg.Chunk.Data); err != nil {
				return err
			}
		case *pb.ChunkResponse_End:
			return checkEnd(msg.End, got, count)
		default:
			return protocolErr("unexpected %T in answer to get_range", msg)
		}
	}
}

// checkEnd checks that the final status agrees with the chunks received.
func checkEnd(st *pb.Status, got, count int) error {
	switch st.Code {
	case pb.Code_OK:
		if got != count {
			return protocolErr("status OK after %d of %d chunks", got, count)
		}
	case pb.Code_PARTIAL:
		if got == 0 || got == count {
			return protocolErr("status PARTIAL after %d of %d chunks", got, count)
		}
	case pb.Code_NOT_FOUND:
		if got != 0 {
			return protocolErr("status NOT_FOUND after %d chunks", got)
		}
	}
	return statusErr(st)
}
