#!/usr/bin/env bash
# Installs the Debian packages the stack runs on, only those whose programs are missing (root, or sudo).
set -euo pipefail
declare -A wanted=(
  [redis-server]=redis-server
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-blackbox-exporter]=prometheus-blackbox-exporter
  [prometheus-alertmanager]=prometheus-alertmanager
  [ffmpeg]=ffmpeg
  [jq]=jq
  [wrk]=wrk
  [chromium]=chromium
  [chromedriver]=chromium-driver
  [/usr/lib/postgresql/15/bin/postgres]=postgresql-15
)
missing=()
for program in "${!wanted[@]}"; do
  if [[ $program == /* ]]; then [ -x "$program" ] && continue; else command -v "$program" >/dev/null && continue; fi
  missing+=("${wanted[$program]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}" >&2
# No service is started: the tests and `make demo` run every server themselves, on their own ports.
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
