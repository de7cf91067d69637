#!/usr/bin/env bash
# jscp against scp and rsync (over ssh) on loopback, measured in the same run, reported as
# ratios. Two cases, everything in tmpfs (/dev/shm) so the tools are measured, not the disk:
#   (a) one file of SIZE_MIB MiB of random data;
#   (b) FILES files of 16 KiB each (in directories of 100), copied recursively.
# jscp talks to a `jetstream server` started here (loopback only, sandboxed in tmpfs) as a
# throwaway system user; scp and rsync talk to a throwaway sshd on 127.0.0.1:2299 as root.
# Each copy is timed 3 times (fresh target each time, verified, then removed); the median is
# reported. Needs root: it creates a user, may install a PAM service and starts sshd.
# Usage: bench/jscp.sh [SIZE_MIB=1024] [FILES=5000]
set -euo pipefail
shopt -s inherit_errexit # a failing copy inside $(...) stops the run too
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}
FILES=${2:-5000}
RUNS=3
FILE_KIB=16
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/jscp.sh: run it as root (it creates a system user, installs a PAM service and starts sshd)" >&2
  exit 1
fi

# --- peers: install what is missing (like bench/loopback.sh)
need=()
[ -x /usr/bin/time ] || need+=(time)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v scp >/dev/null || need+=(openssh-client)
command -v rsync >/dev/null || need+=(rsync)
if ((${#need[@]})); then
  echo "installing ${need[*]}..."
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- release binaries of the server and of jscp
cargo build --release -q -p jetstream-server -p jetstream-cli
BIN_DIR=${CARGO_TARGET_DIR:-target}/release
JETSTREAM=$(realpath "$BIN_DIR/jetstream")
JSCP=$(realpath "$BIN_DIR/jscp")

# --- everything below is undone by cleanup(), whatever happens
WORK=$(mktemp -d /dev/shm/jsbench.XXXX)
# The server writes into the user's sandbox below this directory with the user's rights: the
# user must be able to traverse it (mktemp makes it 0700).
chmod 755 "$WORK"
STATE=$(mktemp -d /tmp/jsbench-state.XXXX)
BENCH_USER="jsbench$$"
USER_MADE=""; PAM_MADE=""; SERVER_PID=""; SSHD_PID=""
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -s "$STATE/server.log" ]; then
    printf "\n--- last lines of the jetstream server log:\n" >&2
    tail -n 20 "$STATE/server.log" >&2 || true
  fi
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "$SSHD_PID" ]; then kill "$SSHD_PID" 2>/dev/null || true; wait "$SSHD_PID" 2>/dev/null || true; fi
  if [ -n "$USER_MADE" ]; then userdel "$BENCH_USER" 2>/dev/null || true; fi
  if [ -n "$PAM_MADE" ]; then rm -f /etc/pam.d/jetstream; fi
  rm -rf "$WORK" "$STATE"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mbs() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }
# How many times faster jscp is: other tool's seconds / jscp's seconds.
ratio() { awk -v other="$1" -v jscp="$2" 'BEGIN { printf "%.2f", other / jscp }'; }

# A TCP and UDP port nobody listens on (checked in /proc/net, no extra tool needed).
free_port() {
  local p hex
  while :; do
    p=$((20000 + RANDOM % 40000))
    hex=$(printf ':%04X ' "$p")
    if ! cat /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null | grep -q "$hex"; then
      echo "$p"
      return
    fi
  done
}

# The machine's load before the runs: the figures mean little if something else is busy.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- test data
echo "generating ${SIZE_MIB} MiB of random data and ${FILES} files of ${FILE_KIB} KiB in tmpfs..."
head -c "${SIZE_MIB}M" /dev/urandom > "$WORK/big.bin"
BIG_BYTES=$((SIZE_MIB * 1024 * 1024))
mkdir "$WORK/tree"
left=$FILES; d=0
while ((left > 0)); do
  n=$((left < 100 ? left : 100))
  mkdir "$WORK/tree/d$d"
  head -c $((n * FILE_KIB * 1024)) /dev/urandom | split -b "${FILE_KIB}K" -a 3 -d - "$WORK/tree/d$d/f"
  left=$((left - n)); d=$((d + 1))
done
TREE_BYTES=$((FILES * FILE_KIB * 1024))

# --- the jetstream server: loopback only, as a throwaway user sandboxed in tmpfs
if [ ! -e /etc/pam.d/jetstream ]; then
  install -m 644 packaging/pam.d/jetstream /etc/pam.d/jetstream
  PAM_MADE=1
fi
useradd -M -s /usr/sbin/nologin "$BENCH_USER"
USER_MADE=1
PASSWORD=$(head -c 18 /dev/urandom | base64)
echo "$BENCH_USER:$PASSWORD" | chpasswd
API_PORT=$(free_port)
RECV_PORT=$(free_port)
while [ "$RECV_PORT" = "$API_PORT" ]; do RECV_PORT=$(free_port); done
SANDBOX="$WORK/sandbox"
"$JETSTREAM" server --api-host 127.0.0.1 --recv-host 127.0.0.1 \
  --api-port "$API_PORT" --recv-port "$RECV_PORT" \
  --persistent-state-dir "$STATE/state" --sandbox-dir "$SANDBOX/%u" \
  --log "$STATE/server.log" &
SERVER_PID=$!
export JETSTREAM_KNOWN_HOSTS="$STATE/known_hosts"
for _ in $(seq 100); do
  if "$JETSTREAM" api --host 127.0.0.1 --api-control-port "$API_PORT" --accept-new-host echo >/dev/null 2>&1; then
    break
  fi
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "jetstream server exited at start" >&2; exit 1; }
  sleep 0.1
done
"$JETSTREAM" api --host 127.0.0.1 --api-control-port "$API_PORT" --accept-new-host echo >/dev/null
DEST_ROOT="$SANDBOX/$BENCH_USER" # what the server maps its "/" to for this user

# --- the throwaway sshd (as in bench/loopback.sh), for scp and rsync
# shellcheck source=bench/lib/sshd.sh
. bench/lib/sshd.sh
SSHDIR="$WORK/ssh"
start_sshd "$SSHDIR"
SSH_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -i "$SSHDIR/user")
SSH_CMD="ssh -p 2299 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -i $SSHDIR/user"
# The cipher ssh negotiates with default settings (scp and rsync use the same).
SSH_CIPHER=$(ssh -v -p 2299 "${SSH_OPTS[@]}" -o BatchMode=yes root@127.0.0.1 true 2>&1 |
  sed -n 's/.*kex: client->server cipher: \([^ ]*\).*/\1/p' | head -n 1)
if grep -qw aes /proc/cpuinfo; then JSCP_CIPHER=aes-256-gcm; else JSCP_CIPHER=chacha20-poly1305; fi

# --- one timed copy per tool; each prints its seconds, checks the copy and removes it
# $1 = case (big|tree), $2 = run number (fresh target directory each run)
run_jscp() {
  local t0 t1 dst="/jscp$2"
  local -a src=("$WORK/big.bin")
  [ "$1" = tree ] && src=(-r "$WORK/tree")
  t0=$(now)
  JETSTREAM_API_PASSWORD=$PASSWORD /usr/bin/time -f "%M" -o "$WORK/rss.$1" \
    "$JSCP" -q -P "$API_PORT" --accept-new-host "${src[@]}" "$BENCH_USER@127.0.0.1:$dst/"
  t1=$(now)
  check "$1" "$DEST_ROOT$dst"
  elapsed "$t0" "$t1"
}
run_scp() {
  local t0 t1 dst="$WORK/scp$2"
  local -a src=("$WORK/big.bin")
  [ "$1" = tree ] && src=(-r "$WORK/tree")
  mkdir "$dst"
  t0=$(now)
  scp -q -P 2299 "${SSH_OPTS[@]}" "${src[@]}" "root@127.0.0.1:$dst/"
  t1=$(now)
  check "$1" "$dst"
  elapsed "$t0" "$t1"
}
run_rsync() {
  local t0 t1 dst="$WORK/rsync$2"
  local from="$WORK/big.bin"
  [ "$1" = tree ] && from="$WORK/tree"
  mkdir "$dst"
  t0=$(now)
  rsync -a -e "$SSH_CMD" "$from" "root@127.0.0.1:$dst/"
  t1=$(now)
  check "$1" "$dst"
  elapsed "$t0" "$t1"
}
# Verifies a copy byte for byte (aborting the whole run on a mismatch), then removes it.
check() { # $1 = case, $2 = the target directory
  if [ "$1" = big ]; then
    cmp -s "$WORK/big.bin" "$2/big.bin" || { echo "MISMATCH: $2/big.bin" >&2; exit 1; }
  else
    diff -r -q "$WORK/tree" "$2/tree" >&2 || { echo "MISMATCH: $2/tree" >&2; exit 1; }
  fi
  rm -rf "$2"
}

# --- the runs: the three tools interleaved, so a slow moment of the machine hits all of them
declare -A T
for c in big tree; do
  for r in $(seq "$RUNS"); do
    for tool in jscp scp rsync; do
      printf '\r%-40s' "$c: $tool run $r/$RUNS" >&2
      secs=$("run_$tool" "$c" "$r")
      T[$tool.$c]+="$secs "
    done
  done
done
printf '\r%-40s\r' '' >&2

# --- report
BIG_LABEL="${SIZE_MIB} MiB"
((SIZE_MIB % 1024 == 0)) && BIG_LABEL="$((SIZE_MIB / 1024)) GiB"
TREE_LABEL="${FILES} x ${FILE_KIB} KiB"
label() { if [ "$1" = big ]; then echo "$BIG_LABEL"; else echo "$TREE_LABEL"; fi; }
bytes_of() { if [ "$1" = big ]; then echo "$BIG_BYTES"; else echo "$TREE_BYTES"; fi; }
declare -A MED
for c in big tree; do
  for tool in jscp scp rsync; do
    # shellcheck disable=SC2086 # the list of run times is meant to split
    MED[$tool.$c]=$(median ${T[$tool.$c]})
  done
done

echo
echo "jscp vs scp vs rsync on loopback, tmpfs to tmpfs, median of $RUNS runs"
echo "machine: $(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC'), load average before/after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)"
echo "jscp $("$JSCP" --version | awk '{ print $2 }') (${JSCP_CIPHER}, BLAKE3-verified); $(ssh -V 2>&1 | cut -d, -f1) (cipher ${SSH_CIPHER:-unknown}; scp uses SFTP); $(rsync --version | head -n 1 | awk '{ print $1, $3 }') over that ssh"
echo
printf "%-6s %-16s %9s %10s %10s %12s   %s\n" tool case seconds MB/s jscp/scp jscp/rsync "runs (s)"
for c in big tree; do
  for tool in jscp scp rsync; do
    s=${MED[$tool.$c]}
    if [ "$tool" = jscp ]; then
      rs=$(ratio "${MED[scp.$c]}" "$s"); rr=$(ratio "${MED[rsync.$c]}" "$s")
    else
      rs=-; rr=-
    fi
    printf "%-6s %-16s %9s %10s %10s %12s   %s\n" "$tool" "$(label "$c")" "$s" \
      "$(mbs "$(bytes_of "$c")" "$s")" "$rs" "$rr" "${T[$tool.$c]% }"
  done
done
echo "(MB/s = 10^6 bytes of file data per second; ratios > 1 mean jscp is faster)"
echo "jscp client max RSS: $(tail -n 1 "$WORK/rss.big") KB ($BIG_LABEL), $(tail -n 1 "$WORK/rss.tree") KB ($TREE_LABEL)"
echo
for c in big tree; do
  printf "jscp vs scp (%s): %sx  jscp vs rsync: %sx\n" "$(label "$c")" \
    "$(ratio "${MED[scp.$c]}" "${MED[jscp.$c]}")" "$(ratio "${MED[rsync.$c]}" "${MED[jscp.$c]}")"
done
