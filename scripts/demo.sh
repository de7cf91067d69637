#!/usr/bin/env bash
# The README's first command: builds, starts a local `jetstream server` whose sandbox is a
# temporary directory, and copies a file to it with `jscp` (default settings: API on TCP 8886,
# data on UDP 8886 when those ports are free), printing jscp's summary line.
# No password is needed: jscp logs in with the server's local token (<state>/local.token,
# readable only by the account running the server, i.e. you).
# Usage: scripts/demo.sh [FILE]   (default: 1 GiB of random data made in /dev/shm;
#        JETSTREAM_DEMO_SIZE=64M makes that much instead, in head -c's units: CI uses it)
# Exits non-zero unless the copy arrived identical.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p jetstream-server -p jetstream-cli
BIN=${CARGO_TARGET_DIR:-target}/release

TMP=$(mktemp -d "${TMPDIR:-/tmp}/jetstream-demo.XXXX")
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$TMP" "${MADE:-}" "${SANDBOX:-}"
}
trap cleanup EXIT

FILE=${1:-}
if [ -z "$FILE" ]; then
  SIZE=${JETSTREAM_DEMO_SIZE:-1G}
  MADE=$(mktemp "/dev/shm/jetstream-demo-$SIZE.XXXX")
  echo "making $SIZE of random data in $MADE ..."
  head -c "$SIZE" /dev/urandom > "$MADE"
  FILE=$MADE
fi

# Default ports unless something already listens there.
API_PORT=8886; RECV_PORT=8886
if (exec 3<>/dev/tcp/127.0.0.1/8886) 2>/dev/null; then
  API_PORT=18886; RECV_PORT=18886
  echo "port 8886 is busy; the demo server uses 18886"
fi

SANDBOX=/dev/shm/jetstream-demo-sandbox.$$
"$BIN/jetstream" server --api-host 127.0.0.1 --api-port "$API_PORT" --recv-port "$RECV_PORT" \
  --persistent-state-dir "$TMP/state" --sandbox-dir "$SANDBOX" --log "$TMP/server.log" &
SERVER_PID=$!
READY=""
for _ in $(seq 100); do
  [ -s "$TMP/state/local.token" ] && "$BIN/jetstream" api --api-control-port "$API_PORT" echo >/dev/null 2>&1 \
    && READY=1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$READY" ]; then
  echo "the server did not start; its log:" >&2
  cat "$TMP/server.log" >&2 || true
  exit 1
fi
# Its start-up line (and any warning, e.g. that password logins are unavailable).
grep -E ' (server: .* listening:|auth: )' "$TMP/server.log" | cut -d' ' -f2- || true

JETSTREAM_KNOWN_HOSTS="$TMP/known_hosts" "$BIN/jscp" -P "$API_PORT" \
  --token "$(cat "$TMP/state/local.token")" "$FILE" "127.0.0.1:/demo/$(basename "$FILE")"
COPY=$SANDBOX/demo/$(basename "$FILE")
if ! cmp "$FILE" "$COPY"; then
  echo "FAILED: $COPY differs from $FILE (or is missing)" >&2
  exit 1
fi
echo "verified: $COPY is identical"
