#!/usr/bin/env bash
# Builds Jaeger v2 (memory storage, query APIs on loopback) from its Go module, cached by its inputs.
# Prints the path of the binary on stdout; everything else goes to stderr.
set -euo pipefail
cache=${OTEL_MONITOR_CACHE:-$HOME/.cache/otel-monitor}
# v1.76.0 is the same code as Jaeger v2.13.0, the last tag the Go module proxy can serve.
jaeger_version=v1.76.0
key=$( (cat "$0"; go version) | sha256sum | cut -c1-16)
out=$cache/jaeger-$key
bin=$out/jaeger
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
# One build per key at a time: a second caller (a parallel test run) waits for it instead of wiping its work dir.
mkdir -p "$cache"
exec 9>"$out.lock"
flock 9
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
export GOPATH=${GOPATH:-$cache/gopath} GOFLAGS=-mod=mod
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
cd "$out.tmp"
echo "building Jaeger $jaeger_version in $out (several minutes on a cold cache)" >&2
go mod init otel-monitor/jaeger-build >&2
# Jaeger's own go.mod replaces sarama; a module that depends on it must repeat that replace.
go mod edit -replace github.com/Shopify/sarama=github.com/Shopify/sarama@v1.33.0
go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$jaeger_version" >&2
go build -o jaeger github.com/jaegertracing/jaeger/cmd/jaeger >&2
cd / && rm -rf "$out" && mv "$out.tmp" "$out"
echo "$bin"
