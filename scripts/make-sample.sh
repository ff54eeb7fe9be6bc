#!/bin/sh
# make-sample.sh: build player/sample/sample.ts, the short test clip the player
# tests (and the VLC test) play. Needs ffmpeg with libx264 and the native AAC encoder.
#
#   10 s, 640x360, 25 fps, H.264 (~600 kbit/s, keyframe every second, SPS/PPS
#   repeated before each keyframe) + AAC 48 kHz mono 64 kbit/s sine tone, in
#   MPEG-TS with PAT/PMT resent before keyframes and a constant mux rate.
#
# Usage: scripts/make-sample.sh [OUT]   (default player/sample/sample.ts)
#   GOP=0.5 DUR=4 scripts/make-sample.sh node/sim/testdata/gop500ms.ts
#   makes the simulator's clip with a keyframe every 0.5 s (-media).
set -eu

out=${1:-"$(dirname "$0")/../player/sample/sample.ts"}
dur=${DUR:-10}
gop=${GOP:-1}

ffmpeg -hide_banner -loglevel warning -y \
	-f lavfi -i "testsrc2=size=640x360:rate=25:duration=${dur}" \
	-f lavfi -i "sine=frequency=440:sample_rate=48000:duration=${dur}" \
	-vf "drawtext=text='%{pts\\:hms}':x=20:y=20:fontsize=36:fontcolor=white:box=1:boxcolor=black@0.6" \
	-c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p \
	-b:v 600k -maxrate 600k -bufsize 300k \
	-g 250 -sc_threshold 0 -force_key_frames "expr:gte(t,n_forced*${gop})" \
	-x264-params repeat-headers=1 \
	-c:a aac -b:a 64k -ac 1 \
	-f mpegts -mpegts_flags +resend_headers -muxrate 720k -pcr_period 40 \
	-t "${dur}" "$out"

# The clip must decode without a single error.
errs=$(ffmpeg -v error -i "$out" -f null - 2>&1)
if [ -n "$errs" ]; then
	echo "make-sample: $out does not decode cleanly:" >&2
	echo "$errs" >&2
	exit 1
fi
ffprobe -v error -show_entries format=duration,bit_rate,size -of default=nw=1 "$out"
