//go:build !vlc

package main

import (
	"context"
	"errors"
	"io"
)

func playLibVLC(ctx context.Context, url string, stderr io.Writer) error {
	return errors.New("this hivecast was built without libVLC; rebuild with `go build -tags vlc ./cmd/hivecast` or use --player vlc")
}
