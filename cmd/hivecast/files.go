package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/hivecast/hivecast/node/store"
	"github.com/hivecast/hivecast/node/vod"
	"github.com/hivecast/hivecast/protocol/manifest"
)

func init() {
	register(command{name: "share", args: "FILE", summary: "share a video file; prints its content ID", run: runShare})
	register(command{name: "unshare", args: "ID", summary: "stop sharing (and drop from the cache) a content ID", run: runUnshare})
	register(command{name: "ls", summary: "list what this node shares and caches", run: runLs})
}

func runShare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("share", "FILE", "Chunks and hashes FILE, serves it from where it lies, announces it in the DHT,\nand prints its content ID (one line). Shares survive daemon restarts.", stderr)
	cf := addClientFlags(fs)
	name := fs.String("name", "", "display name (default: the file's name)")
	chunkSize := fs.Int("chunk-size", manifest.DefaultChunkSize, "chunk size in bytes (power of two, 16 KiB .. 4 MiB)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	path, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	// Check here too, so the message names the path as the user typed it.
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s: no such file", pos[0])
	case err != nil:
		return err
	case fi.IsDir():
		return fmt.Errorf("%s is a directory; share the video files in it one by one", pos[0])
	}
	if f, err := os.Open(path); err != nil {
		return fmt.Errorf("%s: cannot read: %v", pos[0], unwrapPath(err))
	} else {
		f.Close()
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var r vod.ShareResponse
	if err := c.Do(ctx, http.MethodPost, "/v1/share", vod.ShareRequest{Path: path, Name: *name, ChunkSize: *chunkSize}, &r); err != nil {
		return err
	}
	if *cf.json {
		return printJSON(stdout, r)
	}
	fmt.Fprintln(stdout, r.ID)
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func runUnshare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("unshare", "ID", "Stops sharing ID and removes it from the cache.", stderr)
	cf := addClientFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	if _, _, err := manifest.ParseID(pos[0]); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	return c.Do(ctx, http.MethodDelete, "/v1/share/"+pos[0], nil, nil)
}

func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ls", "", "Lists what this node shares and caches.", stderr)
	cf := addClientFlags(fs)
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var items []store.Item
	if err := c.Do(ctx, http.MethodGet, "/v1/ls", nil, &items); err != nil {
		return err
	}
	if *cf.json {
		return printJSON(stdout, items)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSOURCE\tSIZE\tHAVE\tNAME\tPROBLEM")
	for _, it := range items {
		problem := "-"
		if it.Problem != "" {
			problem = it.Problem + ": not served"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f%%\t%s\t%s\n", it.ID, it.Source, humanBytes(it.Size), 100*it.Have, it.Name, problem)
	}
	return tw.Flush()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
