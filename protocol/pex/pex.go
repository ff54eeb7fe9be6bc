// Package pex implements peer exchange, /hivecast/pex/1.0.0: a peer asks
// another for peers that hold (or watch) some content. One stream carries one
// PexRequest and one PexResponse. Like the chunk protocol it runs over any
// io.ReadWriter; deadlines and closing the stream are the caller's job.
package pex

import (
	"fmt"
	"io"

	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/ipfs/go-cid"
)

// ID is the protocol ID the node registers (as a protocol.ID).
const ID = "/hivecast/pex/1.0.0"

// MaxPeers is the most records one request may ask for.
const MaxPeers = wire.MaxPexPeers

// Source is what the server needs from the application.
type Source interface {
	// Peers returns up to max peers known to have content. The server
	// drops records that break the limits (see wire.ValidatePeerRecord)
	// and any beyond max.
	Peers(content cid.Cid, max int) []*pb.PeerRecord
}

// Serve reads one PexRequest from rw and answers it. A malformed request is
// not answered: Serve returns an error and the caller resets the stream.
func Serve(rw io.ReadWriter, src Source) error {
	var req pb.PexRequest
	if err := wire.NewReader(rw).ReadMsg(&req, wire.MaxRequest); err != nil {
		return fmt.Errorf("pex: reading request: %w", err)
	}
	if err := wire.ValidatePexRequest(&req); err != nil {
		return fmt.Errorf("pex: bad request: %w", err)
	}
	content, _ := cid.Cast(req.Content) // validated above
	max := int(req.Max)
	resp := &pb.PexResponse{}
	for _, p := range src.Peers(content, max) {
		if len(resp.Peers) == max {
			break
		}
		if wire.ValidatePeerRecord(p) == nil {
			resp.Peers = append(resp.Peers, p)
		}
	}
	if err := wire.WriteMsg(rw, resp); err != nil {
		return fmt.Errorf("pex: writing response: %w", err)
	}
	return nil
}

// Request asks over rw for up to max (1..MaxPeers) peers holding content and
// returns the validated records. A response that breaks a limit, or has
// more than max records, is rejected whole (an error wrapping
// wire.ErrInvalid or wire.ErrBadMessage/ErrFrameTooLarge): the caller should
// stop asking that peer. Addresses are returned unparsed.
func Request(rw io.ReadWriter, content cid.Cid, max int) ([]*pb.PeerRecord, error) {
	if max < 1 || max > MaxPeers {
		return nil, fmt.Errorf("pex: max %d outside 1..%d", max, MaxPeers)
	}
	if err := wire.CheckContent(content); err != nil {
		return nil, fmt.Errorf("pex: %w", err)
	}
	if err := wire.WriteMsg(rw, &pb.PexRequest{Content: content.Bytes(), Max: uint32(max)}); err != nil {
		return nil, fmt.Errorf("pex: writing request: %w", err)
	}
	var resp pb.PexResponse
	if err := wire.NewReader(rw).ReadMsg(&resp, wire.MaxPexResponse); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("pex: reading response: %w", err)
	}
	if err := wire.ValidatePexResponse(&resp); err != nil {
		return nil, fmt.Errorf("pex: %w", err)
	}
	if len(resp.Peers) > max {
		return nil, fmt.Errorf("pex: %w: %d peers, asked for %d", wire.ErrInvalid, len(resp.Peers), max)
	}
	return resp.Peers, nil
}
