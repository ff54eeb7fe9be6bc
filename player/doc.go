// Package player is hivecast's playback pipeline. It has no network code: the
// node feeds it verified chunks and it turns them into byte streams for players.
//
// On demand (files): a VOD holds the verified chunks of one file, which arrive
// in any order, in a ChunkStore (MemWindow in memory, or the node's disk
// store). Any number of Readers (io.ReadSeekCloser) read it as one byte
// stream; Read blocks until its bytes are present. Every Reader is a playhead
// the download scheduler can see (VOD.Playheads), and VOD calls
// Options.OnWant, without holding locks, as soon as a reader needs a chunk that
// is missing (after a seek or a skip), so the scheduler can fetch it first.
// VOD.ServeHTTP serves the file with HTTP Range support.
//
// Live: a Jitter buffer reorders live chunks and releases them at their playout
// deadlines (capture time + a fixed target latency), skipping what did not come
// in time and re-anchoring after a stall. Jitter is pure (the caller passes
// the time); Live runs one in a goroutine with a Clock and writes to a Sink:
// a file or stdout (FileSink) or any number of HTTP clients (HTTPFanout).
//
// Driving it from the node:
//
//   - Files: NewVOD(manifest size, chunk size, store, VODOptions{OnWant: ...,
//     MIME: manifest mime}). The downloader calls Put(i, data) with each
//     verified chunk. The scheduler orders its requests by VOD.Playheads
//     (nearest missing chunk ahead of each playhead first; Ahead says how
//     much each one has buffered) and treats OnWant(i) as "urgent: fetch i
//     now" (it is called from the reader's goroutine: hand it over without
//     blocking, e.g. a non-blocking send on a buffered channel). With a
//     MemWindow store, fetch at most Capacity chunks ahead of the playheads;
//     Put returns ErrFull beyond that. Mount the VOD (an http.Handler) on
//     the daemon's API for players; Close it when the file is dropped.
//   - Live: NewLive(sink, LiveOptions{...}) and Push each verified chunk as it
//     arrives, newest start point first when joining or after an outage. Read
//     Stats for the metrics. Close stops it and closes the sink.
//
// The libVLC sink lives in player/vlc behind the "vlc" build tag; everything in
// this package builds with CGO_ENABLED=0.
package player
