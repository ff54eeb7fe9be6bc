package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Through the built binary: `broadcast --sample` on one daemon, `play -o` on
// another; the recording decodes, and status reports the stream's figures.
func TestEndToEndLive(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := binary(t)
	a := startDaemon(t, bin)
	_, aAddr := idOf(t, bin, a.dir)
	b := startDaemon(t, bin, "--bootstrap", aAddr)

	bc := exec.Command(bin, "broadcast", "--sample", "--name", "e2e", "--data-dir", a.dir)
	stdout, err := bc.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := bc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bc.Process.Kill(); _ = bc.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("broadcast printed no ID: %v", err)
	}
	id := strings.TrimSpace(line)
	if !strings.HasPrefix(id, "bagaybqab") {
		t.Fatalf("broadcast printed %q, want a live stream ID", id)
	}

	out := filepath.Join(t.TempDir(), "rec.ts")
	play := exec.Command(bin, "play", id, "-o", out, "--data-dir", b.dir)
	var stderr strings.Builder
	play.Stderr = &stderr
	if err := play.Start(); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Streams []struct {
			ID         string             `json:"id"`
			Role       string             `json:"role"`
			Continuity float64            `json:"continuity"`
			Delivered  uint64             `json:"delivered"`
			Delay      map[string]float64 `json:"delay_ms"`
		} `json:"streams"`
	}
	eventually(t, "the viewer playing", func() bool {
		o, _, code := cli(t, bin, "status", "--json", "--data-dir", b.dir)
		if code != 0 || json.Unmarshal([]byte(o), &st) != nil {
			return false
		}
		return len(st.Streams) == 1 && st.Streams[0].Delivered > 20
	})
	s := st.Streams[0]
	if s.ID != id || s.Role != "viewer" || s.Continuity < 0.99 || s.Delay["p95"] <= 0 || s.Delay["p95"] >= 1000 {
		t.Errorf("status of the viewer: %+v", s)
	}
	done := make(chan error, 1)
	go func() { done <- play.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("play -o: %v: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = play.Process.Kill()
		t.Fatal("play -o did not end with the stream")
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Size() < 200_000 {
		t.Fatalf("recording: %v, %d bytes", err, fi.Size())
	}
	if _, err := exec.LookPath("ffmpeg"); err == nil {
		msg, err := exec.Command("ffmpeg", "-v", "error", "-i", out, "-f", "null", "-").CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(msg))) > 0 {
			t.Errorf("recording does not decode cleanly: %v %s", err, msg)
		}
	}
}
