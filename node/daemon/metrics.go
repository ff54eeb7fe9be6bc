package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exports hivecast's own figures to Prometheus at scrape time.
type collector struct {
	d *Daemon

	peers, routing, bytesIn, bytesOut             *prometheus.Desc
	fileHeld, fileChunks, fileDown, fileProviders *prometheus.Desc
	liveDelay, liveCont, liveStartup, liveKids    *prometheus.Desc
	liveDepth, liveIn, liveOut, liveStalls        *prometheus.Desc
	liveMissed, liveSwitches                      *prometheus.Desc
}

func newCollector(d *Daemon) *collector {
	f := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("hivecast_"+name, help, labels, nil)
	}
	return &collector{
		d:             d,
		peers:         f("peers", "Connected peers."),
		routing:       f("dht_routing_table_peers", "Peers in the DHT routing table."),
		bytesIn:       f("bytes_received_total", "Bytes received by the libp2p host."),
		bytesOut:      f("bytes_sent_total", "Bytes sent by the libp2p host."),
		fileHeld:      f("file_chunks_held", "Chunks held of a file being played.", "id"),
		fileChunks:    f("file_chunks", "Chunks of a file being played.", "id"),
		fileDown:      f("file_downloaded_bytes_total", "Payload bytes downloaded for a file.", "id"),
		fileProviders: f("file_providers", "Providers known for a file being played.", "id"),
		liveDelay:     f("live_delay_seconds", "Source-to-end delay of a watched stream (recent chunks).", "id", "quantile"),
		liveCont:      f("live_continuity_ratio", "Share of chunks played before their deadline.", "id"),
		liveStartup:   f("live_startup_seconds", "Time from joining to the first chunk played.", "id"),
		liveKids:      f("live_children", "Peers this node feeds the stream to.", "id", "role"),
		liveDepth:     f("live_depth", "Hops from the source (0 at the source).", "id", "role"),
		liveIn:        f("live_received_bytes_total", "Chunk payload bytes received for a stream.", "id", "role"),
		liveOut:       f("live_sent_bytes_total", "Bytes pushed to children for a stream.", "id", "role"),
		liveStalls:    f("live_stalls_total", "Playout stalls of a watched stream.", "id"),
		liveMissed:    f("live_missed_chunks_total", "Chunks skipped at their deadline.", "id"),
		liveSwitches:  f("live_parent_switches_total", "Times the viewer changed parent.", "id"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.peers, c.routing, c.bytesIn, c.bytesOut, c.fileHeld, c.fileChunks, c.fileDown,
		c.fileProviders, c.liveDelay, c.liveCont, c.liveStartup, c.liveKids, c.liveDepth, c.liveIn, c.liveOut,
		c.liveStalls, c.liveMissed, c.liveSwitches} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	d.mu.Lock()
	n, v, l := d.node, d.vod, d.live
	d.mu.Unlock()
	if n == nil {
		return
	}
	g := func(desc *prometheus.Desc, val float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, val, labels...)
	}
	cnt := func(desc *prometheus.Desc, val float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, val, labels...)
	}
	st := n.Status()
	g(c.peers, float64(st.Peers))
	g(c.routing, float64(st.RoutingTable))
	cnt(c.bytesIn, float64(st.BytesIn))
	cnt(c.bytesOut, float64(st.BytesOut))
	if v != nil {
		for _, s := range v.Sessions() {
			g(c.fileHeld, float64(s.Held), s.ID)
			g(c.fileChunks, float64(s.Chunks), s.ID)
			cnt(c.fileDown, float64(s.DownBytes), s.ID)
			g(c.fileProviders, float64(s.Providers), s.ID)
		}
	}
	if l != nil {
		for _, s := range l.Streams() {
			g(c.liveKids, float64(s.Children), s.ID, s.Role)
			g(c.liveDepth, float64(s.Depth), s.ID, s.Role)
			cnt(c.liveIn, float64(s.BytesIn), s.ID, s.Role)
			cnt(c.liveOut, float64(s.BytesOut), s.ID, s.Role)
			if s.Role != "viewer" {
				continue
			}
			g(c.liveDelay, s.DelayMS.P50/1000, s.ID, "0.5")
			g(c.liveDelay, s.DelayMS.P95/1000, s.ID, "0.95")
			g(c.liveDelay, s.DelayMS.P99/1000, s.ID, "0.99")
			g(c.liveCont, s.Continuity, s.ID)
			g(c.liveStartup, s.StartupMS/1000, s.ID)
			cnt(c.liveStalls, float64(s.Stalls), s.ID)
			cnt(c.liveMissed, float64(s.Missed), s.ID)
			cnt(c.liveSwitches, float64(s.Switches), s.ID)
		}
	}
}
