package live

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hivecast/hivecast/player/sample"
)

func TestShiftTSRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 90000, pts33 - 1, 0x1_2345_6789 % pts33} {
		f := make([]byte, 5)
		// Encode v with marker bits as a muxer would ('0010' prefix).
		f[0] = 0x21 | byte(v>>29)&0x0e
		f[1] = byte(v >> 22)
		f[2] = byte(v>>14) | 1
		f[3] = byte(v >> 7)
		f[4] = byte(v<<1) | 1
		shiftTS(f, 12345)
		got := uint64(f[0]>>1&7)<<30 | uint64(f[1])<<22 | uint64(f[2]>>1)<<15 | uint64(f[3])<<7 | uint64(f[4]>>1)
		if want := (v + 12345) % pts33; got != want {
			t.Errorf("shift %d: got %d want %d", v, got, want)
		}
		if f[0]&0xf1 != 0x21 || f[2]&1 != 1 || f[4]&1 != 1 {
			t.Errorf("marker bits lost: % x", f)
		}
	}
}

// Three passes of the sample clip make one clean 30 s stream: ffmpeg decodes
// it without a single timestamp or continuity complaint, and its duration is
// three times the clip's.
func TestLooperSeamless(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	l := NewLooper(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(sample.TS)), nil })
	out := make([]byte, 3*len(sample.TS))
	if _, err := io.ReadFull(l, out); err != nil {
		t.Fatal(err)
	}
	if l.Passes() != 2 {
		t.Fatalf("passes completed = %d, want 2", l.Passes())
	}
	path := filepath.Join(t.TempDir(), "looped.ts")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	msg, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(msg)) > 0 {
		t.Fatalf("looped stream does not decode cleanly: %v\n%s", err, msg)
	}
	probe, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(probe)), 64)
	// Each pass lasts its PCR span (10.4 s for the sample: the mux's buffering
	// makes it a little longer than its 10.0 s of frames), so time never runs
	// backwards; the frames of three passes span between the two.
	if err != nil || d < 30 || d > 31.5 {
		t.Fatalf("duration %q, want 30 to 31.5 s", probe)
	}
	// The plain concatenation, for contrast, is what players used to get.
	plain := filepath.Join(t.TempDir(), "plain.ts")
	_ = os.WriteFile(plain, bytes.Repeat(sample.TS, 3), 0o644)
	if msg, _ := exec.Command("ffmpeg", "-v", "error", "-i", plain, "-f", "null", "-").CombinedOutput(); len(bytes.TrimSpace(msg)) == 0 {
		t.Log("note: plain concatenation also decodes cleanly with this ffmpeg")
	}
}

// FuzzLooper: any input (garbage, truncated packets, hostile adaptation
// field lengths) loops without panicking, and what comes out is whole
// packets.
func FuzzLooper(f *testing.F) {
	f.Add(sample.TS[:188*20])
	f.Add(bytes.Repeat([]byte{0x47, 0x40, 0, 0x30, 0xff}, 100))
	f.Add([]byte{0x47})
	f.Fuzz(func(t *testing.T, in []byte) {
		l := NewLooper(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(in)), nil })
		buf := make([]byte, 3*len(in))
		n, err := io.ReadFull(l, buf)
		if err != nil {
			if n%PacketSize != 0 && !strings.Contains(err.Error(), "188-byte") && !strings.Contains(err.Error(), "no whole") {
				t.Fatalf("partial output %d bytes, err %v", n, err)
			}
			return
		}
		for i := 0; i+PacketSize <= n; i += PacketSize {
			if buf[i] != 0x47 {
				t.Fatalf("packet %d lost its sync byte", i/PacketSize)
			}
		}
	})
}
