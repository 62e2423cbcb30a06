#!/usr/bin/env bash
# Builds an OpenTelemetry Collector distribution with OCB, cached by its inputs: collector/builder-config.yaml by
# default, or the manifest given (the collector tier's collector/agent-builder-config.yaml and
# gateway-builder-config.yaml). OCB is taken at the manifest's own release (dist.version). Prints the path of the
# binary on stdout; everything else goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${OTEL_MONITOR_CACHE:-$HOME/.cache/otel-monitor}
manifest=${1:-$root/collector/builder-config.yaml}
builder_version=v$(sed -n 's/^  version: *//p' "$manifest" | head -n1)
name=$(sed -n 's/^  name: *//p' "$manifest" | head -n1)
key=$( (cat "$manifest"; echo "$builder_version"; go version) | sha256sum | cut -c1-16)
out=$cache/collector-$key
bin=$out/build/$name
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
# One build per key at a time: a second caller (a parallel test run) waits for it instead of wiping its work dir.
mkdir -p "$cache"
exec 9>"$out.lock"
flock 9
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
export GOPATH=${GOPATH:-$cache/gopath} GOFLAGS=-mod=mod
builder=$cache/ocb-$builder_version/builder
if [ ! -x "$builder" ]; then
  echo "installing OCB $builder_version" >&2
  GOBIN=$cache/ocb-$builder_version go install "go.opentelemetry.io/collector/cmd/builder@$builder_version" >&2
fi
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
cp "$manifest" "$out.tmp/builder-config.yaml"
echo "building the collector in $out (several minutes on a cold cache)" >&2
(cd "$out.tmp" && "$builder" --config=builder-config.yaml >&2)
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$bin"
