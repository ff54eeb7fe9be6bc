package live

import (
	"errors"
	"io"
)

// Looper repeats a recorded MPEG-TS file as one continuous stream: on every
// pass after the first it shifts PCR, PTS and DTS by the length of the
// passes before, and continues each PID's continuity counter, so players and
// the chunker see one unbroken timeline instead of a jump back every pass.
//
// A pass's length is measured from its own PCRs: last PCR - first PCR + the
// last PCR interval. The input must be whole 188-byte packets (a file the
// chunker would accept); a packet without the sync byte ends the stream with
// an error.
type Looper struct {
	open func() (io.ReadCloser, error)
	cur  io.ReadCloser
	buf  []byte // pending output
	pkt  [PacketSize]byte
	fill int

	pass      int
	offset    uint64 // 90 kHz units added to this pass's timestamps
	firstPCR  int64  // 27 MHz, this pass, -1 before the first
	lastPCR   int64
	lastIntvl int64
	cc        map[uint16]uint8
	packets   int // packets of the current pass
}

// NewLooper returns a reader that plays the file open returns, over and over.
func NewLooper(open func() (io.ReadCloser, error)) *Looper {
	return &Looper{open: open, firstPCR: -1, cc: map[uint16]uint8{}}
}

const (
	pts33     = 1 << 33
	pcrPerPTS = 300
)

// Read implements io.Reader.
func (l *Looper) Read(p []byte) (int, error) {
	for len(l.buf) == 0 {
		if l.cur == nil {
			f, err := l.open()
			if err != nil {
				return 0, err
			}
			l.cur = f
		}
		n, err := l.cur.Read(l.pkt[l.fill:])
		l.fill += n
		if l.fill == PacketSize {
			l.fill = 0
			if l.pkt[0] != 0x47 {
				return 0, errors.New("looper: input is not 188-byte MPEG-TS packets")
			}
			l.packets++
			l.restamp(l.pkt[:])
			l.buf = append(l.buf[:0], l.pkt[:]...)
		}
		if err == io.EOF {
			l.cur.Close()
			l.cur = nil
			l.fill = 0 // a partial last packet is dropped
			if l.packets == 0 {
				return 0, errors.New("looper: the input holds no whole MPEG-TS packet")
			}
			l.nextPass()
			continue
		}
		if err != nil {
			return 0, err
		}
	}
	n := copy(p, l.buf)
	l.buf = l.buf[n:]
	return n, nil
}

// Close closes the file being read.
func (l *Looper) Close() error {
	if l.cur != nil {
		return l.cur.Close()
	}
	return nil
}

// Passes returns how many passes have been completed.
func (l *Looper) Passes() int { return l.pass }

func (l *Looper) nextPass() {
	l.pass++
	l.packets = 0
	if l.firstPCR >= 0 {
		d := l.lastPCR - l.firstPCR + l.lastIntvl
		l.offset = (l.offset + uint64(d/pcrPerPTS)) % pts33
	}
	l.firstPCR, l.lastPCR, l.lastIntvl = -1, -1, 0
}

// restamp rewrites one packet in place.
func (l *Looper) restamp(b []byte) {
	pid := uint16(b[1]&0x1f)<<8 | uint16(b[2])
	afc := (b[3] >> 4) & 3
	hasPayload := afc&1 != 0
	// Continuity counters run on across passes.
	c, seen := l.cc[pid]
	if hasPayload {
		if seen {
			c = (c + 1) & 0xf
		} else {
			c = b[3] & 0xf
		}
		l.cc[pid] = c
		b[3] = b[3]&0xf0 | c
	} else if seen {
		b[3] = b[3]&0xf0 | c
	}
	pos := 4
	if afc&2 != 0 {
		alen := int(b[4])
		if alen > 0 && 5+alen <= PacketSize && b[5]&0x10 != 0 && alen >= 7 {
			base := uint64(b[6])<<25 | uint64(b[7])<<17 | uint64(b[8])<<9 | uint64(b[9])<<1 | uint64(b[10]>>7)
			ext := uint64(b[10]&1)<<8 | uint64(b[11])
			pcr := int64(base*pcrPerPTS + ext)
			if l.firstPCR < 0 {
				l.firstPCR = pcr
			} else if pcr > l.lastPCR {
				l.lastIntvl = pcr - l.lastPCR
			}
			if pcr > l.lastPCR {
				l.lastPCR = pcr
			}
			base = (base + l.offset) % pts33
			b[6] = byte(base >> 25)
			b[7] = byte(base >> 17)
			b[8] = byte(base >> 9)
			b[9] = byte(base >> 1)
			b[10] = byte(base<<7) | b[10]&0x7f
		}
		pos = 5 + alen
	}
	if l.offset == 0 || !hasPayload || b[1]&0x40 == 0 || pos+14 > PacketSize {
		return
	}
	// A PES header starting in this packet: shift PTS and DTS.
	h := b[pos:]
	if h[0] != 0 || h[1] != 0 || h[2] != 1 {
		return
	}
	switch sid := h[3]; {
	case sid == 0xbc, sid == 0xbe, sid == 0xbf, sid >= 0xf0 && sid <= 0xf2, sid == 0xf8, sid == 0xff:
		return // no optional PES header
	}
	flags := h[7] >> 6
	if flags&2 != 0 {
		shiftTS(h[9:14], l.offset)
	}
	if flags == 3 && pos+19 <= PacketSize {
		shiftTS(h[14:19], l.offset)
	}
}

// shiftTS adds off (90 kHz, mod 2^33) to a 5-byte PES timestamp field.
func shiftTS(f []byte, off uint64) {
	v := uint64(f[0]>>1&7)<<30 | uint64(f[1])<<22 | uint64(f[2]>>1)<<15 | uint64(f[3])<<7 | uint64(f[4]>>1)
	v = (v + off) % pts33
	f[0] = f[0]&0xf1 | byte(v>>29)&0x0e
	f[1] = byte(v >> 22)
	f[2] = byte(v>>14)&0xfe | f[2]&1
	f[3] = byte(v >> 7)
	f[4] = byte(v<<1) | f[4]&1
}
