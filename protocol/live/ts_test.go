package live

import (
	"bytes"
	"testing"
)

// Synthetic transport stream builders.

const (
	tPMT   = 0x1000
	tVideo = 0x100
	tAudio = 0x101
)

// tsPacket builds one packet; af is the adaptation field after its length
// byte (flags and fields), nil for none unless stuffing is needed.
func tsPacket(pid uint16, pusi bool, cc byte, af []byte, payload []byte) []byte {
	p := make([]byte, 0, PacketSize)
	b1 := byte(pid>>8) & 0x1f
	if pusi {
		b1 |= 0x40
	}
	if len(payload) > 184 {
		panic("payload too long")
	}
	afc := byte(0x10)
	if af != nil || len(payload) < 184 {
		afc |= 0x20
		if len(payload) == 0 {
			afc = 0x20
		}
	}
	p = append(p, syncByte, b1, byte(pid), afc|cc&0x0f)
	if afc&0x20 != 0 {
		l := 183 - len(payload)
		p = append(p, byte(l))
		if l > 0 {
			if af == nil {
				af = []byte{0}
			}
			p = append(p, af...)
			for len(p) < 5+l {
				p = append(p, 0xff)
			}
		}
	}
	p = append(p, payload...)
	if len(p) != PacketSize {
		panic("bad packet size")
	}
	return p
}

func psiPayload(tableID byte, ext uint16, body []byte) []byte {
	n := 5 + len(body) + 4
	s := []byte{0, tableID, 0xb0 | byte(n>>8), byte(n), byte(ext >> 8), byte(ext), 0xc1, 0, 0}
	s = append(s, body...)
	crc := crc32MPEG(s[1:])
	s = append(s, byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc))
	for len(s) < 184 {
		s = append(s, 0xff)
	}
	return s
}

func patPacket(cc byte) []byte {
	return tsPacket(pidPAT, true, cc, nil, psiPayload(0, 1, []byte{0, 1, 0xe0 | tPMT>>8, tPMT & 0xff}))
}

func pmtPacket(cc byte, st byte) []byte {
	body := []byte{0xe0 | tVideo>>8, tVideo & 0xff, 0xf0, 0,
		0x0f, 0xe0 | tAudio>>8, tAudio & 0xff, 0xf0, 0, // AAC audio first
		st, 0xe0 | tVideo>>8, tVideo & 0xff, 0xf0, 0}
	return tsPacket(tPMT, true, cc, nil, psiPayload(2, 1, body))
}

func pcrField(pcr uint64, rai bool) []byte {
	base, ext := pcr/300, pcr%300
	f := byte(0x10)
	if rai {
		f |= 0x40
	}
	return []byte{f, byte(base >> 25), byte(base >> 17), byte(base >> 9), byte(base >> 1),
		byte(base&1)<<7 | 0x7e | byte(ext>>8), byte(ext)}
}

// videoPES returns a PES start payload holding the given NAL headers.
func videoPES(nals ...byte) []byte {
	b := []byte{0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1}
	for _, n := range nals {
		b = append(b, 0, 0, 0, 1, n, 0x88, 0x84)
	}
	return b
}

func collect(p *Parser, data []byte, step int) (pkts []Packet, raw [][]byte) {
	emit := func(pk *Packet) {
		q := *pk
		q.Data = bytes.Clone(pk.Data)
		pkts = append(pkts, q)
		raw = append(raw, q.Data)
	}
	for len(data) > 0 {
		n := min(step, len(data))
		p.Feed(data[:n], emit)
		data = data[n:]
	}
	p.Flush(emit)
	return
}

func TestCRC32MPEG(t *testing.T) {
	// CRC-32/MPEG-2 check value.
	if got := crc32MPEG([]byte("123456789")); got != 0x0376e6e7 {
		t.Fatalf("crc = %#x", got)
	}
}

func TestParserTablesPCRAndRAP(t *testing.T) {
	for _, tc := range []struct {
		st   byte
		key  []byte // NALs of a keyframe PES
		non  []byte // NALs of a non-key PES
		name string
	}{
		{StreamTypeH264, []byte{0x09, 0x67, 0x68, 0x65}, []byte{0x09, 0x41}, "h264"},
		{StreamTypeH264, []byte{0x09, 0x65}, []byte{0x09, 0x01}, "h264-idr-only"},
		{StreamTypeHEVC, []byte{35 << 1, 32 << 1, 33 << 1, 19 << 1}, []byte{35 << 1, 1 << 1}, "hevc"},
		{StreamTypeMPEG2, []byte{0xb3}, []byte{0x00}, "mpeg2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s []byte
			s = append(s, patPacket(0)...)
			s = append(s, pmtPacket(0, tc.st)...)
			s = append(s, tsPacket(tVideo, true, 0, pcrField(27_000_000+123, false), videoPES(tc.key...))...)
			s = append(s, tsPacket(tVideo, false, 1, nil, bytes.Repeat([]byte{0x11}, 184))...)
			s = append(s, tsPacket(tVideo, true, 2, nil, videoPES(tc.non...))...)
			s = append(s, tsPacket(tVideo, false, 3, []byte{0x40}, bytes.Repeat([]byte{0x11}, 100))...) // RAI, same PES as a non-RAP: a RAP
			s = append(s, tsPacket(tVideo, false, 4, []byte{0x40}, bytes.Repeat([]byte{0x11}, 100))...) // RAI again: same access unit
			p := NewParser()
			pk, _ := collect(p, s, 7)
			if len(pk) != 7 {
				t.Fatalf("%d packets", len(pk))
			}
			if !pk[0].IsPAT || !pk[1].IsPMT {
				t.Fatalf("tables not recognised: %+v %+v", pk[0], pk[1])
			}
			if v, st := p.VideoPID(); v != tVideo || st != tc.st || p.PCRPID() != tVideo {
				t.Fatalf("video %d %#x pcr %d", v, st, p.PCRPID())
			}
			if !pk[2].HasPCR || pk[2].PCR != 27_000_000+123 || !pk[2].IsPCRPID {
				t.Fatalf("pcr %+v", pk[2])
			}
			want := []bool{false, false, true, false, false, true, false}
			for i := range pk {
				if pk[i].RandomAccess != want[i] {
					t.Errorf("packet %d: RandomAccess %v", i, pk[i].RandomAccess)
				}
			}
			if st := p.Stats(); st.PSIErrors != 0 || st.Discarded != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestParserRejectsBadCRC(t *testing.T) {
	pat := patPacket(0)
	pat[12] ^= 1
	p := NewParser()
	pk, _ := collect(p, append(append(pat, pmtPacket(0, StreamTypeH264)...), patPacket(1)...), 188)
	if pk[0].IsPAT || p.Stats().PSIErrors != 1 || !pk[2].IsPAT {
		t.Fatalf("bad CRC accepted: %+v %+v", pk[0], p.Stats())
	}
	if pk[1].IsPMT { // the PMT PID was unknown when it came
		t.Fatal("PMT recognised before the PAT")
	}
}

func TestParserResync(t *testing.T) {
	var good [][]byte
	good = append(good, patPacket(0), pmtPacket(0, StreamTypeH264))
	for i := range 20 {
		good = append(good, tsPacket(tVideo, false, byte(i), nil, bytes.Repeat([]byte{byte(i)}, 184)))
	}
	garbage1 := []byte{0x47, 1, 2, 3, 0x47, 0x47, 9} // leading garbage with false syncs
	garbage2 := bytes.Repeat([]byte{0x47, 0}, 50)    // garbage between packets, beginning with a false sync byte
	var s []byte
	s = append(s, garbage1...)
	for i, g := range good {
		if i == 10 {
			s = append(s, garbage2...)
		}
		s = append(s, g...)
	}
	s = append(s, 0x47, 1, 2) // truncated tail
	for _, step := range []int{1, 5, 188, 1000, len(s)} {
		p := NewParser()
		_, raw := collect(p, s, step)
		if len(raw) != len(good) {
			t.Fatalf("step %d: %d packets, want %d", step, len(raw), len(good))
		}
		for i := range raw {
			if !bytes.Equal(raw[i], good[i]) {
				t.Fatalf("step %d: packet %d differs", step, i)
			}
		}
		st := p.Stats()
		if want := uint64(len(garbage1) + len(garbage2) + 3); st.Discarded != want {
			t.Fatalf("step %d: discarded %d, want %d", step, st.Discarded, want)
		}
		if st.SyncLosses != 1 {
			t.Fatalf("step %d: %d sync losses", step, st.SyncLosses)
		}
	}
}

func TestParserShortStream(t *testing.T) {
	// Fewer than three packets: sync is confirmed at Flush.
	p := NewParser()
	_, raw := collect(p, append(patPacket(0), patPacket(1)...), 188)
	if len(raw) != 2 {
		t.Fatalf("%d packets", len(raw))
	}
}

func TestParserDropsPacketBeforeGarbage(t *testing.T) {
	// A packet not followed by a sync byte may be truncated: it is dropped.
	var s []byte
	var good [][]byte
	for i := range 8 {
		good = append(good, tsPacket(tVideo, false, byte(i), nil, bytes.Repeat([]byte{byte(i)}, 184)))
	}
	for i, g := range good {
		s = append(s, g...)
		if i == 4 {
			s = append(s, 1, 2, 3)
		}
	}
	for _, step := range []int{1, 188, len(s)} {
		p := NewParser()
		_, raw := collect(p, s, step)
		want := append(append([][]byte{}, good[:4]...), good[5:]...)
		if len(raw) != len(want) {
			t.Fatalf("step %d: %d packets", step, len(raw))
		}
		for i := range raw {
			if !bytes.Equal(raw[i], want[i]) {
				t.Fatalf("step %d: packet %d differs", step, i)
			}
		}
		if d := p.Stats().Discarded; d != PacketSize+3 {
			t.Fatalf("step %d: discarded %d", step, d)
		}
	}
}
