package live

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/hivecast/hivecast/protocol/wire/pb"
	"google.golang.org/protobuf/proto"
)

// fuzzSeedTS is a small valid stream: PAT, PMT, a keyframe with PCR, more
// video, a PCR jump backwards, another keyframe.
func fuzzSeedTS() []byte {
	var s []byte
	s = append(s, patPacket(0)...)
	s = append(s, pmtPacket(0, StreamTypeH264)...)
	s = append(s, tsPacket(tVideo, true, 0, pcrField(27_000_000, true), videoPES(0x09, 0x67, 0x68, 0x65))...)
	s = append(s, tsPacket(tVideo, false, 1, nil, bytes.Repeat([]byte{1}, 184))...)
	s = append(s, tsPacket(tVideo, true, 2, pcrField(29_700_000, false), videoPES(0x09, 0x41))...)
	s = append(s, tsPacket(tAudio, true, 0, nil, bytes.Repeat([]byte{2}, 184))...)
	s = append(s, tsPacket(tVideo, true, 3, pcrField(1_000, false), videoPES(0x09, 0x65))...)
	s = append(s, tsPacket(tVideo, false, 4, []byte{0x40}, bytes.Repeat([]byte{3}, 100))...)
	return s
}

func FuzzChunker(f *testing.F) {
	f.Add(fuzzSeedTS(), uint16(4), uint16(7), uint8(1))
	f.Add(append([]byte{0x47, 0x47, 0}, fuzzSeedTS()...), uint16(1), uint16(188), uint8(0))
	f.Add([]byte{}, uint16(0), uint16(0), uint8(0))
	f.Add(bytes.Repeat([]byte{0x47}, 600), uint16(3), uint16(100), uint8(2))
	if clip := os.Getenv("LIVE_FUZZ_CLIP"); clip != "" { // optional: a real file's first packets
		if b, err := os.ReadFile(clip); err == nil {
			f.Add(b[:min(len(b), 200*PacketSize)], uint16(20), uint16(4096), uint8(1))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, maxPackets, step uint16, target uint8) {
		cfg := Config{
			MaxBytes:       (3 + int(maxPackets)%64) * PacketSize,
			TargetDuration: time.Duration(target) * 10 * time.Millisecond,
		}
		c, err := NewChunker(cfg)
		if err != nil {
			t.Fatal(err)
		}
		st := max(1, int(step))
		var chunks []Chunk
		for rest := data; len(rest) > 0; {
			n := min(st, len(rest))
			chunks = append(chunks, c.Feed(rest[:n])...)
			rest = rest[n:]
		}
		chunks = append(chunks, c.Flush()...)
		var in []byte
		var prev time.Duration
		for i, ch := range chunks {
			if ch.Seq != uint64(i) || len(ch.Data) == 0 || len(ch.Data)%PacketSize != 0 || len(ch.Data) > cfg.MaxBytes {
				t.Fatalf("chunk %d: seq %d, %d bytes", i, ch.Seq, len(ch.Data))
			}
			if err := ValidateChunk(lc(ch)); err != nil {
				t.Fatalf("chunk %d: %v", i, err)
			}
			if ch.MediaTime < prev {
				t.Fatalf("chunk %d: media time goes back", i)
			}
			prev = ch.MediaTime
			in = append(in, ch.Data[ch.Prepended*PacketSize:]...)
		}
		s := c.Stats()
		if uint64(len(in)) != s.Packets*PacketSize || s.Packets*PacketSize+s.Discarded != uint64(len(data)) {
			t.Fatalf("%d bytes in chunks, %d packets, %d discarded, %d input", len(in), s.Packets, s.Discarded, len(data))
		}
		// Packets are delivered unchanged and in order: the output is a
		// subsequence of the input at packet granularity.
		pos := 0
		for o := 0; o < len(in); o += PacketSize {
			k := bytes.Index(data[pos:], in[o:o+PacketSize])
			if k < 0 {
				t.Fatalf("output packet at %d is not in the input", o)
			}
			pos += k + PacketSize
		}
	})
}

// fuzzSigner is a fixed key so that signed seeds stay valid between runs.
func fuzzSigner(t testing.TB) (*Signer, *Verifier, []*pb.LiveChunk) {
	s, err := NewSigner(testKey(t, 9), "fuzz")
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(s.ID(), s.Info(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	var good []*pb.LiveChunk
	good = append(good, signedTestChunk(t, s, 0, 2, FlagStart))
	good = append(good, signedTestChunk(t, s, 1, 1, 0))
	good = append(good, signedTestChunk(t, s, 2, 0, FlagEnd))
	return s, v, good
}

func sameFields(a, b *pb.LiveChunk) bool {
	return a.GetSeq() == b.GetSeq() && a.GetCaptureUnixMicros() == b.GetCaptureUnixMicros() &&
		a.GetFlags() == b.GetFlags() && bytes.Equal(a.GetData(), b.GetData()) &&
		bytes.Equal(a.GetSignature(), b.GetSignature())
}

// FuzzVerify: arbitrary LiveChunk bytes never panic Verify, and the only
// chunks accepted are the signed ones, unmodified (unknown protobuf fields
// aside, which carry nothing).
func FuzzVerify(f *testing.F) {
	_, v, good := fuzzSigner(f)
	for _, c := range good {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x22, 0x00, 0x2a, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		var c pb.LiveChunk
		if proto.Unmarshal(b, &c) != nil {
			return
		}
		if err := v.Verify(&c); err != nil {
			return
		}
		for _, g := range good {
			if sameFields(&c, g) {
				return
			}
		}
		t.Fatalf("accepted a chunk that was never signed: %v", &c)
	})
}
