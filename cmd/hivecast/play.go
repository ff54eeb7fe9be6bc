package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/hivecast/hivecast/node/api"
	"github.com/hivecast/hivecast/node/vod"
	"github.com/hivecast/hivecast/protocol/manifest"
	"golang.org/x/term"
)

func init() {
	register(command{name: "play", args: "ID [-- PLAYER_ARGS]", summary: "play a shared file (or live stream) while it downloads", run: runPlay})
}

func runPlay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("play", "ID [-- PLAYER_ARGS]", "Finds providers of ID, downloads from all of them at once and plays while downloading.\n"+
		"Without -o or --player it prints the HTTP URL any player can open and shows progress until interrupted.", stderr)
	cf := addClientFlags(fs)
	out := fs.String("o", "", "write the bytes to FILE (- for stdout); exits 0 once all are written and verified")
	playerName := fs.String("player", "", "launch a player on the stream: vlc, mpv, ffplay, or libvlc (in-process; needs a -tags vlc build)")
	noStore := fs.Bool("no-store", false, "keep nothing on disk: only a bounded window around the playhead lives in memory")
	findTimeout := fs.Duration("find-timeout", vod.DefaultFindTimeout, "give up if no provider is found within this time")
	duration := fs.Duration("duration", 0, "live: stop after this long (default: until the stream ends or Ctrl-C)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		fs.Usage()
		return errUsage
	}
	idStr, playerArgs := pos[0], pos[1:]
	id, kind, err := manifest.ParseID(idStr)
	if err != nil {
		return err
	}
	if *out != "" && *playerName != "" {
		return errors.New("give either -o or --player, not both")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if kind == manifest.KindLive {
		return playLive(ctx, c, idStr, liveOpts{out: *out, playerName: *playerName, playerArgs: playerArgs, duration: *duration, find: *findTimeout}, stdout, stderr)
	}
	var pr vod.PlayResponse
	if err := c.Do(ctx, http.MethodPost, "/v1/play", vod.PlayRequest{ID: id.String(), NoStore: *noStore, FindTimeoutMS: findTimeout.Milliseconds()}, &pr); err != nil {
		return err
	}
	url := c.URL(pr.Path)
	if *noStore {
		url += "?store=0"
	}
	prog := newProgress(ctx, c, "/v1/play/"+id.String(), stderr)
	defer prog.stop()
	switch {
	case *out != "":
		return download(ctx, url, *out, pr.Size, stdout)
	case *playerName != "":
		return launchPlayer(ctx, *playerName, url, playerArgs, stderr)
	default:
		fmt.Fprintln(stdout, url)
		<-ctx.Done()
		return nil
	}
}

// download copies the stream to a file or stdout and checks its length.
func download(ctx context.Context, url, out string, size int64, stdout io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("stream: %s %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var w io.Writer = stdout
	var f *os.File
	if out != "-" {
		f, err = os.Create(out)
		if err != nil {
			return fmt.Errorf("cannot write %s: %v", out, unwrapPath(err))
		}
		defer f.Close()
		w = f
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		return fmt.Errorf("after %d of %d bytes: %v", n, size, unwrapPath(err))
	}
	if n != size {
		return fmt.Errorf("stream ended after %d of %d bytes", n, size)
	}
	if f != nil {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("write %s: %v", out, err)
		}
		return f.Close()
	}
	return nil
}

func launchPlayer(ctx context.Context, name, url string, extra []string, stderr io.Writer) error {
	var argv []string
	switch name {
	case "vlc":
		argv = []string{"vlc", url}
	case "cvlc":
		argv = []string{"cvlc", url}
	case "mpv":
		argv = []string{"mpv", url}
	case "ffplay":
		argv = []string{"ffplay", "-autoexit", url}
	case "libvlc":
		return playLibVLC(ctx, url, stderr)
	default:
		return fmt.Errorf("unknown player %q: use vlc, mpv, ffplay or libvlc", name)
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return fmt.Errorf("%s is not installed (or not on PATH); open %s in any player instead", argv[0], url)
	}
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], extra...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, stderr
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: %v", argv[0], err)
	}
	return nil
}

// progress polls the daemon and redraws one status line on a terminal.
type progress struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func newProgress(ctx context.Context, c *api.Client, path string, w io.Writer) *progress {
	return newProgressFunc(ctx, w, func(ctx context.Context) (string, bool) {
		var st vod.SessionStats
		if err := c.Do(ctx, http.MethodGet, path, nil, &st); err != nil {
			return "", false
		}
		return fmt.Sprintf("%5.1f%%  down %s  up %s  peers %d  buffered %.1f s", st.Percent,
			bitrate(st.DownRate), bitrate(st.UpRate), st.Providers, st.BufferedAhead), true
	})
}

// newProgressFunc redraws line() every half second while w is a terminal.
func newProgressFunc(ctx context.Context, w io.Writer, line func(context.Context) (string, bool)) *progress {
	ctx, cancel := context.WithCancel(ctx)
	p := &progress{cancel: cancel, done: make(chan struct{})}
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				fmt.Fprint(w, "\n")
				return
			case <-t.C:
			}
			if s, ok := line(ctx); ok {
				fmt.Fprintf(w, "\r\033[K%s", s)
			}
		}
	}()
	return p
}

func (p *progress) stop() {
	p.cancel()
	<-p.done
}

func bitrate(bps float64) string {
	switch {
	case bps >= 1e6:
		return fmt.Sprintf("%.1f Mbit/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.0f kbit/s", bps/1e3)
	default:
		return fmt.Sprintf("%.0f bit/s", bps)
	}
}
