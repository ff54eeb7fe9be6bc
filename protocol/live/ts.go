package live

// MPEG-TS packet scanner and PSI/PES inspection (ISO/IEC 13818-1).

const (
	syncByte   = 0x47
	pidPAT     = 0x0000
	pidNull    = 0x1fff
	pcrModulus = (1 << 33) * 300 // PCR wraps here (27 MHz units)
	syncChecks = 3               // packets in a row that must start with 0x47 to (re)gain sync
)

// Stream types of the video elementary streams the parser recognises.
const (
	StreamTypeMPEG2 = 0x02
	StreamTypeH264  = 0x1b
	StreamTypeHEVC  = 0x24
)

// Packet is one 188-byte transport packet with what the Parser learned
// from it. Data aliases the parser's buffer and is valid only during the
// callback that receives the Packet.
type Packet struct {
	Data          []byte // the 188 bytes
	PID           uint16
	PUSI          bool   // payload_unit_start_indicator
	HasPCR        bool   // the adaptation field carries a PCR
	PCR           uint64 // program clock reference, 27 MHz (base*300 + extension)
	Discontinuity bool   // adaptation field discontinuity_indicator
	// Set only after PAT and PMT are known:
	IsPAT         bool // a complete, CRC-valid PAT (the latest one)
	IsPMT         bool // a complete, CRC-valid PMT of the program (the latest one)
	IsVideo       bool // on the video elementary PID
	IsPCRPID      bool // on the program's PCR PID
	RandomAccess  bool // a random access point on the video PID
	TransportErr  bool // transport_error_indicator set; contents were not inspected
	payloadOffset int
}

// ParserStats counts what the parser saw.
type ParserStats struct {
	Packets    uint64 // packets delivered
	Discarded  uint64 // bytes thrown away while looking for sync
	SyncLosses uint64 // times sync was lost after being acquired
	PSIErrors  uint64 // PAT/PMT sections rejected (bad CRC, truncated, multi-packet)
}

// Parser is a streaming MPEG-TS packet parser: feed it bytes in pieces of
// any size and it calls back once per packet. It finds the packet sync
// (three 0x47 bytes 188 bytes apart), delivers a packet only once the next
// packet's sync byte is seen (or the input ends), re-syncs after garbage
// (a packet followed by no sync byte is dropped as suspect), tracks the
// PAT and the first program's PMT, and marks the video PID, PCRs and random
// access points. It does no I/O and starts no goroutines.
type Parser struct {
	buf    []byte // carried-over bytes, at most syncChecks packets
	locked bool
	stats  ParserStats

	pmtPID     int // -1: unknown
	videoPID   int
	pcrPID     int
	streamType uint8
	pat, pmt   [PacketSize]byte
	havePAT    bool
	havePMT    bool
	inRAP      bool // the video PES being received began at a random access point
}

// NewParser returns a parser at the beginning of a stream.
func NewParser() *Parser {
	return &Parser{pmtPID: -1, videoPID: -1, pcrPID: -1}
}

// Stats returns the counters.
func (p *Parser) Stats() ParserStats { return p.stats }

// VideoPID returns the video elementary PID and its stream type, or -1 and
// 0 before a PMT with a supported video stream was seen.
func (p *Parser) VideoPID() (int, uint8) { return p.videoPID, p.streamType }

// PCRPID returns the program's PCR PID, or -1 before a PMT was seen.
func (p *Parser) PCRPID() int { return p.pcrPID }

// Tables returns copies of the latest valid PAT and PMT packets, or false.
func (p *Parser) Tables() (pat, pmt [PacketSize]byte, ok bool) {
	return p.pat, p.pmt, p.havePAT && p.havePMT
}

// Feed parses b and calls emit for each complete packet. Bytes of an
// incomplete packet are kept for the next Feed. b is not retained.
func (p *Parser) Feed(b []byte, emit func(*Packet)) {
	if len(p.buf) > 0 {
		p.buf = append(p.buf, b...)
		n := p.scan(p.buf, false, emit)
		p.buf = append(p.buf[:0], p.buf[n:]...)
		return
	}
	n := p.scan(b, false, emit)
	p.buf = append(p.buf[:0], b[n:]...)
}

// Flush ends the input: packets that can still be delimited are emitted
// with the sync check relaxed to the bytes available, the rest is
// discarded (and counted).
func (p *Parser) Flush(emit func(*Packet)) {
	n := p.scan(p.buf, true, emit)
	p.stats.Discarded += uint64(len(p.buf) - n)
	p.buf = p.buf[:0]
}

// scan emits the packets of b and returns how many bytes it consumed.
func (p *Parser) scan(b []byte, final bool, emit func(*Packet)) int {
	i := 0
	var pkt Packet
	for {
		if p.locked {
			if len(b)-i < PacketSize {
				return i
			}
			// The next packet's sync byte must follow (or the input ends),
			// so that garbage starting with 0x47 is not taken for a packet.
			if b[i] != syncByte || (len(b)-i == PacketSize && !final) {
				if b[i] == syncByte {
					return i // wait for the next sync byte
				}
				p.locked = false
				p.stats.SyncLosses++
				continue
			}
			if len(b)-i > PacketSize && b[i+PacketSize] != syncByte {
				p.locked = false // this packet is suspect: drop it while hunting
				p.stats.SyncLosses++
				p.stats.Discarded++
				i++
				continue
			}
			p.inspect(b[i:i+PacketSize], &pkt)
			p.stats.Packets++
			emit(&pkt)
			i += PacketSize
			continue
		}
		// Hunting: find j with 0x47 at j, j+188, j+376.
		j, need := i, false
		for ; j < len(b); j++ {
			if b[j] != syncByte {
				continue
			}
			ok, short := confirmSync(b[j:], final)
			if ok {
				break
			}
			if short {
				need = true
				break
			}
		}
		p.stats.Discarded += uint64(j - i)
		i = j
		if need || j >= len(b) {
			return i
		}
		p.locked = true
	}
}

// confirmSync reports whether b begins a run of syncChecks packets. short
// is true when b is too short to tell (not final). When final, the check
// uses what is there, but needs one whole packet.
func confirmSync(b []byte, final bool) (ok, short bool) {
	for k := 1; k < syncChecks; k++ {
		off := k * PacketSize
		if off >= len(b) {
			if final {
				return len(b) >= PacketSize, false
			}
			return false, true
		}
		if b[off] != syncByte {
			return false, false
		}
	}
	return true, false
}

func pid(d []byte) uint16 { return uint16(d[1]&0x1f)<<8 | uint16(d[2]) }

// inspect fills pkt from the 188 bytes d and updates the PSI state.
func (p *Parser) inspect(d []byte, pkt *Packet) {
	*pkt = Packet{Data: d, PID: pid(d), PUSI: d[1]&0x40 != 0, payloadOffset: -1}
	if d[1]&0x80 != 0 {
		pkt.TransportErr = true
		return
	}
	afc := d[3] >> 4 & 3
	off := 4
	if afc&2 != 0 { // adaptation field
		n := int(d[4])
		off = 5 + n
		if off > PacketSize {
			return // malformed: ignore the packet's contents
		}
		if n > 0 {
			flags := d[5]
			pkt.Discontinuity = flags&0x80 != 0
			rai := flags&0x40 != 0
			if flags&0x10 != 0 && n >= 7 {
				base := uint64(d[6])<<25 | uint64(d[7])<<17 | uint64(d[8])<<9 | uint64(d[9])<<1 | uint64(d[10])>>7
				ext := uint64(d[10]&1)<<8 | uint64(d[11])
				pkt.PCR = base*300 + ext
				pkt.HasPCR = true
			}
			if rai && int(pkt.PID) == p.videoPID {
				pkt.RandomAccess = true
			}
		}
	}
	if afc&1 != 0 && off < PacketSize {
		pkt.payloadOffset = off
	}
	if d[3]&0xc0 != 0 { // scrambled: payload is opaque
		pkt.payloadOffset = -1
	}
	pkt.IsPCRPID = p.pcrPID >= 0 && int(pkt.PID) == p.pcrPID
	switch {
	case pkt.PID == pidPAT:
		if pkt.PUSI && pkt.payloadOffset >= 0 {
			pkt.IsPAT = p.parsePAT(d, pkt.payloadOffset)
		}
	case p.pmtPID >= 0 && int(pkt.PID) == p.pmtPID:
		if pkt.PUSI && pkt.payloadOffset >= 0 {
			pkt.IsPMT = p.parsePMT(d, pkt.payloadOffset)
		}
	case p.videoPID >= 0 && int(pkt.PID) == p.videoPID:
		pkt.IsVideo = true
		p.videoRAP(d, pkt)
	}
}

// videoRAP decides whether a video packet is a random access point: a PES
// start whose first packet holds a keyframe or sequence header NAL, or a
// random_access_indicator (counted once per PES).
func (p *Parser) videoRAP(d []byte, pkt *Packet) {
	if pkt.PUSI {
		key := pkt.RandomAccess
		if !key && pkt.payloadOffset >= 0 {
			key = pesHasKey(d[pkt.payloadOffset:], p.streamType)
		}
		pkt.RandomAccess = key
		p.inRAP = key
		return
	}
	if pkt.RandomAccess {
		if p.inRAP { // same access unit as an earlier RAP
			pkt.RandomAccess = false
		} else {
			p.inRAP = true
		}
	}
}

// pesHasKey reports whether the PES packet start b holds a start code of a
// random access NAL unit: H.264 IDR slice (5) or SPS (7); HEVC IRAP
// (16..23), VPS (32) or SPS (33); MPEG-2 sequence header (0xb3).
func pesHasKey(b []byte, st uint8) bool {
	if len(b) < 9 || b[0] != 0 || b[1] != 0 || b[2] != 1 {
		return false
	}
	start := 9 + int(b[8])
	if start >= len(b) {
		return false
	}
	es := b[start:]
	for i := 0; i+3 < len(es); i++ {
		if es[i] != 0 || es[i+1] != 0 || es[i+2] != 1 {
			continue
		}
		c := es[i+3]
		switch st {
		case StreamTypeH264:
			if t := c & 0x1f; t == 5 || t == 7 {
				return true
			}
		case StreamTypeHEVC:
			if t := c >> 1 & 0x3f; (t >= 16 && t <= 23) || t == 32 || t == 33 {
				return true
			}
		case StreamTypeMPEG2:
			if c == 0xb3 {
				return true
			}
		}
		i += 2
	}
	return false
}

// section returns the PSI section beginning in the PUSI packet d at
// payload offset off, with CRC checked, or nil. Sections that continue in
// a later packet are not supported (they are counted as PSI errors).
func (p *Parser) section(d []byte, off int, tableID byte) []byte {
	ptr := int(d[off])
	s := d[min(off+1+ptr, len(d)):]
	if len(s) < 3 || s[0] != tableID {
		p.stats.PSIErrors++
		return nil
	}
	if s[1]&0x80 == 0 { // section_syntax_indicator
		p.stats.PSIErrors++
		return nil
	}
	n := 3 + int(s[1]&0x0f)<<8 + int(s[2])
	if n < 12 || n > len(s) || crc32MPEG(s[:n]) != 0 {
		p.stats.PSIErrors++
		return nil
	}
	if s[5]&1 == 0 { // current_next_indicator: not applicable yet
		return nil
	}
	return s[:n]
}

func (p *Parser) parsePAT(d []byte, off int) bool {
	s := p.section(d, off, 0x00)
	if s == nil {
		return false
	}
	pmt := -1
	for i := 8; i+4 <= len(s)-4; i += 4 {
		prog := uint16(s[i])<<8 | uint16(s[i+1])
		if prog != 0 {
			pmt = int(s[i+2]&0x1f)<<8 | int(s[i+3])
			break
		}
	}
	if pmt < 0 {
		return false
	}
	if pmt != p.pmtPID {
		p.pmtPID = pmt
		p.havePMT = false
		p.videoPID, p.pcrPID, p.streamType = -1, -1, 0
	}
	copy(p.pat[:], d)
	p.havePAT = true
	return true
}

func (p *Parser) parsePMT(d []byte, off int) bool {
	s := p.section(d, off, 0x02)
	if s == nil || len(s) < 16 {
		return false
	}
	pcr := int(s[8]&0x1f)<<8 | int(s[9])
	i := 12 + int(s[10]&0x0f)<<8 + int(s[11])
	end := len(s) - 4
	video, st := -1, uint8(0)
	for i+5 <= end {
		t := s[i]
		epid := int(s[i+1]&0x1f)<<8 | int(s[i+2])
		esl := int(s[i+3]&0x0f)<<8 + int(s[i+4])
		if video < 0 && (t == StreamTypeH264 || t == StreamTypeHEVC || t == StreamTypeMPEG2) {
			video, st = epid, t
		}
		i += 5 + esl
	}
	if video != p.videoPID {
		p.inRAP = false
	}
	p.pcrPID, p.videoPID, p.streamType = pcr, video, st
	copy(p.pmt[:], d)
	p.havePMT = true
	return true
}

var crcTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04c11db7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return
}()

// crc32MPEG is the CRC-32/MPEG-2 of b; over a whole PSI section
// (including its CRC field) it is 0.
func crc32MPEG(b []byte) uint32 {
	c := uint32(0xffffffff)
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>24)^x]
	}
	return c
}
