package node

import (
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// PeerRecord describes p for peer exchange and redirects: its ID and the
// addresses h knows for it (its own listen addresses when p is h), within
// the wire limits.
func PeerRecord(h host.Host, p peer.ID) *pb.PeerRecord {
	addrs := h.Peerstore().Addrs(p)
	if p == h.ID() {
		addrs = h.Addrs()
	}
	rec := &pb.PeerRecord{Id: []byte(p)}
	for _, a := range addrs {
		if b := a.Bytes(); len(rec.Addrs) < wire.MaxPexAddrs && len(b) <= wire.MaxAddrLen {
			rec.Addrs = append(rec.Addrs, b)
		}
	}
	return rec
}

// AddrInfoFromRecord decodes a validated PeerRecord, skipping addresses
// that do not parse.
func AddrInfoFromRecord(rec *pb.PeerRecord) (peer.AddrInfo, error) {
	id, err := peer.IDFromBytes(rec.Id)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	ai := peer.AddrInfo{ID: id}
	for _, b := range rec.Addrs {
		if a, err := ma.NewMultiaddrBytes(b); err == nil {
			ai.Addrs = append(ai.Addrs, a)
		}
	}
	return ai, nil
}
