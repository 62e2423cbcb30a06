#!/usr/bin/env bash
# Builds VictoriaLogs (the OTLP-native log store) from its Go module, cached by its inputs.
# Prints the path of the binary on stdout; everything else goes to stderr.
set -euo pipefail
cache=${OTEL_MONITOR_CACHE:-$HOME/.cache/otel-monitor}
victorialogs_version=v1.52.2
key=$( (cat "$0"; go version) | sha256sum | cut -c1-16)
out=$cache/victorialogs-$key
bin=$out/victoria-logs
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
# One build per key at a time: a second caller (a parallel test run) waits for it instead of wiping its work dir.
mkdir -p "$cache"
exec 9>"$out.lock"
flock 9
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
export GOPATH=${GOPATH:-$cache/gopath} GOFLAGS=-mod=mod
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
echo "building VictoriaLogs $victorialogs_version in $out (a few minutes on a cold cache)" >&2
# Pure Go build (the zstd codec without cgo), the way the project's own release binaries are made.
CGO_ENABLED=0 GOBIN="$out.tmp" go install \
    "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@$victorialogs_version" >&2
cd / && rm -rf "$out" && mv "$out.tmp" "$out"
echo "$bin"
