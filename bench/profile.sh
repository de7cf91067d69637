#!/usr/bin/env bash
# Where the CPU goes in a loopback copy: perf samples grouped by thread and by symbol.
# Usage: bench/profile.sh [SIZE_MIB=1024]   (needs perf: apt-get install linux-perf)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null; }
cargo build --release --example loopback_copy -q
BIN=${CARGO_TARGET_DIR:-target}/release/examples/loopback_copy
WORK=$(mktemp -d /dev/shm/jsprof.XXXX)
trap 'rm -rf "$WORK"' EXIT
head -c "${SIZE_MIB}M" /dev/urandom > "$WORK/src.bin"
perf record -q -F 999 -g -o "$WORK/perf.data" "$BIN" "$WORK/src.bin" "$WORK/dst" 2>&1 | tail -1
echo "== CPU share by thread (jetstream-engin: the two event loops and the sink worker; jetstream-reade: the reader)"
perf report -i "$WORK/perf.data" --no-children -g none --sort pid 2>/dev/null | grep '%' | head -8
echo "== top symbols"
perf report -i "$WORK/perf.data" --no-children -g none --sort symbol 2>/dev/null | grep '%' | head -30
