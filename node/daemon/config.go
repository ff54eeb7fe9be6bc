// Package daemon is the shell around a hivecast node: its data directory
// (lock, identity key, config file, api file), the libp2p host built from
// options, mDNS, and the local API listener. cmd/hivecast only parses flags
// into Options and calls Run.
package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Options configure a daemon. Every field can also be set in the data
// directory's config.json (same JSON names); explicitly given flags win.
type Options struct {
	DataDir  string   `json:"-"`
	Listen   []string `json:"listen,omitempty"`
	Port     *int     `json:"port,omitempty"`
	MaxPeers int      `json:"max_peers,omitempty"`
	// DHTClient runs the DHT in client mode: the node looks up and
	// announces but answers no one's DHT queries, which keeps a
	// broadcaster's uplink for its stream.
	DHTClient    bool          `json:"dht_client,omitempty"`
	Bootstrap    []string      `json:"bootstrap,omitempty"`
	API          string        `json:"api,omitempty"`
	NoMDNS       bool          `json:"no_mdns,omitempty"`
	NoNATPortMap bool          `json:"no_nat_portmap,omitempty"`
	NoAutoNAT    bool          `json:"no_autonat,omitempty"`
	NoHolePunch  bool          `json:"no_holepunch,omitempty"`
	LogLevel     string        `json:"log_level,omitempty"`
	MaxUpload    string        `json:"max_upload,omitempty"`   // e.g. "4Mbit"; empty: unlimited
	MaxDownload  string        `json:"max_download,omitempty"` // e.g. "20Mbit"; empty: unlimited
	CacheSize    string        `json:"cache_size,omitempty"`   // e.g. "10GiB"; default DefaultCacheSize
	MaxChildren  int           `json:"max_children,omitempty"` // live: peers fed per stream (default 4)
	Latency      time.Duration `json:"latency,omitempty"`      // live: jitter buffer target (default 500ms)
}

// Defaults.
const (
	DefaultPort     = 4001
	DefaultAPI      = "127.0.0.1:5080"
	DefaultMaxPeers = 200
	// DefaultCacheSize bounds the download cache.
	DefaultCacheSize = "10GiB"
	ConfigFile       = "config.json"
	KeyFile          = "identity.key"
	APIFile          = "api"
	LockFile         = "lock"
)

// DefaultDataDir is $HIVECAST_DIR, else ~/.hivecast.
func DefaultDataDir() string {
	if d := os.Getenv("HIVECAST_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".hivecast"
	}
	return filepath.Join(home, ".hivecast")
}

// LoadConfig reads DIR/config.json; a missing file is an empty config.
func LoadConfig(dir string) (Options, error) {
	var o Options
	b, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		return o, nil
	}
	if err != nil {
		return o, err
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return o, fmt.Errorf("config file %s: %v", filepath.Join(dir, ConfigFile), err)
	}
	return o, nil
}

// ListenAddrs resolves --listen and --port into multiaddr strings.
func (o Options) ListenAddrs() []string {
	if len(o.Listen) > 0 {
		return o.Listen
	}
	port := DefaultPort
	if o.Port != nil {
		port = *o.Port
	}
	return []string{
		fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", port),
		fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", port),
		fmt.Sprintf("/ip6/::/tcp/%d", port),
		fmt.Sprintf("/ip6/::/udp/%d/quic-v1", port),
	}
}

func (o Options) apiAddr() string {
	if o.API == "" {
		return DefaultAPI
	}
	return o.API
}

func (o Options) maxPeers() int {
	if o.MaxPeers <= 0 {
		return DefaultMaxPeers
	}
	return o.MaxPeers
}
