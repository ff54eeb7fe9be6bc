//go:build vlc

package live_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hivecast/hivecast/player/httpsrc"
	"github.com/hivecast/hivecast/player/vlc"
)

// The live stream, relayed through a viewer, plays in headless libVLC and
// decodes frames without demux corruption.
func TestVLCPlaysLiveStream(t *testing.T) {
	sw := newSwarm(t, 1, []int{2, 2})
	src, _ := broadcast(t, sw.src, "vlc")
	watch(t, sw.viewers[0], src, filepath.Join(t.TempDir(), "a.ts"))
	st := watch(t, sw.viewers[1], src, filepath.Join(t.TempDir(), "b.ts"))
	waitFor(t, "second viewer relayed through the first", 10*time.Second, func() bool { return st.Stats().Depth == 2 })
	if err := vlc.Init(vlc.Headless...); err != nil {
		t.Fatal(err)
	}
	defer vlc.Release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body, err := httpsrc.Live(ctx, "http://"+sw.viewers[1].APIAddr()+"/stream/"+src.Stream().ID().String())
	if err != nil {
		t.Fatal(err)
	}
	p, err := vlc.PlayLive(body)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		state, _ := p.State()
		s, _ := p.Stats()
		if state == vlc.Playing && s.DecodedVideo > 25 {
			if s.DemuxCorrupted != 0 {
				t.Fatalf("demux corruption: %+v", s)
			}
			t.Logf("libVLC playing the live stream: %+v", s)
			return
		}
		if state == vlc.Error || time.Now().After(deadline) {
			t.Fatalf("libVLC state %v, stats %+v", state, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
