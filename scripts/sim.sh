#!/bin/sh
# Swarm simulator (issue 5): real hivecast nodes on go-libp2p's simulated
# network (x/simlibp2p) under testing/synctest, in virtual time.
#
#   scripts/sim.sh [flags]             one scenario, prints its table
#   scripts/sim.sh -viewers 100 -seed 3 -vanish 0.2
#   SIM_RUNS=3 scripts/sim.sh ...      rerun with seeds 1..3 (spread between seeds)
#   SIM_REPEAT=3 scripts/sim.sh ...    rerun the same seed 3 times (spread between reruns)
#
# Flags (defaults are issue 5's default scenario):
#   -viewers N (16)  -seed S (1)  -bitrate bit/s (2e6)  -latency 40ms  -latency-spread 0
#   -viewer-up bit/s (4e6)  -source-up bit/s (8e6)  -bootstraps N (2; -1: the source)
#   -max-peers N (each node's peer bound, as the daemon's --max-peers, whose default
#   is 200; 0, the default here: no bound)
#   -late-refusal (a full node refuses newcomers after their handshake, as before 2026-12-03)
#   -hint (viewers get the source as a first candidate)  -source-dht-client (the source
#   answers no DHT queries)  -join-over 4s  -warmup 4s  -measure 10s
#   -online DUR (a viewer's node starts DUR before it watches, as a running daemon;
#   default 0: a cold start)  -media FILE -media-bitrate B (another clip to loop, e.g.
#   testdata/gop500ms.ts, bit rate 761100: a keyframe every 0.5 s)
#   -vanish SHARE  -leave SHARE  -chunk DUR (50ms)  -jitter-latency DUR (500ms)
#   -stall DUR (350ms; 500ms with stripes)  -heartbeat DUR (100ms)  -children N  -source-children N  -join-lag DUR
#   -stripes K (1; 4: experimental striping, docs/benchmarks.md)  -chunk-bytes N (65424; 8084 with stripes)
#   -verbose (a swarm line per virtual second: uplink lag, chunk bytes sent,
#   backlog, probes answered, subscriptions taken and refused, evictions, stale skips,
#   playout and stripe delays; the source's
#   peers, probes and refusals, offered wire rate and stream bytes per protocol;
#   repair fetches; the viewers' probes sent by purpose and those that dialled, and their DHT lookups;
#   the startup steps and the five slowest starts (each stripe's first
#   chunk and tries); missed chunks by size; two lines per viewer below 0.99
#   continuity)
#   -trace FILE (every node's debug log)  -heap FILE (a heap profile at the end
#   of the measured span); relative paths are taken from node/sim
#   -count-dials (the dials to unconnected peers per virtual second and calling
#   function, printed with the swarm lines)
# Wall time: ~10 s for 12 viewers, ~25 s for 24, ~4 min for 100, ~7 min for 200
# (7 GB), ~18 min for 300 (12 GB) on 2 cores.
set -eu
cd "$(dirname "$0")/.."
timeout=${SIM_TIMEOUT:-60m}
bin=$(mktemp -d)/sim.test
go test -c -o "$bin" ./node/sim
out=$(mktemp)
cd node/sim
printed=0
run() {
	"$bin" -test.run '^TestScenario$' -test.timeout "$timeout" -test.v "$@" -out "$out" >"$out.log" 2>&1 || {
		cat "$out.log"
		exit 1
	}
	grep -E 'sim.go:[0-9]+: (viewer|t=|startup steps|slow start|missed/due|dials)|^ +t=[0-9]+s +[0-9]+ ' "$out.log" >&2 || true
	grep -E '^wall' "$out.log" >>"$out.wall" || true
}
if [ -n "${SIM_RUNS:-}" ]; then
	for s in $(seq 1 "$SIM_RUNS"); do run "$@" -seed "$s"; done
elif [ -n "${SIM_REPEAT:-}" ]; then
	for _ in $(seq 1 "$SIM_REPEAT"); do run "$@"; done
else
	run "$@"
fi
echo "scripts/sim.sh $*"
grep -m2 -E '^\| viewers|^\|---' "$out.log"
cat "$out"
cat "$out.wall"
