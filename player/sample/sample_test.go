package sample

import "testing"

func TestSample(t *testing.T) {
	if len(TS) != Size {
		t.Fatalf("len(TS) = %d, want %d", len(TS), Size)
	}
	if len(TS)%188 != 0 {
		t.Fatalf("len(TS) = %d is not a multiple of 188", len(TS))
	}
	for off := 0; off < len(TS); off += 188 {
		if TS[off] != 0x47 {
			t.Fatalf("no sync byte at %d", off)
		}
	}
}
