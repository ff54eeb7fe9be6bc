//go:build vlc

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hivecast/hivecast/player/httpsrc"
	"github.com/hivecast/hivecast/player/vlc"
)

// playLibVLC plays url inside this process through libVLC until the media
// ends or ctx is done.
func playLibVLC(ctx context.Context, url string, stderr io.Writer) error {
	if err := vlc.Init("--quiet"); err != nil {
		return err
	}
	defer vlc.Release()
	var p *vlc.Player
	if s, err := httpsrc.Open(ctx, url); err == nil {
		if p, err = vlc.Play(s); err != nil {
			return err
		}
	} else if strings.Contains(err.Error(), "no length") {
		body, err := httpsrc.Live(ctx, url)
		if err != nil {
			return err
		}
		if p, err = vlc.PlayLive(body); err != nil {
			body.Close()
			return err
		}
	} else {
		return err
	}
	defer p.Close()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		st, err := p.State()
		if err != nil {
			return err
		}
		switch st {
		case vlc.Ended, vlc.Stopped:
			return nil
		case vlc.Error:
			return fmt.Errorf("libVLC could not play %s", url)
		}
	}
}

// demoVLC plays the demo stream in libVLC in the background.
func demoVLC(ctx context.Context, url string, stderr io.Writer) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := playLibVLC(ctx, url, stderr); err != nil {
			fmt.Fprintf(stderr, "libVLC: %v\n", err)
		}
	}()
	return func() { cancel(); <-done }
}
