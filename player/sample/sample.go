// Package sample embeds a short MPEG-TS test clip made by scripts/make-sample.sh.
//
// The clip is 10 s of 640x360 25 fps H.264 (testsrc2 with a running timestamp,
// ~600 kbit/s, a keyframe with SPS/PPS every second) and 48 kHz mono AAC
// (a 440 Hz sine, 64 kbit/s), muxed at a constant 720 kbit/s with PAT/PMT
// resent before every keyframe. Figures below are from ffprobe:
//
//	ffprobe -show_entries format=duration,bit_rate,size,start_time player/sample/sample.ts
//	  start_time=1.458667 duration=10.021333 size=935300 bit_rate=746647
//	video: h264 640x360 25/1, 250 frames, 10 keyframes (pts 1.48, 2.48, ...)
//	audio: aac 67021 bit/s
package sample

import (
	_ "embed"
	"time"
)

// TS is the whole clip, an MPEG-TS byte stream (a multiple of 188 bytes).
//
//go:embed sample.ts
var TS []byte

const (
	// Duration is the clip's duration as ffprobe reports it (10.021333 s).
	Duration = 10021333 * time.Microsecond
	// Bitrate is the clip's overall bit rate in bit/s (ffprobe format bit_rate).
	Bitrate = 746647
	// Size is len(TS) in bytes.
	Size = 935300
	// VideoFrames is the number of video frames in the clip.
	VideoFrames = 250
	// KeyframeInterval is the time between keyframes (start points).
	KeyframeInterval = time.Second
	// MIME is the clip's container type.
	MIME = "video/mp2t"
)
