//go:build vlc

package vlc

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	libvlc "github.com/adrg/libvlc-go/v3"

	"github.com/hivecast/hivecast/player"
)

// Headless are libVLC arguments for playing without a display or sound card
// (tests, servers).
var Headless = []string{"--quiet", "--vout=dummy", "--aout=dummy"}

var (
	initMu   sync.Mutex
	initDone bool
)

// Init starts the process-wide libVLC instance with the given arguments
// (e.g. Headless, "--network-caching=300"). Later calls are no-ops until
// Release.
func Init(args ...string) error {
	initMu.Lock()
	defer initMu.Unlock()
	if initDone {
		return nil
	}
	if err := libvlc.Init(args...); err != nil {
		return fmt.Errorf("vlc: init: %w", err)
	}
	initDone = true
	return nil
}

// Release stops the libVLC instance. Close every Player first.
func Release() error {
	initMu.Lock()
	defer initMu.Unlock()
	if !initDone {
		return nil
	}
	initDone = false
	return libvlc.Release()
}

// State is a media's playback state.
type State = libvlc.MediaState

// States (libVLC's).
const (
	NothingSpecial = libvlc.MediaNothingSpecial
	Opening        = libvlc.MediaOpening
	Buffering      = libvlc.MediaBuffering
	Playing        = libvlc.MediaPlaying
	Paused         = libvlc.MediaPaused
	Stopped        = libvlc.MediaStopped
	Ended          = libvlc.MediaEnded
	Error          = libvlc.MediaError
)

// Stats are libVLC's counters for the media being played.
type Stats struct {
	ReadBytes          int // bytes read from the reader
	DemuxCorrupted     int // demux corruptions (discarded data)
	DemuxDiscontinuity int
	DecodedVideo       int // decoded video frames (blocks)
	DisplayedPictures  int
	LostPictures       int
	DecodedAudio       int
}

// Player plays one stream. Its methods are safe for concurrent use, but must
// not be called from a libVLC event callback.
type Player struct {
	mu     sync.Mutex
	p      *libvlc.Player
	m      *libvlc.Media
	closer io.Closer
	closed bool
}

// Play plays a seekable stream, typically a *player.Reader of a VOD (whose
// Read blocks until the bytes are there). Close closes r.
func Play(r io.ReadSeekCloser) (*Player, error) {
	return start(r, r)
}

// PlayLive plays a live stream: r is wrapped with player.NonSeekable so that
// libVLC's open succeeds. If r is an io.Closer, Close closes it, which must
// make a blocked Read return (player.StreamReader and HTTP bodies do).
func PlayLive(r io.Reader) (*Player, error) {
	c, _ := r.(io.Closer)
	return start(player.NonSeekable(r), c)
}

func start(rs io.ReadSeeker, c io.Closer) (*Player, error) {
	p, err := libvlc.NewPlayer()
	if err != nil {
		return nil, fmt.Errorf("vlc: new player: %w", err)
	}
	m, err := libvlc.NewMediaFromReadSeeker(rs)
	if err != nil {
		p.Release()
		return nil, fmt.Errorf("vlc: new media: %w", err)
	}
	if err := p.SetMedia(m); err != nil {
		m.Release()
		p.Release()
		return nil, fmt.Errorf("vlc: set media: %w", err)
	}
	if err := p.Play(); err != nil {
		m.Release()
		p.Release()
		return nil, fmt.Errorf("vlc: play: %w", err)
	}
	return &Player{p: p, m: m, closer: c}, nil
}

// State returns the media's playback state.
func (p *Player) State() (State, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Stopped, player.ErrClosed
	}
	return p.m.State()
}

// MediaTime returns the current playback position within the media.
func (p *Player) MediaTime() (time.Duration, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, player.ErrClosed
	}
	ms, err := p.p.MediaTime()
	return time.Duration(ms) * time.Millisecond, err
}

// Stats returns libVLC's counters for the media.
func (p *Player) Stats() (Stats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Stats{}, player.ErrClosed
	}
	s, err := p.m.Stats()
	if err != nil {
		return Stats{}, err
	}
	return Stats{
		ReadBytes:          s.ReadBytes,
		DemuxCorrupted:     s.DemuxCorrupted,
		DemuxDiscontinuity: s.DemuxDiscontinuity,
		DecodedVideo:       s.DecodedVideo,
		DisplayedPictures:  s.DisplayedPictures,
		LostPictures:       s.LostPictures,
		DecodedAudio:       s.DecodedAudio,
	}, nil
}

// Close stops playback and frees the player. The reader is closed first:
// libVLC's stop waits for its input thread, which may be blocked in Read.
func (p *Player) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	if p.closer != nil {
		errs = append(errs, p.closer.Close())
	}
	errs = append(errs, p.p.Stop(), p.m.Release(), p.p.Release())
	return errors.Join(errs...)
}
