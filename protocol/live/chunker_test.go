package live

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// keyframePositions returns the byte offsets of the keyframes of ts, as
// ffprobe reports them.
func keyframePositions(t *testing.T, ts []byte) []int {
	t.Helper()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Skip("ffprobe not found in PATH")
	}
	f := filepath.Join(t.TempDir(), "in.ts")
	if err := os.WriteFile(f, ts, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v",
		"-show_entries", "packet=pos,flags", "-of", "csv=p=0", f).Output()
	if err != nil {
		t.Fatal(err)
	}
	var pos []int
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fs := strings.Split(line, ",")
		if len(fs) >= 2 && strings.HasPrefix(fs[1], "K") {
			n, err := strconv.Atoi(fs[0])
			if err != nil {
				t.Fatal(err)
			}
			pos = append(pos, n)
		}
	}
	return pos
}

// checkChunks checks the invariants of chunks cut from input and returns
// the input offset of each chunk's first non-copied packet.
func checkChunks(t *testing.T, cfg Config, input []byte, chunks []Chunk) []int {
	t.Helper()
	maxBytes := cfg.MaxBytes
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	var rebuilt []byte
	offsets := make([]int, len(chunks))
	var prev time.Duration
	for i, ch := range chunks {
		if ch.Seq != cfg.FirstSeq+uint64(i) {
			t.Fatalf("chunk %d has seq %d", i, ch.Seq)
		}
		if len(ch.Data) == 0 || len(ch.Data)%PacketSize != 0 || len(ch.Data) > maxBytes {
			t.Fatalf("chunk %d: %d bytes", i, len(ch.Data))
		}
		for o := 0; o < len(ch.Data); o += PacketSize {
			if ch.Data[o] != syncByte {
				t.Fatalf("chunk %d: no sync at %d", i, o)
			}
		}
		if ch.MediaTime < prev {
			t.Fatalf("chunk %d: media time %v before %v", i, ch.MediaTime, prev)
		}
		prev = ch.MediaTime
		if ch.Start {
			if pid(ch.Data) != pidPAT || len(ch.Data) < 3*PacketSize {
				t.Fatalf("start chunk %d does not begin with a PAT", i)
			}
			p := NewParser()
			pk, _ := collect(p, ch.Data[:2*PacketSize], PacketSize)
			if len(pk) != 2 || !pk[0].IsPAT || !pk[1].IsPMT {
				t.Fatalf("start chunk %d does not begin with PAT, PMT", i)
			}
			if v, _ := p.VideoPID(); v < 0 {
				t.Fatalf("start chunk %d: PMT without video", i)
			}
		}
		if ch.Prepended != 0 && (ch.Prepended != 2 || !ch.Start) {
			t.Fatalf("chunk %d: %d prepended packets", i, ch.Prepended)
		}
		if err := ValidateChunk(lc(ch)); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		offsets[i] = len(rebuilt)
		rebuilt = append(rebuilt, ch.Data[ch.Prepended*PacketSize:]...)
	}
	if !bytes.Equal(rebuilt, input) {
		t.Fatalf("chunks without the prepended copies are not the input (%d vs %d bytes)", len(rebuilt), len(input))
	}
	return offsets
}

// startPoints returns, for each start chunk, the input offset of its first
// video packet (the random access point).
func startPoints(t *testing.T, chunks []Chunk, offsets []int, videoPID int) (pos []int, times []time.Duration) {
	for i, ch := range chunks {
		if !ch.Start {
			continue
		}
		for k := ch.Prepended; k*PacketSize < len(ch.Data); k++ {
			if int(pid(ch.Data[k*PacketSize:])) == videoPID {
				pos = append(pos, offsets[i]+(k-ch.Prepended)*PacketSize)
				break
			}
		}
		times = append(times, ch.MediaTime)
	}
	return
}

func concat(chunks []Chunk) []byte {
	var b []byte
	for _, c := range chunks {
		b = append(b, c.Data...)
	}
	return b
}

func TestChunkerRealClip(t *testing.T) {
	clip := testClip(t)
	chunks, c := chunkAll(t, Config{}, clip, 4096)
	offsets := checkChunks(t, Config{}, clip, chunks)
	video, st := c.Parser().VideoPID()
	if st != StreamTypeH264 {
		t.Fatalf("stream type %#x", st)
	}
	pos, times := startPoints(t, chunks, offsets, video)
	if want := keyframePositions(t, clip); fmt.Sprint(pos) != fmt.Sprint(want) {
		t.Fatalf("start points at %v, ffprobe keyframes at %v", pos, want)
	}
	for i, tm := range times {
		if d := tm - time.Duration(i)*time.Second; d < -50*time.Millisecond || d > 50*time.Millisecond {
			t.Errorf("start chunk %d at media time %v, want about %ds", i, tm, i)
		}
	}
	st2 := c.Stats()
	if st2.StartChunks != 4 || st2.Discarded != 0 || st2.Discontinuities != 0 || st2.PSIErrors != 0 {
		t.Fatalf("stats %+v", st2)
	}
	// A chunk spans at most the target plus one PCR interval (80 ms here).
	for i := 1; i < len(chunks); i++ {
		if d := chunks[i].MediaTime - chunks[i-1].MediaTime; d > 180*time.Millisecond {
			t.Errorf("chunk %d spans %v", i-1, d)
		}
	}
	// The decode check below does detect a stream cut at a non-start chunk.
	if out := ffmpegDecode(t, concat(chunks[2:])); out == "" {
		t.Errorf("decoding from a non-start chunk reported no error")
	}
	// The same chunks whatever the read size.
	for _, step := range []int{1, 188, 1000, len(clip)} {
		other, _ := chunkAll(t, Config{}, clip, step)
		if len(other) != len(chunks) {
			t.Fatalf("step %d: %d chunks, want %d", step, len(other), len(chunks))
		}
		for i := range other {
			if !bytes.Equal(other[i].Data, chunks[i].Data) || other[i].MediaTime != chunks[i].MediaTime || other[i].Start != chunks[i].Start {
				t.Fatalf("step %d: chunk %d differs", step, i)
			}
		}
	}
	// Every suffix from a start chunk on decodes without errors.
	for i, ch := range chunks {
		if !ch.Start {
			continue
		}
		if out := ffmpegDecode(t, concat(chunks[i:])); out != "" {
			t.Errorf("decoding from start chunk %d (seq %d): %s", i, ch.Seq, out)
		}
	}
}

// stripTables removes all PAT and PMT packets after the first of each.
func stripTables(t *testing.T, clip []byte) []byte {
	p := NewParser()
	var out []byte
	seenPAT, seenPMT := false, false
	p.Feed(clip, func(pk *Packet) {
		switch {
		case pk.PID == pidPAT:
			if seenPAT {
				return
			}
			seenPAT = true
		case pk.IsPMT:
			if seenPMT {
				return
			}
			seenPMT = true
		}
		out = append(out, pk.Data...)
	})
	p.Flush(func(pk *Packet) { out = append(out, pk.Data...) })
	return out
}

func TestChunkerPrependsTables(t *testing.T) {
	clip := stripTables(t, testClip(t))
	chunks, c := chunkAll(t, Config{}, clip, 4096)
	checkChunks(t, Config{}, clip, chunks)
	st := c.Stats()
	// The first keyframe follows PAT and PMT; the three others get copies.
	if st.StartChunks != 4 || st.PrependedPAT != 3 {
		t.Fatalf("stats %+v", st)
	}
	for i, ch := range chunks {
		if ch.Start && i > 2 {
			if out := ffmpegDecode(t, concat(chunks[i:])); out != "" {
				t.Errorf("decoding from start chunk %d: %s", i, out)
			}
		}
	}
}

func TestChunkerLoopedInput(t *testing.T) {
	clip := testClip(t)
	looped := append(append(bytes.Clone(clip), clip...), clip...)
	chunks, c := chunkAll(t, Config{FirstSeq: 100}, looped, 32<<10)
	checkChunks(t, Config{FirstSeq: 100}, looped, chunks)
	st := c.Stats()
	if st.Discontinuities != 2 || st.StartChunks != 12 {
		t.Fatalf("stats %+v", st)
	}
	var disc []time.Duration
	for _, ch := range chunks {
		if ch.Discontinuity {
			disc = append(disc, ch.MediaTime)
		}
	}
	if len(disc) != 2 {
		t.Fatalf("discontinuity chunks at %v", disc)
	}
	last := chunks[len(chunks)-1].MediaTime
	if last < 11800*time.Millisecond || last > 12*time.Second {
		t.Fatalf("last chunk of three loops at %v", last)
	}
}

func TestChunkerMaxBytesAndGarbage(t *testing.T) {
	clip := testClip(t)
	cfg := Config{MaxBytes: 10 * PacketSize, TargetDuration: time.Hour}
	// Garbage between packets near the middle.
	mid := len(clip) / PacketSize / 2 * PacketSize
	in := append(append(bytes.Clone(clip[:mid]), []byte("garbage")...), clip[mid:]...)
	chunks, c := chunkAll(t, cfg, in, 777)
	// The packet before the garbage is not followed by a sync byte: dropped.
	want := append(bytes.Clone(clip[:mid-PacketSize]), clip[mid:]...)
	checkChunks(t, cfg, want, chunks)
	if st := c.Stats(); st.Discarded != PacketSize+7 || st.StartChunks != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestChunkerConfig(t *testing.T) {
	for _, cfg := range []Config{{MaxBytes: 1000}, {MaxBytes: 2 * PacketSize}, {MaxBytes: 6000 * PacketSize}, {TargetDuration: -1}} {
		if _, err := NewChunker(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time        { return c.t }
func (c *fakeClock) Sleep(d time.Duration) { c.t = c.t.Add(max(d, 0)) }

func pace(p *Pacer, clk *fakeClock, chunks []Chunk, work time.Duration) (elapsed time.Duration) {
	start := clk.Now()
	for _, ch := range chunks {
		clk.Sleep(p.Wait(ch.MediaTime))
		clk.Sleep(work) // the caller's own processing time
	}
	return clk.Now().Sub(start)
}

func TestPacerRealClip(t *testing.T) {
	clip := testClip(t)
	chunks, _ := chunkAll(t, Config{}, clip, 4096)
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	p := NewPacer(clk, 0, 0)
	el := pace(p, clk, chunks, time.Millisecond)
	span := chunks[len(chunks)-1].MediaTime - chunks[0].MediaTime
	// The last chunk starts one PCR interval before the end of the 4 s file.
	if el < span || el > span+2*time.Millisecond || span < 3800*time.Millisecond || span > 4*time.Second {
		t.Fatalf("pacing took %v for media span %v", el, span)
	}
	if p.Resets() != 0 {
		t.Fatalf("%d resets", p.Resets())
	}

	// Three loops continue seamlessly: 12 s, no re-anchoring.
	looped := append(append(bytes.Clone(clip), clip...), clip...)
	chunks, _ = chunkAll(t, Config{}, looped, 4096)
	p = NewPacer(clk, 0, 0)
	el = pace(p, clk, chunks, 0)
	if el < 11800*time.Millisecond || el > 12*time.Second || p.Resets() != 0 {
		t.Fatalf("looped pacing took %v with %d resets", el, p.Resets())
	}
}

func TestPacerLeadLag(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	p := NewPacer(clk, time.Second, 500*time.Millisecond)
	t0 := clk.Now()
	if d := p.Due(10 * time.Second); !d.Equal(t0) {
		t.Fatalf("first due %v", d)
	}
	if d := p.Due(10*time.Second + 300*time.Millisecond); !d.Equal(t0.Add(300 * time.Millisecond)) {
		t.Fatalf("due %v", d)
	}
	// A jump 5 s ahead re-anchors instead of sleeping 5 s.
	if d := p.Due(15 * time.Second); !d.Equal(t0) || p.Resets() != 1 {
		t.Fatalf("lead: due %v resets %d", d, p.Resets())
	}
	// The caller stalls for 2 s: the next chunk is late by more than
	// MaxLag, so the pacer re-anchors rather than bursting.
	clk.Sleep(2 * time.Second)
	if d := p.Due(15*time.Second + 40*time.Millisecond); !d.Equal(clk.Now()) || p.Resets() != 2 {
		t.Fatalf("lag: due %v resets %d", d, p.Resets())
	}
	// A small lag is caught up: due in the past, Wait 0.
	clk.Sleep(200 * time.Millisecond)
	if w := p.Wait(15*time.Second + 80*time.Millisecond); w != 0 || p.Resets() != 2 {
		t.Fatalf("small lag: wait %v resets %d", w, p.Resets())
	}
	// Media time going backwards re-anchors.
	if d := p.Due(time.Second); !d.Equal(clk.Now()) || p.Resets() != 3 {
		t.Fatalf("backwards: due %v resets %d", d, p.Resets())
	}
	p.Reset()
	if d := p.Due(time.Hour); !d.Equal(clk.Now()) || p.Resets() != 3 {
		t.Fatalf("after Reset: due %v resets %d", d, p.Resets())
	}
}

func BenchmarkChunker(b *testing.B) {
	clip := testClip(b)
	b.SetBytes(int64(len(clip)))
	b.ReportAllocs()
	for b.Loop() {
		c, _ := NewChunker(Config{})
		for o := 0; o < len(clip); o += 32 << 10 {
			c.Feed(clip[o:min(o+32<<10, len(clip))])
		}
		c.Flush()
	}
}
