#!/usr/bin/env bash
# Checks packaging/systemd/*.service with `systemd-analyze verify` (run by .ci/run), and fails
# on any complaint: verify itself exits 0 on unknown or misspelt settings and only prints them.
# The units start /usr/local/bin/jetstream, which verify wants to see: the built binary is put
# there in a private mount namespace (a tmpfs over /usr/local/bin, gone when this ends).
# Needs root, util-linux's unshare and systemd-analyze (package systemd).
# Usage: scripts/verify-units.sh [JETSTREAM_BINARY]   (default: the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/jetstream}
[ -x "$BIN" ] || { echo "verify-units: $BIN is missing: cargo build --release first" >&2; exit 1; }
OUT=$(unshare -m --propagation private sh -c '
  mount -t tmpfs jetstream-units /usr/local/bin && cp "$0" /usr/local/bin/jetstream &&
  exec systemd-analyze verify "$@"' "$BIN" packaging/systemd/*.service 2>&1) || {
  echo "$OUT" >&2
  exit 1
}
if [ -n "$OUT" ]; then
  echo "$OUT" >&2
  echo "verify-units: systemd-analyze verify complained (above)" >&2
  exit 1
fi
echo "verify-units: $(ls packaging/systemd/*.service | xargs -n1 basename | tr '\n' ' ')verified"
