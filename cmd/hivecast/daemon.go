package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hivecast/hivecast/node/daemon"
)

func init() {
	register(command{name: "daemon", args: "", summary: "run a hivecast node in the foreground until interrupted", run: runDaemon})
}

func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("daemon", "", "Runs a hivecast node: libp2p host, DHT, local API. Stop it with Ctrl-C or SIGTERM.\nEvery flag can also be set in DATA_DIR/config.json (same names with _ for -); flags win.", stderr)
	dataDir := fs.String("data-dir", daemon.DefaultDataDir(), "data directory: identity key, config.json, state, api file ($HIVECAST_DIR)")
	var listen, bootstrap stringList
	fs.Var(&listen, "listen", "listen multiaddr (repeatable; default TCP and QUIC on port 4001)")
	port := fs.Int("port", daemon.DefaultPort, "listen on TCP and QUIC port N on all interfaces (0 picks free ports)")
	maxPeers := fs.Int("max-peers", daemon.DefaultMaxPeers, "upper bound on connected peers")
	dhtClient := fs.Bool("dht-client", false, "answer no DHT queries (look up and announce only): keeps a broadcaster's uplink for its stream")
	fs.Var(&bootstrap, "bootstrap", "bootstrap peer, full multiaddr ending in /p2p/<peer-id> (repeatable)")
	apiAddr := fs.String("api", daemon.DefaultAPI, "local control API address (127.0.0.1:0 picks a free port)")
	noMDNS := fs.Bool("no-mdns", false, "do not discover peers on the LAN with mDNS")
	noPortMap := fs.Bool("no-nat-portmap", false, "do not map ports with UPnP/NAT-PMP")
	noAutoNAT := fs.Bool("no-autonat", false, "do not run the AutoNAT service for other peers")
	noHolePunch := fs.Bool("no-holepunch", false, "disable hole punching")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	maxUp := fs.String("max-upload", "", "cap upload rate, e.g. 4Mbit, 500kB (default unlimited)")
	maxDown := fs.String("max-download", "", "cap download rate, e.g. 20Mbit (default unlimited)")
	cacheSize := fs.String("cache-size", daemon.DefaultCacheSize, "cap on the download cache on disk (least recently used evicted)")
	maxChildren := fs.Int("max-children", 4, "live: most peers this node feeds per stream (also bounded by --max-upload)")
	latency := fs.Duration("latency", 500*time.Millisecond, "live: jitter buffer target latency of a viewer")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	opts, err := daemon.LoadConfig(*dataDir)
	if err != nil {
		return err
	}
	opts.DataDir = *dataDir
	if set["listen"] {
		opts.Listen = listen
	}
	if set["port"] {
		opts.Port = port
	}
	if set["max-peers"] || opts.MaxPeers == 0 {
		opts.MaxPeers = *maxPeers
	}
	if set["dht-client"] {
		opts.DHTClient = *dhtClient
	}
	if set["bootstrap"] {
		opts.Bootstrap = bootstrap
	}
	if set["api"] || opts.API == "" {
		opts.API = *apiAddr
	}
	if set["no-mdns"] {
		opts.NoMDNS = *noMDNS
	}
	if set["no-nat-portmap"] {
		opts.NoNATPortMap = *noPortMap
	}
	if set["no-autonat"] {
		opts.NoAutoNAT = *noAutoNAT
	}
	if set["no-holepunch"] {
		opts.NoHolePunch = *noHolePunch
	}
	if set["log-level"] || opts.LogLevel == "" {
		opts.LogLevel = *logLevel
	}
	if set["max-upload"] {
		opts.MaxUpload = *maxUp
	}
	if set["max-download"] {
		opts.MaxDownload = *maxDown
	}
	if set["max-children"] || opts.MaxChildren == 0 {
		opts.MaxChildren = *maxChildren
	}
	if set["latency"] || opts.Latency == 0 {
		opts.Latency = *latency
	}
	if set["cache-size"] || opts.CacheSize == "" {
		opts.CacheSize = *cacheSize
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(opts.LogLevel))); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", opts.LogLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return daemon.Run(ctx, opts, log)
}
