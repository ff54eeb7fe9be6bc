package live

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	clipOnce sync.Once
	clipDir  string
	clipData []byte
	clipErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if clipDir != "" {
		os.RemoveAll(clipDir)
	}
	os.Exit(code)
}

// needFFmpeg skips the test when ffmpeg is not installed.
func needFFmpeg(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not found in PATH: install it (apt-get install ffmpeg) to run the real-media tests")
	}
}

// testClip returns a 4 s 320x240 25 fps H.264 MPEG-TS clip with a keyframe
// every 25 frames, made once per test binary run.
func testClip(t testing.TB) []byte {
	t.Helper()
	needFFmpeg(t)
	clipOnce.Do(func() {
		clipDir, clipErr = os.MkdirTemp("", "hivecast-live-test")
		if clipErr != nil {
			return
		}
		out := filepath.Join(clipDir, "clip.ts")
		cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
			"-t", "4", "-c:v", "libx264", "-g", "25", "-bf", "0", "-x264-params", "repeat-headers=1",
			"-f", "mpegts", "-mpegts_flags", "+resend_headers", out)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			clipErr = fmt.Errorf("ffmpeg: %v: %s", err, stderr.String())
			return
		}
		clipData, clipErr = os.ReadFile(out)
	})
	if clipErr != nil {
		t.Fatal(clipErr)
	}
	return clipData
}

// ffmpegDecode decodes ts with ffmpeg and returns what it printed at level
// error or above.
func ffmpegDecode(t testing.TB, ts []byte) string {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", "-", "-f", "null", "-")
	cmd.Stdin = bytes.NewReader(ts)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out) + err.Error()
	}
	return string(out)
}

// chunkAll feeds data to a new chunker in pieces of size step.
func chunkAll(t testing.TB, cfg Config, data []byte, step int) ([]Chunk, *Chunker) {
	t.Helper()
	c, err := NewChunker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []Chunk
	for len(data) > 0 {
		n := min(step, len(data))
		out = append(out, c.Feed(data[:n])...)
		data = data[n:]
	}
	return append(out, c.Flush()...), c
}
