// Package demo runs a whole hivecast swarm in one process on loopback: a
// broadcaster streaming the built-in sample clip (looped, paced in real
// time) and a number of viewers that find it through the DHT and relay to
// each other. `hivecast demo` is its front end.
package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/hivecast/hivecast/node/daemon"
	"github.com/hivecast/hivecast/node/live"
	"github.com/hivecast/hivecast/player/sample"
	plive "github.com/hivecast/hivecast/protocol/live"
)

// Options configure a demo swarm.
type Options struct {
	Viewers     int // default 8
	MaxChildren int // children per node (default 2, so the tree has depth)
	Log         *slog.Logger
}

// Swarm is a running demo.
type Swarm struct {
	Source  *daemon.Daemon
	Viewers []*daemon.Daemon
	Stream  *live.Source

	dirs   []string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
}

// Start builds the swarm, starts the broadcast and has every viewer join.
func Start(ctx context.Context, o Options) (_ *Swarm, err error) {
	if o.Viewers <= 0 {
		o.Viewers = 8
	}
	if o.MaxChildren <= 0 {
		o.MaxChildren = 2
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Swarm{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	start := func(bootstrap ...string) (*daemon.Daemon, error) {
		dir, err := os.MkdirTemp("", "hivecast-demo-")
		if err != nil {
			return nil, err
		}
		s.dirs = append(s.dirs, dir)
		return daemon.Start(daemon.Options{
			DataDir:      dir,
			Listen:       []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
			API:          "127.0.0.1:0",
			Bootstrap:    bootstrap,
			NoMDNS:       true,
			NoNATPortMap: true,
			MaxChildren:  o.MaxChildren,
		}, o.Log)
	}
	if s.Source, err = start(); err != nil {
		return nil, fmt.Errorf("start broadcaster: %w", err)
	}
	var boot string
	for _, a := range s.Source.Node().Addrs() {
		if strings.Contains(a, "/tcp/") {
			boot = a
		}
	}
	for i := 0; i < o.Viewers; i++ {
		v, err := start(boot)
		if err != nil {
			return nil, fmt.Errorf("start viewer %d: %w", i+1, err)
		}
		s.Viewers = append(s.Viewers, v)
	}
	if s.Stream, err = s.Source.Live().Broadcast("demo"); err != nil {
		return nil, err
	}
	bctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		r := plive.NewLooper(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(sample.TS)), nil })
		err := s.Stream.Ingest(bctx, r, live.IngestOptions{Realtime: true})
		if err != nil && !errors.Is(err, context.Canceled) {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
		}
		s.Stream.End()
	}()
	for i, v := range s.Viewers {
		if _, err := v.Live().Watch(ctx, s.Stream.Stream().ID(), live.WatchOptions{}); err != nil {
			return nil, fmt.Errorf("viewer %d: %w", i+1, err)
		}
	}
	return s, nil
}

// ID is the stream ID.
func (s *Swarm) ID() string { return s.Stream.Stream().ID().String() }

// URL is where any player can open viewer i's stream.
func (s *Swarm) URL(i int) string {
	return "http://" + s.Viewers[i].APIAddr() + "/stream/" + s.ID()
}

// ViewerStats returns each viewer's live stats, in order.
func (s *Swarm) ViewerStats() []live.Stats {
	out := make([]live.Stats, len(s.Viewers))
	for i, v := range s.Viewers {
		if st := v.Live().Stream(s.Stream.Stream().ID()); st != nil {
			out[i] = st.Stats()
		}
	}
	return out
}

// SourceStats returns the broadcaster's stats.
func (s *Swarm) SourceStats() live.Stats { return s.Stream.Stream().Stats() }

// Err is the broadcast's error, if it stopped.
func (s *Swarm) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close stops the broadcast and every node, and removes their data dirs.
func (s *Swarm) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	for _, v := range s.Viewers {
		v.Close()
	}
	if s.Source != nil {
		s.Source.Close()
	}
	for _, d := range s.dirs {
		os.RemoveAll(d)
	}
}
