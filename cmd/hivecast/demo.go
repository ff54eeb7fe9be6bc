package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/hivecast/hivecast/node/demo"
	"golang.org/x/term"
)

func init() {
	register(command{name: "demo", summary: "run a local swarm (broadcaster + viewers) on the built-in sample clip", run: runDemo})
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "", "Starts a broadcaster and viewers in this process on loopback, streams the sample clip\n"+
		"built into hivecast (looped, in real time) through them, and prints every viewer's delay and\n"+
		"continuity each second. Open the printed URL in any player (vlc, mpv, ffplay). Ctrl-C stops it.", stderr)
	viewers := fs.Int("viewers", 8, "number of viewers")
	maxChildren := fs.Int("max-children", 2, "peers each node feeds (small values make a deeper relay tree)")
	duration := fs.Duration("duration", 0, "stop after this long (default: until Ctrl-C)")
	noVLC := fs.Bool("no-vlc", false, "in a -tags vlc build, do not play the stream in libVLC")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	fmt.Fprintf(stderr, "starting a broadcaster and %d viewers on loopback...\n", *viewers)
	sw, err := demo.Start(ctx, demo.Options{Viewers: *viewers, MaxChildren: *maxChildren})
	if err != nil {
		return err
	}
	defer sw.Close()
	fmt.Fprintf(stdout, "stream %s\nplay it: vlc %s\n", sw.ID(), sw.URL(0))
	if !*noVLC {
		stopVLC := demoVLC(ctx, sw.URL(0), stderr)
		defer stopVLC()
	}
	isTTY := false
	if f, ok := stdout.(*os.File); ok {
		isTTY = term.IsTerminal(int(f.Fd()))
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lines := 0
	for {
		select {
		case <-ctx.Done():
			printDemo(stdout, sw, isTTY, &lines)
			return nil
		case <-t.C:
		}
		if err := sw.Err(); err != nil {
			return err
		}
		printDemo(stdout, sw, isTTY, &lines)
	}
}

func printDemo(w io.Writer, sw *demo.Swarm, tty bool, lines *int) {
	if tty && *lines > 0 {
		fmt.Fprintf(w, "\033[%dA\033[J", *lines) // redraw in place
	}
	src := sw.SourceStats()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "node\tdepth\tchildren\tdelay p50\tp95\tp99\tcontinuity\tstartup\tswitches\tdown\tup\t\n")
	fmt.Fprintf(tw, "source\t0\t%d\t-\t-\t-\t-\t-\t-\t-\t%s\t\n", src.Children, bitrate(src.RateOut))
	for i, s := range sw.ViewerStats() {
		fmt.Fprintf(tw, "viewer %d\t%d\t%d\t%.0f ms\t%.0f ms\t%.0f ms\t%.4f\t%.0f ms\t%d\t%s\t%s\t\n", i+1, s.Depth, s.Children,
			s.DelayMS.P50, s.DelayMS.P95, s.DelayMS.P99, s.Continuity, s.StartupMS, s.Switches, bitrate(s.RateIn), bitrate(s.RateOut))
	}
	tw.Flush()
	*lines = len(sw.Viewers) + 2
	if !tty {
		fmt.Fprintln(w)
	}
}
