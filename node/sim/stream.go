package sim

import (
	"github.com/hivecast/hivecast/protocol/live"
)

// nullPacket is an MPEG-TS null packet (PID 0x1FFF): decoders skip it, so
// adding null packets raises a stream's bit rate without changing its timing
// (PCRs) or its pictures.
var nullPacket = func() []byte {
	p := make([]byte, live.PacketSize)
	p[0], p[1], p[2], p[3] = 0x47, 0x1f, 0xff, 0x10
	for i := 4; i < len(p); i++ {
		p[i] = 0xff
	}
	return p
}()

// paddedLoop is an endless reader of ts (whole 188-byte packets) repeated,
// with null packets spread evenly among them so that the bit rate becomes
// ts's rate × factor (factor ≥ 1).
type paddedLoop struct {
	ts     []byte
	factor float64
	pos    int     // next packet of ts
	credit float64 // null packets owed
	buf    []byte  // pending output
}

func newPaddedLoop(ts []byte, factor float64) *paddedLoop {
	if factor < 1 {
		factor = 1
	}
	return &paddedLoop{ts: ts, factor: factor}
}

func (l *paddedLoop) Read(p []byte) (int, error) {
	for len(l.buf) < len(p) && len(l.buf) < 64<<10 {
		if l.pos+live.PacketSize > len(l.ts) {
			l.pos = 0
		}
		l.buf = append(l.buf, l.ts[l.pos:l.pos+live.PacketSize]...)
		l.pos += live.PacketSize
		l.credit += l.factor - 1
		for l.credit >= 1 {
			l.buf = append(l.buf, nullPacket...)
			l.credit--
		}
	}
	n := copy(p, l.buf)
	l.buf = l.buf[:copy(l.buf, l.buf[n:])]
	return n, nil
}
