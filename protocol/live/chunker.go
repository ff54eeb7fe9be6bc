package live

import (
	"errors"
	"time"
)

// Chunker defaults.
const (
	DefaultTargetDuration = 100 * time.Millisecond
	DefaultMaxBytes       = 348 * PacketSize // 65424, the largest multiple of 188 ≤ 64 KiB
	DefaultMaxPCRGap      = time.Second
	maxMovedTail          = 8 // packets of PAT, PMT, others moved from one chunk to the next start chunk
)

// Config configures a Chunker. Zero fields take defaults.
type Config struct {
	// TargetDuration ends a chunk once the PCR time span since its first
	// packet reaches it. Default 100 ms.
	TargetDuration time.Duration
	// MaxBytes bounds a chunk's size; a multiple of 188 between 3*188 and
	// MaxChunkData. Default 65424 (348 packets).
	MaxBytes int
	// FirstSeq is the sequence number of the first chunk.
	FirstSeq uint64
	// MaxPCRGap: a PCR further ahead of the previous one than this (or
	// behind it, or flagged by discontinuity_indicator) is a timing
	// discontinuity. Default 1 s.
	MaxPCRGap time.Duration
}

// Chunk is a piece of the stream cut by the Chunker.
type Chunk struct {
	Seq   uint64
	Start bool // begins with PAT, PMT, then (possibly after other non-video packets) a random access point
	// Data is whole 188-byte packets; owned by the receiver.
	Data []byte
	// MediaTime is the chunk's time on the stream's monotonic media
	// timeline: 0 at the first PCR; PCR-derived, interpolated by byte
	// position between PCRs, extrapolated for chunks without a PCR, never
	// decreasing, and continued across PCR discontinuities.
	MediaTime time.Duration
	// Prepended is the number of leading packets of Data (0 or 2) that are
	// copies of the latest PAT and PMT, not part of the input.
	Prepended int
	// Discontinuity: a PCR discontinuity was found in this chunk.
	Discontinuity bool
}

// ChunkerStats counts what the chunker did.
type ChunkerStats struct {
	ParserStats
	Chunks          uint64 // chunks emitted
	StartChunks     uint64 // of which start points
	PrependedPAT    uint64 // start chunks that got PAT/PMT copies
	Discontinuities uint64 // PCR discontinuities
}

type pktInfo struct {
	pos                        uint64        // input packet index
	t                          time.Duration // media time, if pcr
	pcr, video, pat, pmt, disc bool
	copied                     bool // a prepended copy; pos is that of the next packet
}

type anchor struct {
	pos uint64
	t   time.Duration
	ok  bool
}

// Chunker cuts an MPEG-TS byte stream into chunks: a new chunk at every
// random access point of the video stream (a start chunk, with the latest
// PAT and PMT in front) and whenever the current chunk reaches
// TargetDuration of PCR time or MaxBytes. Feed it bytes as they are read;
// it does no I/O and starts no goroutines. Not safe for concurrent use.
type Chunker struct {
	cfg    Config
	p      *Parser
	seq    uint64
	out    []Chunk
	stats  ChunkerStats
	onPkt  func(*Packet)
	maxGap uint64 // 27 MHz ticks

	// current chunk
	cur       []byte
	info      []pktInfo
	start     bool
	prepended int
	firstPos  uint64 // input position of the first non-copied packet
	firstSet  bool
	anchor    anchor // last PCR before the chunk's first packet

	// timeline
	pos      uint64 // input packets so far
	tlOK     bool
	lastPCR  uint64
	t        time.Duration // media time of the last PCR
	step     time.Duration // last regular PCR interval (≤ 100 ms)
	last     anchor        // last PCR
	nsPerPkt int64
	prevTime time.Duration
}

// NewChunker returns a chunker at the beginning of a stream.
func NewChunker(cfg Config) (*Chunker, error) {
	if cfg.TargetDuration == 0 {
		cfg.TargetDuration = DefaultTargetDuration
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MaxPCRGap == 0 {
		cfg.MaxPCRGap = DefaultMaxPCRGap
	}
	if cfg.TargetDuration < 0 || cfg.MaxPCRGap < 0 {
		return nil, errors.New("live: negative duration in chunker config")
	}
	if cfg.MaxBytes%PacketSize != 0 || cfg.MaxBytes < 3*PacketSize || cfg.MaxBytes > MaxChunkData {
		return nil, errors.New("live: chunker MaxBytes must be a multiple of 188 between 564 and 1 MiB")
	}
	c := &Chunker{cfg: cfg, p: NewParser(), seq: cfg.FirstSeq}
	c.maxGap = uint64(cfg.MaxPCRGap / time.Microsecond * 27)
	c.onPkt = c.packet
	c.cur = make([]byte, 0, cfg.MaxBytes)
	return c, nil
}

// Feed consumes b (any length, any alignment) and returns the chunks it
// completed, in order. b is not retained.
func (c *Chunker) Feed(b []byte) []Chunk {
	c.p.Feed(b, c.onPkt)
	return c.take()
}

// Flush ends the input and returns the remaining chunks. The Chunker can
// then be fed a new stream (sequence numbers and media time continue).
func (c *Chunker) Flush() []Chunk {
	c.p.Flush(c.onPkt)
	c.emit(len(c.info))
	return c.take()
}

// Stats returns the counters.
func (c *Chunker) Stats() ChunkerStats {
	s := c.stats
	s.ParserStats = c.p.Stats()
	return s
}

// Parser exposes the underlying parser (read-only use: PIDs, tables).
func (c *Chunker) Parser() *Parser { return c.p }

func (c *Chunker) take() []Chunk {
	if len(c.out) == 0 {
		return nil
	}
	o := c.out
	c.out = nil
	return o
}

func ticks(d uint64) time.Duration { return time.Duration(d * 1000 / 27) }

// timing advances the media timeline with a PCR.
func (c *Chunker) timing(pcr uint64, flagged bool) (time.Duration, bool) {
	if !c.tlOK {
		c.tlOK, c.lastPCR = true, pcr
		return c.t, false
	}
	d := (pcr%pcrModulus + pcrModulus - c.lastPCR%pcrModulus) % pcrModulus
	disc := flagged || d > c.maxGap
	if disc {
		c.t += c.step
	} else {
		dt := ticks(d)
		c.t += dt
		if dt > 0 {
			c.step = min(dt, 100*time.Millisecond)
			if c.last.ok && c.pos > c.last.pos {
				c.nsPerPkt = int64(dt) / int64(c.pos-c.last.pos)
			}
		}
	}
	c.lastPCR = pcr
	return c.t, disc
}

func (c *Chunker) packet(pk *Packet) {
	pi := pktInfo{pos: c.pos, video: pk.IsVideo, pat: pk.IsPAT, pmt: pk.IsPMT}
	c.pos++
	disc := false
	if pk.HasPCR && pk.IsPCRPID {
		pi.pcr = true
		pi.t, disc = c.timing(pk.PCR, pk.Discontinuity)
		if disc {
			c.stats.Discontinuities++
		}
	}
	pat, pmt, tablesOK := c.p.Tables()
	switch {
	case pk.RandomAccess && tablesOK:
		c.cutForStart(pat[:], pmt[:], pi.pos)
	case len(c.info) > 0 && pi.pcr && !disc && pi.t-c.chunkTime() >= c.cfg.TargetDuration:
		c.emit(len(c.info))
	case len(c.cur)+PacketSize > c.cfg.MaxBytes:
		c.emit(len(c.info))
	}
	pi.disc = disc
	c.appendPkt(pk.Data, pi)
	if pi.pcr {
		c.last = anchor{pos: pi.pos, t: pi.t, ok: true}
	}
}

func (c *Chunker) appendPkt(d []byte, pi pktInfo) {
	if !c.firstSet {
		c.firstPos, c.firstSet = pi.pos, true
		c.anchor = c.last
	}
	c.cur = append(c.cur, d...)
	c.info = append(c.info, pi)
}

// cutForStart ends the current chunk before a random access point and
// begins a start chunk: with the PAT and PMT that end the current chunk
// (followed by non-video packets only) moved over, or else with copies.
func (c *Chunker) cutForStart(pat, pmt []byte, rapPos uint64) {
	n := len(c.info)
	tail := -1
	limit := min(maxMovedTail, c.cfg.MaxBytes/PacketSize-1) // the tail and the RAP packet fit
	for i := n - 1; i >= 0 && n-i <= limit; i-- {
		in := c.info[i]
		if in.video || (in.pmt && (i == 0 || !c.info[i-1].pat)) {
			break
		}
		if in.pat {
			if i+1 < n && c.info[i+1].pmt {
				tail = i
			}
			break
		}
	}
	if tail < 0 {
		c.emit(n)
		c.cur = append(c.cur, pat...)
		c.cur = append(c.cur, pmt...)
		c.info = append(c.info, pktInfo{pos: rapPos, pat: true, copied: true}, pktInfo{pos: rapPos, pmt: true, copied: true})
		c.prepended = 2
		c.stats.PrependedPAT++
		c.firstPos, c.firstSet = rapPos, true
		c.anchor = c.last
	} else {
		c.emit(tail) // keeps the tail as the new current chunk
	}
	c.start = true
}

// chunkTime is the media time of the current chunk's first input packet.
func (c *Chunker) chunkTime() time.Duration {
	var t time.Duration
	k := -1
	for i := range c.info {
		if c.info[i].pcr {
			k = i
			break
		}
	}
	a := c.anchor
	switch {
	case k >= 0:
		p := c.info[k]
		if a.ok && p.pos > a.pos && p.t >= a.t {
			t = a.t + time.Duration(int64(p.t-a.t)*int64(c.firstPos-a.pos)/int64(p.pos-a.pos))
		} else {
			t = p.t - time.Duration(c.nsPerPkt*int64(p.pos-c.firstPos))
		}
		t = min(t, p.t)
	case a.ok:
		t = a.t + time.Duration(c.nsPerPkt*int64(c.firstPos-a.pos))
	}
	return max(t, c.prevTime)
}

// emit sends the first n packets of the current chunk as a chunk and keeps
// the rest as the beginning of the next one.
func (c *Chunker) emit(n int) {
	if n > 0 {
		disc := false
		for _, in := range c.info[:n] {
			disc = disc || in.disc
		}
		t := c.chunkTime()
		data := make([]byte, n*PacketSize)
		copy(data, c.cur)
		c.out = append(c.out, Chunk{
			Seq: c.seq, Start: c.start, Data: data, MediaTime: t,
			Prepended: c.prepended, Discontinuity: disc,
		})
		c.seq++
		c.prevTime = t
		c.stats.Chunks++
		if c.start {
			c.stats.StartChunks++
		}
	}
	rest := c.info[n:]
	c.cur = append(c.cur[:0], c.cur[n*PacketSize:]...)
	c.start, c.prepended = false, 0
	c.firstSet = false
	// The anchor of the remaining packets is the last PCR before them.
	a := c.anchor
	for i := n - 1; i >= 0; i-- {
		if c.info[i].pcr {
			a = anchor{pos: c.info[i].pos, t: c.info[i].t, ok: true}
			break
		}
	}
	if len(rest) > 0 {
		c.firstPos, c.firstSet, c.anchor = rest[0].pos, true, a
	}
	c.info = append(c.info[:0], rest...)
}
