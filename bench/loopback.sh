#!/usr/bin/env bash
# Loopback throughput of the engine (encrypted + verified) against iperf3 TCP and scp, measured
# in the same run, reported as ratios. Two destinations:
#   tmpfs (/dev/shm): the engine's own speed;
#   disk (/tmp by default): until the data is durable (the engine fdatasyncs every file before
#   calling it complete; scp gets a `sync` inside its timing for fairness).
# Usage: bench/loopback.sh [SIZE_MIB=2048] [DISK_DIR=/tmp]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-2048}
DISK_DIR=${2:-/tmp}
export DEBIAN_FRONTEND=noninteractive

need=()
command -v iperf3 >/dev/null || need+=(iperf3)
[ -x /usr/bin/time ] || need+=(time)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v scp >/dev/null || need+=(openssh-client)
if ((${#need[@]})); then apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; fi

cargo build --release --example loopback_copy -q
BIN=${CARGO_TARGET_DIR:-target}/release/examples/loopback_copy

WORK=$(mktemp -d /dev/shm/jsbench.XXXX)
DISK=$(mktemp -d "$DISK_DIR/jsbench.XXXX")
SSHD_PID=""; IPERF_PID=""
cleanup() {
  [ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null || true
  [ -n "$IPERF_PID" ] && kill "$IPERF_PID" 2>/dev/null || true
  rm -rf "$WORK" "$DISK"
}
trap cleanup EXIT

echo "generating ${SIZE_MIB} MiB of random data in tmpfs..."
head -c "${SIZE_MIB}M" /dev/urandom > "$WORK/src.bin"
BYTES=$((SIZE_MIB * 1024 * 1024))

rate() { awk -v b="$BYTES" -v s="$1" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# --- the engine
engine_run() { # $1 = destination dir; also records max RSS (both engines, one process)
  rm -rf "$1/dst"
  local t0 t1
  t0=$(now); /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" "$WORK/src.bin" "$1/dst" >/dev/null 2>"$WORK/engine.log"; t1=$(now)
  RSS_KB=$(tail -1 "$WORK/rss")
  cmp -s "$WORK/src.bin" "$1/dst/src.bin" || { echo "MISMATCH"; exit 1; }
  elapsed "$t0" "$t1"
}
engine_run "$WORK" >"$WORK/t"; E_TMPFS=$(cat "$WORK/t"); RSS_TMPFS=$RSS_KB
engine_run "$DISK" >"$WORK/t"; E_DISK=$(cat "$WORK/t"); RSS_DISK=$RSS_KB

# Datagrams per sendmsg (GSO batching), when perf is available.
BATCH=""
if command -v perf >/dev/null && perf stat -e syscalls:sys_enter_sendmsg true >/dev/null 2>&1; then
  rm -rf "$WORK/dst"
  CALLS=$(perf stat -x, -e syscalls:sys_enter_sendmsg "$BIN" "$WORK/src.bin" "$WORK/dst" 2>&1 >/dev/null \
    | awk -F, '/sys_enter_sendmsg/ { print $1 }')
  DGRAMS=$(awk '/datagrams sent/ { print $4 }' "$WORK/engine.log")
  [ -n "$CALLS" ] && [ -n "$DGRAMS" ] && BATCH=$(awk -v d="$DGRAMS" -v c="$CALLS" 'BEGIN { printf "%.1f", d / c }')
fi

# --- iperf3 TCP on loopback (memory to memory)
iperf3 -s -1 -p 5299 -B 127.0.0.1 >/dev/null 2>&1 & IPERF_PID=$!
sleep 0.5
IPERF_BPS=$(iperf3 -c 127.0.0.1 -p 5299 -n "$BYTES" -J 2>/dev/null | awk -F'[:,]' '/"bits_per_second"/ { v = $2 } END { print v }')
IPERF_MBS=$(awk -v b="$IPERF_BPS" 'BEGIN { printf "%.1f", b / 8 / 1e6 }')

# --- scp over a throwaway sshd on 127.0.0.1:2299
# shellcheck source=bench/lib/sshd.sh
. bench/lib/sshd.sh
SSHDIR="$WORK/ssh"
start_sshd "$SSHDIR"
SCP="scp -q -P 2299 -i $SSHDIR/user -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
scp_run() { # $1 = destination dir
  rm -f "$1/scp.bin"
  local t0 t1
  t0=$(now); $SCP "$WORK/src.bin" "root@127.0.0.1:$1/scp.bin"; sync; t1=$(now)
  elapsed "$t0" "$t1"
}
S_TMPFS=$(scp_run "$WORK")
S_DISK=$(scp_run "$DISK")

echo
echo "loopback, ${SIZE_MIB} MiB, $(nproc) cores, sender and receiver on the same machine"
printf "%-34s %9s %10s %16s %12s\n" "run" "seconds" "MB/s" "engine/iperf3" "engine/scp"
printf "%-34s %9s %10s\n" "iperf3 TCP (memory, no crypto)" "-" "$IPERF_MBS"
printf "%-34s %9s %10s\n" "scp -> tmpfs" "$S_TMPFS" "$(rate "$S_TMPFS")"
printf "%-34s %9s %10s\n" "scp -> disk (+sync)" "$S_DISK" "$(rate "$S_DISK")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf "%-34s %9s %10s %16s %12s\n" "engine -> tmpfs (AES-GCM+BLAKE3)" "$E_TMPFS" "$(rate "$E_TMPFS")" \
  "$(ratio "$(rate "$E_TMPFS")" "$IPERF_MBS")" "$(ratio "$S_TMPFS" "$E_TMPFS")"
printf "%-34s %9s %10s %16s %12s\n" "engine -> disk (fdatasync)" "$E_DISK" "$(rate "$E_DISK")" \
  "$(ratio "$(rate "$E_DISK")" "$IPERF_MBS")" "$(ratio "$S_DISK" "$E_DISK")"
echo "max RSS, both engines in one process: ${RSS_TMPFS} KB (tmpfs run), ${RSS_DISK} KB (disk run)"
[ -n "$BATCH" ] && echo "datagrams per sendmsg (GSO batch, both directions): $BATCH"
grep -E "socket buffers|cipher" "$WORK/engine.log" || true
