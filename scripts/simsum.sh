#!/bin/sh
# Sums a scripts/sim.sh run's per-second lines (its output, with -verbose and
# -count-dials) over the run: the dials to unconnected peers by whose they are
# (DHT, probe, subscribe, other; those the dialler's own peer bound refused
# apart), the connections the viewers opened (counted at both ends), their
# QUIC Initial and Handshake bits, their probes by purpose (of them dials) and
# their DHT provider lookups; then, per run (SIM_RUNS), the failover probes
# of each virtual second that had any. Usage: scripts/sim.sh ... 2>&1 | tee run.txt;
# scripts/simsum.sh run.txt
set -eu
awk '
/^ +t=[0-9]+s +[0-9]+ / {
	cls = "other"
	if ($0 ~ /queryPeer|classicProvide|runLookup|peerFound|dht|kad/) cls = "DHT"
	else if ($0 ~ /probe/) cls = "probe"
	else if ($0 ~ /subscribe/) cls = "subscribe"
	if ($0 ~ /refused/) refused[cls] += $2; else made[cls] += $2
	next
}
/viewers. datagrams:/ {
	if (match($0, /initial [0-9]+ pkts [0-9]+ kbit/)) { split(substr($0, RSTART, RLENGTH), a, " "); ih += a[4] }
	if (match($0, /handshake [0-9]+ pkts [0-9]+ kbit/)) { split(substr($0, RSTART, RLENGTH), a, " "); ih += a[4] }
	if (match($0, /[0-9]+ connections opened/)) { split(substr($0, RSTART, RLENGTH), a, " "); conns += a[1] }
	next
}
/viewers. probes sent/ {
	line = $0
	if (match(line, /t=[0-9]+s/)) {
		t = substr(line, RSTART + 2, RLENGTH - 3) + 0
		if (t < last) runs++
		last = t
		if (match(line, /failover [0-9]+/)) {
			split(substr(line, RSTART, RLENGTH), a, " ")
			if (a[2] > 0) byrun[runs + 0] = byrun[runs + 0] " " t ":" a[2]
		}
	}
	sub(/.*\): /, "", line)
	if (match(line, /DHT provider lookups [0-9]+ \(of them finding no new peer [0-9]+\)/)) {
		n = split(substr(line, RSTART, RLENGTH), a, " ")
		lookups += a[4]; idle += a[n] + 0
	}
	sub(/;.*/, "", line)
	n = split(line, parts, ", ")
	for (i = 1; i <= n; i++) {
		split(parts[i], a, " "); gsub(/[()]/, "", a[3])
		sent[a[1]] += a[2]; dialled[a[1]] += a[3]
	}
}
END {
	printf "dials made (refused by own bound):"
	for (k in made) printf " %s %d (%d);", k, made[k], refused[k]
	printf "\nconnections opened %d; Initial + Handshake %.0f Mbit\n", conns, ih / 1000
	printf "probes sent (dials):"
	for (k in sent) printf " %s %d (%d);", k, sent[k], dialled[k]
	printf "\nDHT provider lookups %d (finding no new peer %d)\n", lookups, idle
	for (r = 0; r <= runs; r++) printf "run %d, failover probes by second (t:n):%s\n", r + 1, byrun[r]
}' "$@"
