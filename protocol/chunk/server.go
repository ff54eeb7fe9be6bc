package chunk

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
)

// Serve answers one request read from rw with the help of src.
//
// It returns nil when it wrote a complete response, whatever its status,
// except INTERNAL. It returns an error when the request could not be read
// (nothing written), when the request was malformed (after answering
// BAD_REQUEST; the node may count this against the peer), when src failed
// (after answering INTERNAL) or when writing failed. Serve neither closes nor
// resets rw.
func Serve(rw io.ReadWriter, src Source) error {
	var req pb.ChunkRequest
	if err := wire.NewReader(rw).ReadMsg(&req, wire.MaxRequest); err != nil {
		if errors.Is(err, wire.ErrFrameTooLarge) || errors.Is(err, wire.ErrBadMessage) || errors.Is(err, wire.ErrBadLength) {
			return badRequest(rw, err)
		}
		return fmt.Errorf("chunk: reading request: %w", err)
	}
	if err := wire.ValidateChunkRequest(&req); err != nil {
		return badRequest(rw, err)
	}
	id, _ := cid.Cast(req.Content) // validated above
	if id.Type() == wire.CodecLive {
		ls, ok := src.(LiveSource)
		if !ok {
			return end(rw, pb.Code_NOT_FOUND, "no live streams here")
		}
		return serveLive(rw, ls, id, &req)
	}
	switch op := req.Op.(type) {
	case *pb.ChunkRequest_GetDescriptor:
		return serveManifest(rw, src, id)
	case *pb.ChunkRequest_GetRange:
		return serveRange(rw, src, id, op.GetRange.First, int(op.GetRange.Count))
	}
	panic("unreachable: validated request without an operation")
}

func serveManifest(rw io.Writer, src Source, id cid.Cid) error {
	raw, err := src.Manifest(id)
	switch {
	case errors.Is(err, ErrNotFound):
		return end(rw, pb.Code_NOT_FOUND, "")
	case err != nil:
		return internal(rw, err)
	case len(raw) == 0 || len(raw) > wire.MaxManifest:
		return internal(rw, fmt.Errorf("source returned a manifest of %d bytes", len(raw)))
	}
	if err := wire.WriteMsg(rw, &pb.ChunkResponse{Msg: &pb.ChunkResponse_Manifest{Manifest: raw}}); err != nil {
		return fmt.Errorf("chunk: writing manifest: %w", err)
	}
	return end(rw, pb.Code_OK, "")
}

func serveRange(rw io.Writer, src Source, id cid.Cid, first uint64, count int) error {
	var buf []byte
	sent := 0
	for i := range uint64(count) {
		index := first + i
		data, err := src.Chunk(id, index, buf[:0])
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return internal(rw, fmt.Errorf("chunk %d: %w", index, err))
		}
		if len(data) == 0 || len(data) > wire.MaxChunkData {
			return internal(rw, fmt.Errorf("source returned chunk %d of %d bytes", index, len(data)))
		}
		resp := &pb.ChunkResponse{Msg: &pb.ChunkResponse_Chunk{Chunk: &pb.Chunk{Index: index, Data: data}}}
		if err := wire.WriteMsg(rw, resp); err != nil {
			return fmt.Errorf("chunk: writing chunk %d: %w", index, err)
		}
		sent++
		if cap(data) > cap(buf) {
			buf = data
		}
	}
	switch {
	case sent == count:
		return end(rw, pb.Code_OK, "")
	case sent == 0:
		return end(rw, pb.Code_NOT_FOUND, "")
	default:
		return end(rw, pb.Code_PARTIAL, fmt.Sprintf("%d of %d chunks", sent, count))
	}
}

func serveLive(rw io.Writer, ls LiveSource, id cid.Cid, req *pb.ChunkRequest) error {
	var werr error
	send := func(resp *pb.ChunkResponse) error {
		if werr != nil {
			return werr
		}
		if _, ok := resp.GetMsg().(*pb.ChunkResponse_End); ok {
			werr = errors.New("chunk: LiveSource sent a Status through send")
			return werr
		}
		if err := wire.ValidateChunkResponse(resp); err != nil {
			werr = fmt.Errorf("chunk: LiveSource sent an invalid response: %w", err)
			return werr
		}
		if err := wire.WriteMsg(rw, resp); err != nil {
			werr = fmt.Errorf("chunk: writing live response: %w", err)
		}
		return werr
	}
	st := ls.ServeLive(id, req, send)
	if werr != nil {
		return werr
	}
	if st == nil {
		st = &pb.Status{Code: pb.Code_INTERNAL}
	}
	return end(rw, st.Code, st.Message)
}

func badRequest(w io.Writer, cause error) error {
	if err := end(w, pb.Code_BAD_REQUEST, cause.Error()); err != nil {
		return err
	}
	return fmt.Errorf("chunk: bad request: %w", cause)
}

func internal(w io.Writer, cause error) error {
	if err := end(w, pb.Code_INTERNAL, "internal error"); err != nil {
		return err
	}
	return fmt.Errorf("chunk: source failed: %w", cause)
}

func end(w io.Writer, code pb.Code, msg string) error {
	if len(msg) > wire.MaxStatusMessage {
		msg = msg[:wire.MaxStatusMessage]
	}
	msg = strings.ToValidUTF8(msg, "")
	if err := wire.WriteMsg(w, &pb.ChunkResponse{Msg: &pb.ChunkResponse_End{End: &pb.Status{Code: code, Message: msg}}}); err != nil {
		return fmt.Errorf("chunk: writing status: %w", err)
	}
	return nil
}
