package sim

import (
	"fmt"
	"net"
	"sync"

	"github.com/marcopolo/simnet"
)

// wireKinds counts the datagrams a node hands its simulated uplink by QUIC
// packet kind (RFC 9000 §17) and by destination: what a node's link carries
// below the streams, which the per-protocol stream counter does not see.
// The first byte of a QUIC packet is not encrypted in its kind bits: a long
// header (bit 0x80) is a handshake packet whose type is in bits 0x30; a short
// header is a 1-RTT packet. A 1-RTT datagram of at most smallPacket bytes
// carries no stream data worth the name (ACKs, pings, flow control, a
// close). Coalesced packets count as the kind of the first.
type wireKinds struct {
	*simnet.SimConn
	// idx gives the node index of an address (-1: unknown); nil: bytes
	// are not counted by destination (the lookup costs a map access and an
	// allocation per datagram, and only the source's are logged).
	idx func(net.Addr) int

	mu  sync.Mutex
	now wireCount
	to  map[int]int64 // bytes per destination node since the last take (idx set)
}

// smallPacket bounds a 1-RTT datagram counted as control, not data: an
// ACK-only packet with a few ranges is 30-60 bytes.
const smallPacket = 100

// wireCount is one interval's counts: packets and bytes per kind.
type wireCount struct {
	pkts  [numKinds]int64
	bytes [numKinds]int64
}

const (
	kindInitial = iota
	kindZeroRTT
	kindHandshake
	kindRetry
	kindSmall // 1-RTT, at most smallPacket bytes
	kindData  // 1-RTT, larger
	numKinds
)

var kindNames = [numKinds]string{"initial", "0-rtt", "handshake", "retry", "1-rtt small", "1-rtt data"}

// newWireKinds counts c's datagrams by kind, and by destination if idx is
// not nil.
func newWireKinds(c *simnet.SimConn, idx func(net.Addr) int) *wireKinds {
	w := &wireKinds{SimConn: c, idx: idx}
	if idx != nil {
		w.to = map[int]int64{}
	}
	return w
}

// WriteTo counts the datagram, then sends it.
func (w *wireKinds) WriteTo(p []byte, addr net.Addr) (int, error) {
	if len(p) > 0 {
		k := kindData
		switch {
		case p[0]&0x80 != 0:
			k = int(p[0]>>4) & 3
		case len(p) <= smallPacket:
			k = kindSmall
		}
		to := -1
		if w.idx != nil {
			to = w.idx(addr)
		}
		w.mu.Lock()
		w.now.pkts[k]++
		w.now.bytes[k] += int64(len(p))
		if w.to != nil {
			w.to[to] += int64(len(p))
		}
		w.mu.Unlock()
	}
	return w.SimConn.WriteTo(p, addr)
}

// take returns the counts since the last take and resets them.
func (w *wireKinds) take() (wireCount, map[int]int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, to := w.now, w.to
	w.now = wireCount{}
	if to != nil {
		w.to = map[int]int64{}
	}
	return c, to
}

func (c wireCount) plus(d wireCount) wireCount {
	for k := range numKinds {
		c.pkts[k] += d.pkts[k]
		c.bytes[k] += d.bytes[k]
	}
	return c
}

// String gives the kinds that were sent, as packets and kbit/s over one
// second.
func (c wireCount) String() string {
	s := ""
	for k := range numKinds {
		if c.pkts[k] == 0 {
			continue
		}
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%s %d pkts %.0f kbit/s", kindNames[k], c.pkts[k], float64(c.bytes[k])*8/1e3)
	}
	return s
}
