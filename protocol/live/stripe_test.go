package live

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hivecast/hivecast/protocol/wire/pb"
)

func TestStripes(t *testing.T) {
	whole := StripeSet(0, 0)
	for seq := uint64(0); seq < 10; seq++ {
		if !whole.Has(seq) {
			t.Fatalf("the whole stream lacks %d", seq)
		}
	}
	if whole.Share() != 1 || whole.Count() != 1 {
		t.Fatalf("whole stream: share %v count %d", whole.Share(), whole.Count())
	}
	s := One(2, 4)
	var got []uint64
	for seq := uint64(0); seq < 12; seq++ {
		if s.Has(seq) {
			got = append(got, seq)
		}
	}
	if fmt.Sprint(got) != "[2 6 10]" || s.Share() != 0.25 || s.First() != 2 {
		t.Fatalf("stripe 2 of 4: %v share %v first %d", got, s.Share(), s.First())
	}
	if all := StripeSet(4, 0); all.Mask != 0xf || all.Share() != 1 {
		t.Fatalf("all of 4: %+v", all)
	}
	if all := StripeSet(32, 0); all.Mask != ^uint32(0) {
		t.Fatalf("all of 32: %+v", all)
	}
}

func TestHomeSpreads(t *testing.T) {
	count := make([]int, 4)
	for i := 0; i < 4000; i++ {
		count[Home([]byte(fmt.Sprintf("peer-%d", i)), 4)]++
	}
	for i, c := range count {
		if c < 900 || c > 1100 {
			t.Fatalf("home stripe %d holds %d of 4000 peers: %v", i, c, count)
		}
	}
	if Home([]byte("x"), 1) != 0 || Home([]byte("x"), 0) != 0 {
		t.Fatal("one stripe: home must be 0")
	}
}

func TestValidateRequestStripes(t *testing.T) {
	s := pushSigner(t)
	for _, tc := range []struct {
		k, mask uint32
		ok      bool
	}{{0, 0, true}, {4, 0b1000, true}, {4, 0b10000, false}, {33, 1, false}, {32, ^uint32(0), true}, {1, 2, false}} {
		_, err := ValidateRequest(&pb.LiveRequest{Stream: s.ID().Bytes(), Stripes: tc.k, StripeMask: tc.mask})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadPush)) {
			t.Errorf("stripes %d mask %#x: err %v, want ok=%v", tc.k, tc.mask, err, tc.ok)
		}
	}
}
