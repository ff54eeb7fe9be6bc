package sched

import "math/bits"

// bitset is a fixed-size set of chunk indices.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) get(i int) bool { return b[i>>6]&(1<<(uint(i)&63)) != 0 }
func (b bitset) set(i int)      { b[i>>6] |= 1 << (uint(i) & 63) }
func (b bitset) clear(i int)    { b[i>>6] &^= 1 << (uint(i) & 63) }

// next returns the smallest set index in [from, to), or -1. It skips
// whole words, so a scan over a mostly empty range costs to/64 steps.
func (b bitset) next(from, to int) int {
	if from < 0 {
		from = 0
	}
	if from >= to {
		return -1
	}
	w := from >> 6
	word := b[w] &^ (1<<(uint(from)&63) - 1)
	for {
		if word != 0 {
			i := w<<6 + bits.TrailingZeros64(word)
			if i >= to {
				return -1
			}
			return i
		}
		w++
		if w<<6 >= to || w >= len(b) {
			return -1
		}
		word = b[w]
	}
}

// nextClear returns the smallest index in [from, to) that is not set, or to.
func (b bitset) nextClear(from, to int) int {
	if from >= to {
		return to
	}
	w := from >> 6
	word := ^b[w] &^ (1<<(uint(from)&63) - 1)
	for {
		if word != 0 {
			i := w<<6 + bits.TrailingZeros64(word)
			if i >= to {
				return to
			}
			return i
		}
		w++
		if w<<6 >= to || w >= len(b) {
			return to
		}
		word = ^b[w]
	}
}
