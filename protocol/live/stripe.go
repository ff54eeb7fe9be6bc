package live

import (
	"hash/fnv"
	"math/bits"
)

// MaxStripes bounds LiveRequest.stripes.
const MaxStripes = 32

// Stripes is the set of stripes a subscription asks for: the stream is cut
// into K stripes, stripe i being the chunks with seq % K == i (round robin),
// and a child may take each stripe from a different parent (docs/protocol.md,
// "Stripes"). The zero value, like K = 1, is the whole stream.
type Stripes struct {
	K    uint32 // number of stripes; 0 or 1: the whole stream
	Mask uint32 // bit i: stripe i wanted; 0: all of them
}

// StripeSet returns the set asked for by a request's stripes and
// stripe_mask fields, normalised (K >= 1, Mask non-zero, only bits < K).
func StripeSet(k, mask uint32) Stripes {
	if k == 0 {
		k = 1
	}
	all := uint32(1)<<k - 1
	if k == 32 {
		all = ^uint32(0)
	}
	if mask == 0 {
		mask = all
	}
	return Stripes{K: k, Mask: mask & all}
}

// One is the set holding stripe i of k.
func One(i, k int) Stripes {
	if k <= 1 {
		return Stripes{K: 1, Mask: 1}
	}
	return Stripes{K: uint32(k), Mask: 1 << uint(i)}
}

// Has reports whether the chunk seq belongs to the set.
func (s Stripes) Has(seq uint64) bool {
	if s.K <= 1 {
		return true
	}
	return s.Mask>>(seq%uint64(s.K))&1 == 1
}

// Count is the number of stripes in the set.
func (s Stripes) Count() int { return bits.OnesCount32(s.Mask) }

// Share is the set's share of the stream's bit rate (Count / K).
func (s Stripes) Share() float64 {
	if s.K <= 1 {
		return 1
	}
	return float64(s.Count()) / float64(s.K)
}

// First is the lowest stripe of the set.
func (s Stripes) First() int { return bits.TrailingZeros32(s.Mask) }

// Home is the stripe of k that peer id forwards first (its "home" stripe:
// the one tree where it is an interior node; SplitStream, 2003). It is a
// hash of the binary peer ID, so anybody can compute anybody's.
func Home(id []byte, k int) int {
	if k <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write(id)
	return int(h.Sum32() % uint32(k))
}
