package live

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hivecast/hivecast/protocol/live"
	"github.com/hivecast/hivecast/protocol/wire/pb"
	"google.golang.org/protobuf/proto"
)

// Source is the broadcasting end of a stream on this node.
type Source struct {
	st     *Stream
	signer *live.Signer
	next   uint64
	ended  bool
}

// Broadcast starts a stream named name, signed with the node's key, and
// announces it. Its ID depends only on the key and the name, so a channel
// keeps its ID across restarts. Feed it with Ingest.
func (s *Service) Broadcast(name string) (*Source, error) {
	signer, err := live.NewSigner(s.key, name)
	if err != nil {
		return nil, err
	}
	st := newStream(s, signer.ID(), true)
	st.setInfo(signer.Info(0, uint32(s.cfg.ChunkDuration.Milliseconds())), nil)
	got, err := s.add(st)
	if err != nil {
		return nil, err
	}
	if got != st {
		return nil, fmt.Errorf("stream %q (%s) is already being broadcast by this node", name, signer.ID())
	}
	s.provide(st)
	s.log.Info("broadcast started", "stream", st.id.String(), "name", name)
	return &Source{st: st, signer: signer}, nil
}

// Stream is the source's stream.
func (src *Source) Stream() *Stream { return src.st }

// IngestOptions tune Ingest.
type IngestOptions struct {
	// Realtime paces the input at its own rate (from its PCR), so that a
	// recorded file acts as a live source.
	Realtime bool
}

// Ingest reads MPEG-TS from r until EOF or error, cuts it into chunks at
// start points and every ChunkDuration, signs them and pushes them to the
// children. Capture time is when the source read a chunk's first byte (for a
// paced file: when pacing releases it).
func (src *Source) Ingest(ctx context.Context, r io.Reader, opts IngestOptions) error {
	st := src.st
	cfg := st.svc.cfg
	ch, err := live.NewChunker(live.Config{TargetDuration: cfg.ChunkDuration, MaxBytes: cfg.ChunkMaxBytes, FirstSeq: src.next})
	if err != nil {
		return err
	}
	clock := clockFunc(cfg.Now)
	pacer := live.NewPacer(clock, time.Second, time.Second)
	// readAt maps input offsets to the time they were read (live input).
	type mark struct {
		off int64
		at  time.Time
	}
	var marks []mark
	var inOff, chunkOff int64
	var rateBytes int64
	rateStart := cfg.Now()
	buf := make([]byte, 64<<10)
	emit := func(cs []live.Chunk) error {
		for i := range cs {
			c := &cs[i]
			var capture time.Time
			if opts.Realtime {
				due := pacer.Due(c.MediaTime)
				// The chunk is whole when the next one would start; release it
				// then, stamped with the time its first byte was due.
				release := due.Add(cfg.ChunkDuration)
				if i+1 < len(cs) {
					release = pacer.Due(cs[i+1].MediaTime)
				}
				if d := release.Sub(cfg.Now()); d > 0 {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-st.ctx.Done():
						return errClosed
					case <-time.After(d):
					}
				}
				capture = due
			} else {
				capture = cfg.Now()
				for len(marks) > 1 && marks[1].off <= chunkOff {
					marks = marks[1:]
				}
				if len(marks) > 0 && marks[0].off <= chunkOff {
					capture = marks[0].at
				}
			}
			chunkOff += int64(len(c.Data) - c.Prepended*live.PacketSize)
			if err := src.publish(c.Seq, capture, c.Start, c.Data); err != nil {
				return err
			}
			rateBytes += int64(len(c.Data))
			if el := cfg.Now().Sub(rateStart); el > time.Second {
				src.setBitrate(uint64(float64(rateBytes) * 8 / el.Seconds()))
				rateBytes, rateStart = 0, cfg.Now()
			}
		}
		return nil
	}
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			marks = append(marks, mark{inOff, cfg.Now()})
			inOff += int64(n)
			if err := emit(ch.Feed(buf[:n])); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return emit(ch.Flush())
		}
		if rerr != nil {
			_ = emit(ch.Flush())
			return rerr
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
	}
}

func (src *Source) setBitrate(bps uint64) {
	st := src.st
	st.mu.Lock()
	defer st.mu.Unlock()
	info := proto.Clone(st.info).(*pb.StreamInfo)
	info.Bitrate = bps
	st.info = info
}

func (src *Source) publish(seq uint64, capture time.Time, start bool, data []byte) error {
	if src.ended {
		return errors.New("stream already ended")
	}
	c := &pb.LiveChunk{Seq: seq, CaptureUnixMicros: capture.UnixMicro(), Data: append([]byte(nil), data...)}
	if start {
		c.Flags |= live.FlagStart
	}
	if err := src.signer.Sign(c); err != nil {
		return fmt.Errorf("sign chunk %d: %w", seq, err)
	}
	src.st.add(c)
	src.next = seq + 1
	return nil
}

// End tells every viewer the stream ended, then leaves it once the end has
// had time to reach the children.
func (src *Source) End() {
	if !src.ended {
		c := &pb.LiveChunk{Seq: src.next, CaptureUnixMicros: src.st.svc.cfg.Now().UnixMicro(), Flags: live.FlagEnd}
		if err := src.signer.Sign(c); err == nil {
			src.st.add(c)
		}
		src.ended = true
	}
	select {
	case <-time.After(2 * time.Second):
	case <-src.st.ctx.Done():
	}
	src.st.Close()
}

type clockFunc func() time.Time

func (f clockFunc) Now() time.Time { return f() }
