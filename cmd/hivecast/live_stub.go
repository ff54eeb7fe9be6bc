package main

import (
	"context"
	"errors"
	"io"

	"github.com/hivecast/hivecast/node/api"
)

func playLive(ctx context.Context, c *api.Client, id, out, playerName string, playerArgs []string, stdout, stderr io.Writer) error {
	return errors.New("live streams are not supported by this version yet")
}
