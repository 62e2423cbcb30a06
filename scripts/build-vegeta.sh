#!/usr/bin/env bash
# Builds vegeta (constant-rate HTTP load, for latency at a fixed rate; wrk only saturates), cached by version.
# Prints the path of the binary on stdout.
set -euo pipefail
cache=${OTEL_MONITOR_CACHE:-$HOME/.cache/otel-monitor}
version=v12.12.0
out=$cache/vegeta-$version
if [ -x "$out/vegeta" ]; then echo "$out/vegeta"; exit 0; fi
export GOPATH=${GOPATH:-$cache/gopath} GOBIN=$out.tmp
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
echo "building vegeta $version" >&2
(cd "$out.tmp" && go install "github.com/tsenart/vegeta/v12@$version" >&2)
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out/vegeta"
