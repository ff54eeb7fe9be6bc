package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hivecast/hivecast/node/api"
	"github.com/hivecast/hivecast/node/live"
	"github.com/hivecast/hivecast/player/sample"
	plive "github.com/hivecast/hivecast/protocol/live"
)

func init() {
	register(command{name: "broadcast", args: "[FILE|-]", summary: "broadcast a live MPEG-TS stream; prints the stream ID", run: runBroadcast})
}

func runBroadcast(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("broadcast", "[FILE|-]", "Reads a live MPEG-TS stream (stdin by default, e.g. `ffmpeg ... -f mpegts - | hivecast broadcast`)\n"+
		"and broadcasts it through the swarm. Prints the stream ID first; runs until the input ends or it is interrupted.", stderr)
	cf := addClientFlags(fs)
	name := fs.String("name", "live", "stream name; with the node's key it determines the stream ID")
	realtime := fs.Bool("realtime", false, "pace a recorded file at its own rate (from its PCR) so it acts as a live source")
	loop := fs.Bool("loop", false, "repeat the file as one continuous stream (timestamps continue across passes)")
	useSample := fs.Bool("sample", false, "broadcast the sample clip built into hivecast (implies --realtime)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 || (*useSample && len(pos) == 1) {
		fs.Usage()
		return errUsage
	}
	var src io.Reader
	switch {
	case *useSample:
		*realtime = true
		open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(sample.TS)), nil }
		if *loop {
			src = plive.NewLooper(open)
		} else {
			src = bytes.NewReader(sample.TS)
		}
	case len(pos) == 0 || pos[0] == "-":
		if *loop {
			return errors.New("--loop needs a file, not stdin")
		}
		src = os.Stdin
	default:
		path := pos[0]
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("%s: %v", path, unwrapPath(err))
		}
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			f.Close()
			return fmt.Errorf("%s is a directory", path)
		}
		if *loop {
			f.Close()
			src = plive.NewLooper(func() (io.ReadCloser, error) { return os.Open(path) })
		} else {
			defer f.Close()
			src = f
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var br live.BroadcastResponse
	if err := c.Do(ctx, http.MethodPost, "/v1/broadcast", live.BroadcastRequest{Name: *name}, &br); err != nil {
		return err
	}
	fmt.Fprintln(stdout, br.ID)
	if f, ok := stdout.(*os.File); ok {
		_ = f.Sync()
	}
	url := c.URL(br.Path)
	if *realtime {
		url += "?realtime=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, src)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "video/mp2t")
	hc := &http.Client{} // no timeout: a broadcast runs for hours
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted: the daemon tells the viewers the stream ended
		}
		return fmt.Errorf("broadcast: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e api.ErrorResponse
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("broadcast: %s", resp.Status)
	}
	return nil
}

type liveOpts struct {
	out        string
	playerName string
	playerArgs []string
	duration   time.Duration
	find       time.Duration
}

func playLive(ctx context.Context, c *api.Client, id string, o liveOpts, stdout, stderr io.Writer) error {
	var wr live.WatchResponse
	if err := c.Do(ctx, http.MethodPost, "/v1/live/play", live.WatchRequest{ID: id, FindTimeoutMS: o.find.Milliseconds()}, &wr); err != nil {
		return err
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	url := c.URL(wr.Path)
	prog := newLiveProgress(ctx, c, id, stderr)
	defer prog.stop()
	switch {
	case o.out != "":
		return recordLive(ctx, url, o.out, stdout)
	case o.playerName != "":
		return launchPlayer(ctx, o.playerName, url, o.playerArgs, stderr)
	default:
		fmt.Fprintln(stdout, url)
		<-ctx.Done()
		return nil
	}
}

// recordLive writes the live HTTP stream to a file until the stream ends or
// ctx is done (--duration).
func recordLive(ctx context.Context, url, out string, stdout io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("stream: %s %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var w io.Writer = stdout
	if out != "-" {
		f, err := os.Create(out)
		if err != nil {
			return fmt.Errorf("cannot write %s: %v", out, unwrapPath(err))
		}
		defer f.Close()
		w = f
	}
	_, err = io.Copy(w, resp.Body)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("write %s: %v", out, unwrapPath(err))
	}
	return nil
}

func newLiveProgress(ctx context.Context, c *api.Client, id string, w io.Writer) *progress {
	return newProgressFunc(ctx, w, func(ctx context.Context) (string, bool) {
		var st struct {
			Streams []live.Stats `json:"streams"`
		}
		if err := c.Do(ctx, http.MethodGet, "/v1/status", nil, &st); err != nil {
			return "", false
		}
		for _, s := range st.Streams {
			if s.ID == id {
				return fmt.Sprintf("delay p50 %.0f ms p95 %.0f ms  continuity %.4f  startup %.0f ms  depth %d  children %d  down %s  up %s",
					s.DelayMS.P50, s.DelayMS.P95, s.Continuity, s.StartupMS, s.Depth, s.Children, bitrate(s.RateIn), bitrate(s.RateOut)), true
			}
		}
		return "", false
	})
}
