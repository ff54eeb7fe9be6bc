package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/hivecast/hivecast/node"
	"github.com/hivecast/hivecast/node/api"
	"github.com/hivecast/hivecast/node/daemon"
)

func init() {
	register(command{name: "id", summary: "print this node's peer ID and its dialable addresses", run: runID})
	register(command{name: "peers", summary: "list connected peers", run: runPeers})
	register(command{name: "connect", args: "MADDR", summary: "dial a peer (full multiaddr ending in /p2p/<peer-id>)", run: runConnect})
	register(command{name: "status", summary: "show uptime, peers, DHT size, traffic and streams", run: runStatus})
}

// clientFlags are the flags every API client command takes.
type clientFlags struct {
	api     *string
	dataDir *string
	json    *bool
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		api:     fs.String("api", "", "daemon API address (default: read from DATA_DIR/api)"),
		dataDir: fs.String("data-dir", daemon.DefaultDataDir(), "the daemon's data directory ($HIVECAST_DIR)"),
		json:    fs.Bool("json", false, "machine-readable JSON output"),
	}
}

func (c clientFlags) client() (*api.Client, error) {
	if *c.api != "" {
		return api.NewClient(*c.api), nil
	}
	addr, err := daemon.ReadAPIFile(*c.dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (no api file in %s)", api.ErrNoDaemon, *c.dataDir)
	}
	if err != nil {
		return nil, err
	}
	return api.NewClient(addr), nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runID(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("id", "", "Prints the peer ID, then each address as a full multiaddr ready for --bootstrap.", stderr)
	cf := addClientFlags(fs)
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	r, err := c.ID(ctx)
	if err != nil {
		return err
	}
	if *cf.json {
		return printJSON(stdout, r)
	}
	fmt.Fprintln(stdout, r.ID)
	for _, a := range r.Addrs {
		fmt.Fprintln(stdout, a)
	}
	return nil
}

func runPeers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("peers", "", "Lists connected peers: ID, address, latency, direction.", stderr)
	cf := addClientFlags(fs)
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ps, err := c.Peers(ctx)
	if err != nil {
		return err
	}
	if *cf.json {
		return printJSON(stdout, ps)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tADDRESS\tLATENCY\tDIRECTION")
	for _, p := range ps {
		lat := "-"
		if p.LatencyMS > 0 {
			lat = (time.Duration(p.LatencyMS * float64(time.Millisecond))).Round(10 * time.Microsecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.ID, p.Addr, lat, p.Direction)
	}
	return tw.Flush()
}

func runConnect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("connect", "MADDR", "Dials a peer and reports success or why it failed.", stderr)
	cf := addClientFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	if _, err := node.ParseAddr(pos[0]); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	r, err := c.Connect(ctx, pos[0])
	if err != nil {
		return err
	}
	if *cf.json {
		return printJSON(stdout, r)
	}
	fmt.Fprintf(stdout, "connected to %s\n", r.ID)
	return nil
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", "", "Shows uptime, peer count, DHT routing-table size, bytes in/out and streams.", stderr)
	cf := addClientFlags(fs)
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	raw, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if *cf.json {
		_, err := stdout.Write(append(raw, '\n'))
		return err
	}
	var st node.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "peer id\t%s\n", st.ID)
	fmt.Fprintf(tw, "uptime\t%s\n", (time.Duration(st.UptimeSec) * time.Second).String())
	fmt.Fprintf(tw, "peers\t%d\n", st.Peers)
	fmt.Fprintf(tw, "dht routing table\t%d\n", st.RoutingTable)
	fmt.Fprintf(tw, "bytes in / out\t%d / %d\n", st.BytesIn, st.BytesOut)
	return tw.Flush()
}
