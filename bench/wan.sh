#!/usr/bin/env bash
# The WAN benchmark: our engine (through jscp and a real `jetstream server`) against TCP CUBIC,
# TCP BBR (iperf3) and scp, through the project's userspace link emulator (bench/linkem) between
# two network namespaces it creates. Prints a table per row; raw results go to
# ${OUT:-/tmp/wan-results.jsonl}. Everything stays inside the namespaces jsw-a and jsw-b.
#
# Usage: bench/wan.sh [--quick] [--rows emulator,grid,small,tiny,fair] [--rates 100,500,1000]
#                     [--rtts 2,20,100,200,300] [--losses 0,0.1,1,3,5] [--size-mib 256]
#                     [--fast-size-mib 1024] [--tcp-seconds 20] [--no-scp] [--tcp-buffers tuned|defaults]
# Needs root (namespaces, a system user, sshd). The full grid takes about an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/wan.sh: run it as root (network namespaces, a system user, sshd)" >&2
  exit 1
fi

need=()
command -v iperf3 >/dev/null || need+=(iperf3)
command -v ping >/dev/null || need+=(iputils-ping)
[ -x /usr/bin/time ] || need+=(time)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v scp >/dev/null || need+=(openssh-client)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
  echo "installing ${need[*]}..."
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release -q -p jetstream-server -p jetstream-cli -p jetstream-linkem
BIN_DIR=$(realpath "${CARGO_TARGET_DIR:-target}/release")
LINKEM="$BIN_DIR/linkem"

NS=${WAN_NAME:-jsw}
WORK=$(mktemp -d /dev/shm/jswan.XXXX)
# The server writes into the user's sandbox below this directory with the user's rights: the
# user must be able to traverse it (mktemp makes it 0700).
chmod 755 "$WORK"
SSHD_PID=""; USER_MADE=""; PAM_MADE=""
BENCH_USER="jswan$$"
ALLOWED_CC=""
cleanup() {
  if [ -n "$ALLOWED_CC" ]; then echo "$ALLOWED_CC" > /proc/sys/net/ipv4/tcp_allowed_congestion_control; fi
  if [ -n "$SSHD_PID" ]; then kill "$SSHD_PID" 2>/dev/null || true; wait "$SSHD_PID" 2>/dev/null || true; fi
  "$LINKEM" down --name "$NS" 2>/dev/null || true
  if [ -n "$USER_MADE" ]; then userdel "$BENCH_USER" 2>/dev/null || true; fi
  if [ -n "$PAM_MADE" ]; then rm -f /etc/pam.d/jetstream; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$LINKEM" down --name "$NS" 2>/dev/null || true
ip netns add "$NS-a"
ip netns add "$NS-b"
ip -n "$NS-b" link set lo up
# TCP peers (scp) use Debian's default congestion control, CUBIC, unless iperf3 picks one
# (-C): this host's own default may differ and namespaces inherit it. A namespace may only
# default to an "allowed" algorithm, so CUBIC is allowed for the run (restored on exit).
ALLOWED_CC=$(cat /proc/sys/net/ipv4/tcp_allowed_congestion_control)
case " $ALLOWED_CC " in
  *" cubic "*) ;;
  *) echo "$ALLOWED_CC cubic" > /proc/sys/net/ipv4/tcp_allowed_congestion_control ;;
esac
for side in a b; do ip netns exec "$NS-$side" sysctl -qw net.ipv4.tcp_congestion_control=cubic; done

if [ ! -e /etc/pam.d/jetstream ]; then
  install -m 644 packaging/pam.d/jetstream /etc/pam.d/jetstream
  PAM_MADE=1
fi
useradd -M -s /usr/sbin/nologin "$BENCH_USER"
USER_MADE=1
PASSWORD=$(head -c 18 /dev/urandom | base64)
echo "$BENCH_USER:$PASSWORD" | chpasswd

# shellcheck source=bench/lib/sshd.sh
. bench/lib/sshd.sh
start_sshd "$WORK/ssh" "$NS-b"

export WAN_BIN_DIR="$BIN_DIR" WAN_NS="$NS" WAN_WORK="$WORK" WAN_USER="$BENCH_USER" \
  WAN_PASSWORD="$PASSWORD" WAN_SSH_KEY="$SSH_KEY"
python3 bench/lib/wan.py "$@"
