//go:build !vlc

package main

import (
	"context"
	"io"
)

// demoVLC plays the demo in libVLC only in a -tags vlc build.
func demoVLC(ctx context.Context, url string, stderr io.Writer) func() { return func() {} }
