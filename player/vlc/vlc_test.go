//go:build vlc

package vlc

import (
	"context"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hivecast/hivecast/player"
	"github.com/hivecast/hivecast/player/sample"
)

func TestMain(m *testing.M) {
	if err := Init(Headless...); err != nil {
		panic(err)
	}
	code := m.Run()
	Release()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			println("goleak:", err.Error())
			code = 1
		}
	}
	os.Exit(code)
}

// watch polls p until it has played enough, then checks the yardsticks.
func watch(t *testing.T, p *Player) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var playing bool
	var st Stats
	var mt time.Duration
	for time.Now().Before(deadline) {
		s, err := p.State()
		if err != nil {
			t.Fatal(err)
		}
		if s == Error {
			t.Fatal("VLC reports an error")
		}
		playing = playing || s == Playing
		st, _ = p.Stats()
		mt, _ = p.MediaTime()
		if playing && st.DecodedVideo >= 50 && mt > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("playing %v, media time %v, stats %+v", playing, mt, st)
	if !playing {
		t.Fatal("never reached the Playing state")
	}
	if st.DecodedVideo == 0 {
		t.Fatal("no video decoded")
	}
	if st.DemuxCorrupted != 0 {
		t.Fatalf("demux corruption: %d", st.DemuxCorrupted)
	}
}

// The sample arrives in shuffled order, with small delays, into a VOD that
// VLC reads through a blocking, seekable Reader.
func TestVODThroughVLC(t *testing.T) {
	const cs = 16 * 1024
	var wants []int
	var mu sync.Mutex
	v, err := player.NewVOD(int64(len(sample.TS)), cs, player.NewMemWindow(1<<16),
		player.VODOptions{MIME: sample.MIME, OnWant: func(i int) { mu.Lock(); wants = append(wants, i); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		order := rand.New(rand.NewPCG(1, 1)).Perm(v.NumChunks())
		for _, i := range order {
			end := min((i+1)*cs, len(sample.TS))
			if err := v.Put(i, sample.TS[i*cs:end]); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	p, err := Play(v.NewReader(ctx))
	if err != nil {
		t.Fatal(err)
	}
	watch(t, p)
	if err := p.Close(); err != nil {
		t.Error(err)
	}
	cancel()
	wg.Wait()
	mu.Lock()
	t.Logf("OnWant called %d times", len(wants))
	mu.Unlock()
}

// The live path: chunks of the sample are pushed out of order into a Live
// runner (jitter buffer), which writes them at their playout times into a
// StreamReader that VLC reads.
func TestLiveThroughVLC(t *testing.T) {
	sr := player.NewStreamReader(0)
	l := player.NewLive(sr, player.LiveOptions{Jitter: player.JitterConfig{TargetLatency: 300 * time.Millisecond}})
	defer l.Close()
	p, err := PlayLive(sr)
	if err != nil {
		t.Fatal(err)
	}
	const cs = 188 * 50 // ~0.1 s of the clip
	var chunks []player.Chunk
	base := time.Now()
	for i, k := 0, 0; i < len(sample.TS); i, k = i+cs, k+1 {
		chunks = append(chunks, player.Chunk{
			Seq:     uint64(k),
			Capture: base.Add(time.Duration(k) * 100 * time.Millisecond),
			Start:   k == 0,
			Data:    sample.TS[i:min(i+cs, len(sample.TS))],
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := rand.New(rand.NewPCG(2, 2))
		// Push in groups of 4, shuffled within the group, a little ahead of
		// real time.
		for g := 0; g < len(chunks); g += 4 {
			grp := append([]player.Chunk(nil), chunks[g:min(g+4, len(chunks))]...)
			r.Shuffle(len(grp), func(a, b int) { grp[a], grp[b] = grp[b], grp[a] })
			for _, c := range grp {
				l.Push(c)
				l.Push(c) // duplicate
			}
			select {
			case <-l.Done():
				return
			case <-time.After(time.Until(chunks[g].Capture.Add(300 * time.Millisecond))):
			}
		}
	}()
	watch(t, p)
	st := l.Stats()
	t.Logf("jitter stats %+v", st)
	if st.Delivered == 0 || st.Duplicates == 0 {
		t.Fatalf("jitter stats %+v", st)
	}
	l.Close() // closes sr: VLC's reads end
	<-done
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}
