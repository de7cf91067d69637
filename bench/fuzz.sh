#!/usr/bin/env bash
# The manual fuzz job: builds every cargo-fuzz target in fuzz/ and runs each for a fixed budget,
# starting from a copy of its seed corpus (fuzz/corpus/<target>/, which is not modified), then
# prints runs, speed and coverage per target. A crash stops that target, prints the log tail
# and the artifact path (fuzz/artifacts/<target>/), and makes the script exit 1.
# Needs a nightly toolchain; installs cargo-fuzz if missing.
# Usage: bench/fuzz.sh [SECONDS_PER_TARGET=600] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS=${1:-600}
shift || true

rustup toolchain list 2>/dev/null | grep -q nightly \
  || { echo "bench/fuzz.sh: needs a nightly toolchain (rustup toolchain install nightly)" >&2; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked -q

cargo +nightly fuzz build
if (($#)); then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi

WORK=$(mktemp -d /tmp/jetstream-fuzz.XXXX)
trap 'rm -rf "$WORK"' EXIT
rows=()
fail=0
for t in "${targets[@]}"; do
  mkdir -p "$WORK/$t"
  [ -d "corpus/$t" ] && cp -r "corpus/$t/." "$WORK/$t/"
  log="$WORK/$t.log"
  echo "== $t: ${SECS} s"
  if cargo +nightly fuzz run "$t" "$WORK/$t" -- -max_total_time="$SECS" -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=FAILED; fail=1
    tail -40 "$log"
    ls -1 "artifacts/$t" 2>/dev/null | sed "s|^|  artifact: fuzz/artifacts/$t/|" || true
  fi
  stat() { grep -oE "^stat::$1: *[0-9]+" "$log" | grep -oE '[0-9]+$' || echo "?"; }
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | cut -d' ' -f2 || true)
  ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | cut -d' ' -f2 || true)
  corp=$(grep -oE 'corp: [0-9]+' <<<"$last" | cut -d' ' -f2 || true)
  rows+=("$(printf '%-18s %-7s %12s %9s %7s %7s %7s %8s' "$t" "$status" \
    "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" "${cov:-?}" "${ft:-?}" \
    "${corp:-?}" "$(stat peak_rss_mb)")")
done

echo
printf '%-18s %-7s %12s %9s %7s %7s %7s %8s\n' target status runs exec/s cov ft corpus rss_mb
printf '%s\n' "${rows[@]}"
exit "$fail"
