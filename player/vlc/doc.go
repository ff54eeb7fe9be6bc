// Package vlc plays hivecast streams through libVLC (cgo). It builds only
// with the "vlc" build tag and needs libvlc-dev to build and VLC's plugins
// (Debian: vlc-plugin-base) to play:
//
//	go test -tags vlc ./player/vlc/
//
// Call Init once per process (libVLC is a process-wide instance), then Play a
// VOD Reader (seekable) or PlayLive any live reader (a player.StreamReader fed
// by a player.Live runner, or an HTTP response body).
package vlc
