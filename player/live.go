package player

import (
	"errors"
	"sync"
	"time"
)

// LiveOptions configures a Live runner. Zero fields take defaults.
type LiveOptions struct {
	Jitter JitterConfig
	Clock  Clock // default RealClock()
}

// Live plays a live stream: it owns a Jitter buffer and one goroutine that
// hands chunks to a Sink at their playout times. Push may be called from any
// goroutine. The goroutine stops on Close, when the stream's End chunk has
// been written, or on the first Sink error.
type Live struct {
	sink  Sink
	csink ChunkSink
	clock Clock

	mu  sync.Mutex
	j   *Jitter
	err error

	kick      chan struct{}
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// NewLive starts playing into sink. If sink is a ChunkSink it gets whole
// chunks (with their start-point flags); otherwise their bytes.
func NewLive(sink Sink, opts LiveOptions) *Live {
	if opts.Clock == nil {
		opts.Clock = RealClock()
	}
	l := &Live{
		sink:  sink,
		clock: opts.Clock,
		j:     NewJitter(opts.Jitter),
		kick:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	l.csink, _ = sink.(ChunkSink)
	go l.run()
	return l
}

// Push hands over a verified chunk that has just arrived.
func (l *Live) Push(c Chunk) PushResult {
	l.mu.Lock()
	r := l.j.Push(c, l.clock.Now())
	l.mu.Unlock()
	if r == Buffered {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	return r
}

// Stats returns the jitter buffer's counters.
func (l *Live) Stats() JitterStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.j.Stats()
}

// Done is closed when the goroutine has stopped.
func (l *Live) Done() <-chan struct{} { return l.done }

// Err returns the Sink error that stopped the runner, if any.
func (l *Live) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Close stops the goroutine (waiting for a Write in progress to return),
// then closes the sink. It returns the first Sink error.
func (l *Live) Close() error {
	l.closeOnce.Do(func() {
		close(l.quit)
		<-l.done
		cerr := l.sink.Close()
		l.closeErr = errors.Join(l.Err(), cerr)
	})
	return l.closeErr
}

func (l *Live) run() {
	defer close(l.done)
	const idle = time.Hour
	timer := l.clock.NewTimer(idle)
	defer timer.Stop()
	for {
		l.mu.Lock()
		now := l.clock.Now()
		out := l.j.Pop(now)
		dl, ok := l.j.NextDeadline()
		ended := l.j.Ended()
		l.mu.Unlock()
		for _, c := range out {
			var err error
			if l.csink != nil {
				err = l.csink.WriteChunk(c)
			} else if len(c.Data) > 0 {
				err = l.sink.Write(c.Data)
			}
			if err != nil {
				l.mu.Lock()
				l.err = err
				l.mu.Unlock()
				return
			}
		}
		if ended {
			return
		}
		timer.Stop()
		if ok {
			// Measured after the writes, which may have taken a while.
			timer.Reset(max(dl.Sub(l.clock.Now()), 0))
		} else {
			timer.Reset(idle)
		}
		select {
		case <-l.kick:
		case <-timer.C():
		case <-l.quit:
			return
		}
	}
}
