#!/usr/bin/env bash
# Runs hivecast's test suite on a fresh Debian machine: installs what is
# missing (ffmpeg for test media, libVLC for the player), checks formatting
# and vet, then runs every test with the race detector, and the libVLC player
# tests under the `vlc` build tag.
#
#   scripts/test.sh            # everything
#   SKIP_INSTALL=1 scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
dpkg -s libvlc-dev >/dev/null 2>&1 || need+=(libvlc-dev)
dpkg -s vlc-plugin-base >/dev/null 2>&1 || need+=(vlc-plugin-base)
dpkg -s pkg-config >/dev/null 2>&1 || need+=(pkg-config)
if [ "${#need[@]}" -gt 0 ] && [ -z "${SKIP_INSTALL:-}" ]; then
  echo "== installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "== go mod download"
go mod download

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt needed on:"; echo "$bad"; exit 1; fi

echo "== go vet"
go vet ./...
go vet -tags vlc ./player/...
CGO_ENABLED=0 go vet ./...

echo "== static build (CGO_ENABLED=0)"
CGO_ENABLED=0 go build -o /dev/null ./cmd/hivecast

echo "== go test -race"
go test -race -count=1 -timeout 20m $(go list ./... | grep -v '/node/sim$')

# The simulator runs whole swarms in virtual time; the race detector makes it
# several times slower without covering code the tests above do not.
echo "== go test ./node/sim (small simulated swarm)"
go test -count=1 -timeout 10m ./node/sim

echo "== go test -tags vlc (libVLC player, headless: the player, a shared file and a live stream from peers)"
go vet -tags vlc ./cmd/... ./node/live/ ./node/vod/
go test -race -count=1 -tags vlc -timeout 10m ./player/...
go test -count=1 -tags vlc -timeout 10m -run VLC ./node/live/ ./node/vod/
