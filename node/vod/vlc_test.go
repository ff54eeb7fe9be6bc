//go:build vlc

package vod_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hivecast/hivecast/player/httpsrc"
	"github.com/hivecast/hivecast/player/sample"
	"github.com/hivecast/hivecast/player/vlc"
)

// A real H.264 MPEG-TS clip shared on two providers and streamed from them
// into libVLC (headless) reaches Playing, decodes video frames and reports no
// demux corruption.
func TestVLCPlaysSharedFile(t *testing.T) {
	nodes := swarm(t, 3, nil)
	path := filepath.Join(t.TempDir(), "sample.ts")
	if err := os.WriteFile(path, sample.TS, 0o644); err != nil {
		t.Fatal(err)
	}
	id := share(t, path, 64<<10, nodes[0], nodes[1])
	if _, err := play(t, nodes[2], id, false, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := vlc.Init(vlc.Headless...); err != nil {
		t.Fatal(err)
	}
	defer vlc.Release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src, err := httpsrc.Open(ctx, apiURL(nodes[2], "/stream/"+id.String()))
	if err != nil {
		t.Fatal(err)
	}
	p, err := vlc.Play(src)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _ := p.State()
		s, _ := p.Stats()
		if st == vlc.Playing && s.DecodedVideo > 25 {
			if s.DemuxCorrupted != 0 {
				t.Fatalf("demux corruption: %+v", s)
			}
			t.Logf("libVLC playing from peers: %+v", s)
			return
		}
		if st == vlc.Error || time.Now().After(deadline) {
			t.Fatalf("libVLC state %v, stats %+v", st, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
