package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hivecast/hivecast/node"
	"github.com/hivecast/hivecast/node/api"
	"github.com/hivecast/hivecast/node/bwlimit"
	"github.com/hivecast/hivecast/node/live"
	"github.com/hivecast/hivecast/node/store"
	"github.com/hivecast/hivecast/node/vod"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// MDNSService is the mDNS service name hivecast nodes announce on the LAN.
const MDNSService = "hivecast"

// Daemon is a running daemon: node, host, API listener and data dir.
type Daemon struct {
	mu      sync.Mutex // guards the service pointers against teardown (metrics)
	opts    Options
	log     *slog.Logger
	lock    *dirLock
	host    host.Host
	node    *node.Node
	store   *store.Store
	vod     *vod.Service
	live    *live.Service
	mdns    mdns.Service
	api     *api.Server
	httpSrv *http.Server
	apiLn   net.Listener
	served  chan struct{}
}

// Start starts a daemon. It returns once the node and the API are up and the
// API address is written to DIR/api. Close stops it.
func Start(opts Options, log *slog.Logger) (_ *Daemon, err error) {
	if log == nil {
		log = slog.Default()
	}
	if opts.DataDir == "" {
		opts.DataDir = DefaultDataDir()
	}
	d := &Daemon{opts: opts, log: log, served: make(chan struct{})}
	defer func() {
		if err != nil {
			d.teardown()
		}
	}()
	if d.lock, err = lockDataDir(opts.DataDir); err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(opts.DataDir)
	if err != nil {
		return nil, err
	}
	up, err := bwlimit.Parse(opts.MaxUpload)
	if err != nil {
		return nil, fmt.Errorf("--max-upload: %w", err)
	}
	down, err := bwlimit.Parse(opts.MaxDownload)
	if err != nil {
		return nil, fmt.Errorf("--max-download: %w", err)
	}
	cacheSize := opts.CacheSize
	if cacheSize == "" {
		cacheSize = DefaultCacheSize
	}
	cacheCap, err := bwlimit.Parse(cacheSize)
	if err != nil {
		return nil, fmt.Errorf("--cache-size: %w", err)
	}
	var bootstrap []peer.AddrInfo
	for _, b := range opts.Bootstrap {
		ai, err := node.ParseAddr(b)
		if err != nil {
			return nil, fmt.Errorf("--bootstrap: %w", err)
		}
		bootstrap = append(bootstrap, ai)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	bw := metrics.NewBandwidthCounter()
	if d.host, err = NewHost(key, opts, reg, bw); err != nil {
		return nil, err
	}
	ncfg := node.Config{Bootstrap: bootstrap, Logger: log, Bandwidth: bw}
	if opts.DHTClient {
		ncfg.DHTOptions = []dht.Option{dht.Mode(dht.ModeClient)}
	}
	if d.node, err = node.New(d.host, ncfg); err != nil {
		return nil, err
	}
	if d.store, err = store.Open(filepath.Join(opts.DataDir, "store"), int64(cacheCap)); err != nil {
		return nil, err
	}
	upLim := bwlimit.New(up)
	d.live = live.New(d.node, key, live.Config{MaxChildren: opts.MaxChildren, Upload: upLim, UploadRate: up, Latency: opts.Latency})
	d.vod = vod.New(d.node, d.store, vod.Config{Upload: upLim, Download: bwlimit.New(down), Live: d.live, LivePeers: d.live.PexPeers})
	if !opts.NoMDNS {
		d.mdns = mdns.NewMdnsService(d.host, MDNSService, &mdnsNotifee{n: d.node, log: log})
		if err := d.mdns.Start(); err != nil {
			log.Warn("mDNS unavailable; LAN peers need --bootstrap", "err", err.Error())
			d.mdns = nil
		}
	}
	reg.MustRegister(newCollector(d))
	d.api = api.NewServer(d.node, reg)
	d.vod.Routes(d.api)
	d.live.Routes(d.api)
	d.api.AddStatus("streams", func() any { return d.live.Streams() })
	d.api.AddStatus("files", func() any { return d.vod.Sessions() })
	if d.apiLn, err = net.Listen("tcp", opts.apiAddr()); err != nil {
		return nil, fmt.Errorf("API listen on %s: %w (is another daemon using it? pick one with --api)", opts.apiAddr(), err)
	}
	d.httpSrv = &http.Server{Handler: d.api, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(d.served)
		if err := d.httpSrv.Serve(d.apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API server stopped", "err", err.Error())
		}
	}()
	if err := writeFileAtomic(filepath.Join(opts.DataDir, APIFile), []byte(d.apiLn.Addr().String()+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write api file: %w", err)
	}
	log.Info("daemon ready", "api", d.apiLn.Addr().String(), "data_dir", opts.DataDir, "peer", d.host.ID().String())
	return d, nil
}

// Run starts a daemon and serves until ctx is done, then shuts down.
func Run(ctx context.Context, opts Options, log *slog.Logger) error {
	d, err := Start(opts, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	d.log.Info("shutting down")
	return d.Close()
}

// NewHost builds the libp2p host of a daemon from its options.
func NewHost(key crypto.PrivKey, opts Options, reg prometheus.Registerer, bw metrics.Reporter) (host.Host, error) {
	maxPeers := opts.maxPeers()
	cm, err := node.NewConnManager(maxPeers)
	if err != nil {
		return nil, err
	}
	// Resource limits consistent with --max-peers: a peer may hold a TCP and a
	// QUIC connection at once, plus transient ones while dialling.
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	scaled := limits.AutoScale()
	conns := rcmgr.LimitVal(4*maxPeers + 16)
	partial := rcmgr.PartialLimitConfig{System: rcmgr.ResourceLimits{
		Conns: conns, ConnsInbound: conns, ConnsOutbound: conns,
	}}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(partial.Build(scaled)))
	if err != nil {
		return nil, err
	}
	gater := node.NewPeerCap(maxPeers)
	lopts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(opts.ListenAddrs()...),
		libp2p.ConnectionManager(cm),
		// Inbound newcomers beyond the bound are refused before their
		// handshake (PeerCap.ResourceManager).
		libp2p.ResourceManager(gater.ResourceManager(rm)),
		libp2p.ConnectionGater(gater),
		libp2p.BandwidthReporter(bw),
		libp2p.PrometheusRegisterer(reg),
		libp2p.UserAgent("hivecast/0.1"),
	}
	if !opts.NoNATPortMap {
		lopts = append(lopts, libp2p.NATPortMap())
	}
	if !opts.NoAutoNAT {
		lopts = append(lopts, libp2p.EnableNATService())
	}
	if !opts.NoHolePunch {
		lopts = append(lopts, libp2p.EnableHolePunching())
	}
	h, err := libp2p.New(lopts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	gater.Attach(h)
	return h, nil
}

// Node is the daemon's node.
func (d *Daemon) Node() *node.Node { return d.node }

// API is the daemon's API server (services add their routes to it).
func (d *Daemon) API() *api.Server { return d.api }

// APIAddr is the address the API listens on.
func (d *Daemon) APIAddr() string { return d.apiLn.Addr().String() }

// VOD is the daemon's on-demand video service.
func (d *Daemon) VOD() *vod.Service { return d.vod }

// Live is the daemon's live service.
func (d *Daemon) Live() *live.Service { return d.live }

// DataDir is the daemon's data directory.
func (d *Daemon) DataDir() string { return d.opts.DataDir }

// Close stops accepting API requests, closes streams, the DHT and the host,
// removes the api file and releases the data dir.
func (d *Daemon) Close() error {
	if d.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if err := d.httpSrv.Shutdown(ctx); err != nil {
			d.httpSrv.Close()
		}
		cancel()
		<-d.served
		d.httpSrv = nil
	}
	return d.teardown()
}

func (d *Daemon) teardown() error {
	var errs []error
	if d.apiLn != nil && d.httpSrv == nil {
		os.Remove(filepath.Join(d.opts.DataDir, APIFile))
	} else if d.apiLn != nil {
		d.apiLn.Close()
		os.Remove(filepath.Join(d.opts.DataDir, APIFile))
	}
	if d.mdns != nil {
		errs = append(errs, d.mdns.Close())
		d.mdns = nil
	}
	d.mu.Lock()
	lv, vd := d.live, d.vod
	d.live, d.vod = nil, nil
	d.mu.Unlock()
	if lv != nil {
		errs = append(errs, lv.Close())
	}
	if vd != nil {
		errs = append(errs, vd.Close())
	}
	if d.store != nil {
		errs = append(errs, d.store.Close())
		d.store = nil
	}
	d.mu.Lock()
	nd := d.node
	d.node = nil
	d.mu.Unlock()
	if nd != nil {
		errs = append(errs, nd.Close())
	}
	if d.host != nil {
		errs = append(errs, d.host.Close())
		d.host = nil
	}
	if d.lock != nil {
		d.lock.release()
		d.lock = nil
	}
	return errors.Join(errs...)
}

type mdnsNotifee struct {
	n   *node.Node
	log *slog.Logger
}

func (m *mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == m.n.Host().ID() {
		return
	}
	m.log.Debug("found LAN peer via mDNS", "peer", ai.ID.String())
	m.n.DialAsync(ai)
}
