package live

import (
	"errors"
	"github.com/hivecast/hivecast/node"
	"sort"
	"time"

	"github.com/hivecast/hivecast/node/bwlimit"
	"github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/wire"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// childQueue is how many chunks may wait for one child; a child that falls
// that far behind (its link is slower than the stream) is dropped, so that it
// finds a better parent and never holds back the others.
const childQueue = 128

const protectTag = "hivecast-live"

// child is a peer this node feeds.
type child struct {
	id   peer.ID
	q    chan queued
	gone chan struct{} // closed when the child is dropped
	once func()
}

// queued is a chunk waiting for a child, with its frame: encoded once in
// Stream.add and written as is to every child.
type queued struct {
	c     *pb.LiveChunk
	frame []byte
}

func (k *child) push(c queued) {
	select {
	case k.q <- c:
	case <-k.gone:
	default:
		k.once() // too slow: drop it
	}
}

// handlePush serves one child: it validates the request, takes the child or
// redirects it, then pushes chunks until either side closes.
func (s *Service) handlePush(ns network.Stream) {
	p := ns.Conn().RemotePeer()
	if err := ns.Scope().SetService("hivecast.live"); err != nil {
		ns.Reset()
		return
	}
	_ = ns.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := wire.NewReader(ns)
	req, id, err := live.ReadRequest(r)
	if err != nil {
		s.log.Debug("bad live request", "peer", p.String(), "err", err.Error())
		_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{Code: pb.Code_BAD_REQUEST, Message: "malformed request"}}})
		ns.Reset()
		return
	}
	_ = ns.SetReadDeadline(time.Time{})
	st := s.Stream(id)
	if st == nil {
		_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{Code: pb.Code_NOT_FOUND, Message: "not taking part in that stream"}}})
		ns.Close()
		return
	}
	st.serveChild(ns, r, p, req)
}

// capacity is how many children this node takes for st.
func (st *Stream) capacityLocked() int {
	max := st.svc.cfg.MaxChildren
	if up := st.svc.cfg.UploadRate; up > 0 {
		if st.info == nil || st.info.Bitrate == 0 {
			return min(max, 1) // rate unknown yet: take one child, redirect the rest
		}
		byRate := int(up * 8 / float64(st.info.Bitrate) / 1.1) // 10 % headroom for overhead
		if byRate < max {
			max = byRate
		}
	}
	return max
}

func (st *Stream) statusLocked() *pb.LiveStatus {
	ls := &pb.LiveStatus{LatestSeq: st.latest, Children: uint32(len(st.children)), MaxChildren: uint32(st.capacityLocked())}
	if st.info != nil {
		ls.Bitrate = st.info.Bitrate
	}
	if st.depth >= 0 {
		ls.Depth = uint32(st.depth)
	} else {
		ls.Depth = live.MaxAncestors + 1 // not attached: nobody should count on us
	}
	for _, a := range st.ancestors {
		ls.Ancestors = append(ls.Ancestors, []byte(a))
	}
	if st.parent != "" && !st.source {
		ls.Ancestors = append(ls.Ancestors, []byte(st.parent))
	}
	if len(ls.Ancestors) > live.MaxAncestors {
		ls.Ancestors = ls.Ancestors[len(ls.Ancestors)-live.MaxAncestors:]
	}
	return ls
}

// redirectLocked lists our children (and candidates) with room, for a child
// we cannot take.
func (st *Stream) redirectLocked() *pb.Redirect {
	type alt struct {
		id    peer.ID
		depth int
	}
	var alts []alt
	for id := range st.children {
		alts = append(alts, alt{id, st.depth + 1})
	}
	sort.Slice(alts, func(i, j int) bool { return alts[i].id < alts[j].id })
	rd := &pb.Redirect{}
	for _, a := range alts {
		if len(rd.Peers) >= live.MaxRedirect {
			break
		}
		rd.Peers = append(rd.Peers, &pb.LivePeer{Peer: node.PeerRecord(st.svc.h, a.id), Depth: uint32(max(a.depth, 0)), Spare: 1})
	}
	return rd
}

// childKeepalive: a child sends an empty LiveRequest every heartbeat; one
// silent this long is gone (a host that dies does not close its
// connections), and its slot is freed for the orphans looking for a parent.
const childKeepalive = time.Second

func (st *Stream) serveChild(ns network.Stream, r *wire.Reader, p peer.ID, req *pb.LiveRequest) {
	st.mu.Lock()
	if req.Probe {
		status, rd := st.statusLocked(), st.redirectLocked()
		if st.info == nil {
			status.Depth = live.MaxAncestors + 1
		}
		st.mu.Unlock()
		_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_Status{Status: status}})
		_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_Redirect{Redirect: rd}})
		_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{Code: pb.Code_OK, Message: "probe"}}})
		ns.Close()
		return
	}
	isAncestor := p == st.parent
	for _, a := range st.ancestors {
		if a == p {
			isAncestor = true
		}
	}
	_, already := st.children[p]
	if st.info == nil || isAncestor || already || len(st.children) >= st.capacityLocked() || st.ctx.Err() != nil {
		why := "no room"
		switch {
		case st.info == nil:
			why = "not receiving the stream yet"
		case isAncestor:
			why = "you feed this node: that would be a loop"
		case already:
			why = "already feeding you"
		}
		rd := st.redirectLocked()
		st.mu.Unlock()
		_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_Redirect{Redirect: rd}})
		_ = wire.WriteMsg(ns, &pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{Code: pb.Code_BUSY, Message: why}}})
		ns.Close()
		return
	}
	k := &child{id: p, q: make(chan queued, childQueue), gone: make(chan struct{})}
	var dropOnce bool
	k.once = func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		if !dropOnce {
			dropOnce = true
			close(k.gone)
			delete(st.children, p)
		}
	}
	info := st.info
	backlog := st.backlogLocked(req.FromSeq, req.FromLatest)
	waitStart := req.FromLatest && len(backlog) == 0
	status := st.statusLocked()
	st.children[p] = k
	st.wg.Add(1)
	st.mu.Unlock()
	st.svc.h.ConnManager().Protect(p, protectTag)
	defer st.wg.Done()
	defer k.once()
	defer st.svc.h.ConnManager().Unprotect(p, protectTag)

	// Notice the child leaving: it closes the stream, or stops sending its
	// keepalives.
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer k.once()
		for {
			_ = ns.SetReadDeadline(time.Now().Add(childKeepalive))
			if err := r.ReadMsg(&pb.LiveRequest{}, live.MaxPushRequest); err != nil {
				return
			}
		}
	}()
	defer func() {
		select {
		case <-readerDone:
		case <-time.After(2 * time.Second):
		}
		ns.Reset()
		<-readerDone
	}()

	w := bwlimit.Writer(st.ctx, ns, st.svc.cfg.Upload)
	writeFrame := func(buf []byte, chunk bool) error {
		_ = ns.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := w.Write(buf)
		if chunk && err == nil {
			st.mu.Lock()
			st.bytesOut += uint64(len(buf))
			st.rateOut.add(st.svc.cfg.Now(), len(buf))
			st.mu.Unlock()
		}
		return err
	}
	send := func(m *pb.LiveMessage) error {
		buf, err := wire.AppendFrame(nil, m)
		if err != nil {
			return err
		}
		return writeFrame(buf, m.GetChunk() != nil)
	}
	fail := func(err error) {
		if !errors.Is(err, errEnded) {
			st.svc.log.Debug("child dropped", "peer", p.String(), "err", err.Error())
		}
		ns.Reset()
	}
	if err := send(&pb.LiveMessage{Msg: &pb.LiveMessage_Info{Info: info}}); err != nil {
		fail(err)
		return
	}
	if err := send(&pb.LiveMessage{Msg: &pb.LiveMessage_Status{Status: status}}); err != nil {
		fail(err)
		return
	}
	next := uint64(0)
	sent := false
	for _, c := range backlog {
		if err := send(&pb.LiveMessage{Msg: &pb.LiveMessage_Chunk{Chunk: c}}); err != nil {
			fail(err)
			return
		}
		next, sent = c.Seq+1, true
	}
	hb := time.NewTicker(st.svc.cfg.Heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-st.ctx.Done():
			ns.Reset()
			return
		case <-k.gone:
			ns.Reset()
			return
		case qc := <-k.q:
			c := qc.c
			if sent && c.Seq < next && c.Flags&live.FlagEnd == 0 {
				continue // already in the backlog
			}
			if waitStart {
				if c.Flags&(live.FlagStart|live.FlagEnd) == 0 {
					continue
				}
				waitStart = false
			}
			if err := writeFrame(qc.frame, true); err != nil {
				fail(err)
				return
			}
			if c.Seq >= next {
				next, sent = c.Seq+1, true
			}
			if c.Flags&live.FlagEnd != 0 {
				_ = send(&pb.LiveMessage{Msg: &pb.LiveMessage_End{End: &pb.Status{Code: pb.Code_OK, Message: "end of stream"}}})
				_ = ns.CloseWrite()
				return
			}
		case <-hb.C:
			st.mu.Lock()
			status := st.statusLocked()
			st.mu.Unlock()
			if err := send(&pb.LiveMessage{Msg: &pb.LiveMessage_Status{Status: status}}); err != nil {
				fail(err)
				return
			}
		}
	}
}
