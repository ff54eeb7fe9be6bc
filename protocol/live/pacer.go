package live

import "time"

// Clock is the time source of a Pacer.
type Clock interface {
	Now() time.Time
}

// Pacer defaults.
const (
	DefaultMaxLead = time.Second
	DefaultMaxLag  = time.Second
)

// Pacer makes a recorded stream act as a live source: it maps media times
// (Chunk.MediaTime) to wall-clock due times so that wall time since the
// anchor equals media time since the anchor. The caller sleeps until Due.
// It re-anchors (due = now) when a chunk would be due more than MaxLead in
// the future or was due more than MaxLag in the past, when media time goes
// backwards, and after Reset. Because the Chunker's media time is monotonic
// and continuous across PCR discontinuities, a looped file paces on without
// re-anchoring. Pure: no goroutines, no sleeping. Not safe for concurrent use.
type Pacer struct {
	clock   Clock
	maxLead time.Duration
	maxLag  time.Duration

	anchored bool
	wall0    time.Time
	media0   time.Duration
	last     time.Duration
	resets   uint64
}

// NewPacer returns a pacer on clock; zero maxLead/maxLag take the defaults.
func NewPacer(clock Clock, maxLead, maxLag time.Duration) *Pacer {
	if maxLead <= 0 {
		maxLead = DefaultMaxLead
	}
	if maxLag <= 0 {
		maxLag = DefaultMaxLag
	}
	return &Pacer{clock: clock, maxLead: maxLead, maxLag: maxLag}
}

// Due returns when the chunk with media time media should be released.
func (p *Pacer) Due(media time.Duration) time.Time {
	now := p.clock.Now()
	if !p.anchored {
		return p.anchor(now, media)
	}
	if media < p.last {
		p.resets++
		return p.anchor(now, media)
	}
	p.last = media
	due := p.wall0.Add(media - p.media0)
	if due.After(now.Add(p.maxLead)) || due.Before(now.Add(-p.maxLag)) {
		p.resets++
		return p.anchor(now, media)
	}
	return due
}

// Wait returns how long to sleep before releasing media (0 if it is due).
func (p *Pacer) Wait(media time.Duration) time.Duration {
	return max(0, p.Due(media).Sub(p.clock.Now()))
}

// Reset makes the next Due re-anchor: call it on a discontinuity the
// caller knows of (a new source, a pause).
func (p *Pacer) Reset() { p.anchored = false }

// Resets counts re-anchorings other than the first and those after Reset.
func (p *Pacer) Resets() uint64 { return p.resets }

func (p *Pacer) anchor(now time.Time, media time.Duration) time.Time {
	p.anchored, p.wall0, p.media0, p.last = true, now, media, media
	return now
}
