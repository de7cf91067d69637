#!/usr/bin/env bash
# The project's test command (README; .ci/run runs it): `cargo test --workspace`, then, as root,
# the tests that need root.
#
# Tests that need root (they create system users for PAM logins, run servers that switch to
# them, and make network and mount namespaces; docs/testing.md lists them) are marked
# `#[ignore = "needs root: ..."]`. As another user this script runs the workspace's tests once:
# they pass, and the summary counts the root tests as ignored. As root it runs them in a second
# pass (`--ignored`), so that they are seen to run. The first pass as root also catches a root
# test that lacks the mark: its guard fails it there (it was not asked for with --ignored).
#
# JETSTREAM_REQUIRE_ROOT_TESTS=1 (.ci/run sets it): the root tests must run. This script then
# refuses to run as another user, and a root test that cannot do what it needs (mount a tmpfs
# in an unprivileged container, a package .ci/run installs) fails instead of skipping.
#
# Usage: scripts/test.sh [cargo test options] [-- test binary options]
#   scripts/test.sh                                   # the whole workspace
#   scripts/test.sh -p jetstream-server --test server relay -- --test-threads 2
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_args=()
harness_args=()
after_dashes=
for arg in "$@"; do
  if [ -z "$after_dashes" ] && [ "$arg" = "--" ]; then
    after_dashes=1
  elif [ -n "$after_dashes" ]; then
    harness_args+=("$arg")
  else
    cargo_args+=("$arg")
  fi
done
# The whole workspace unless packages are named.
case " ${cargo_args[*]-} " in
  *" -p"* | *" --package"* | *" --workspace "* | *" --manifest-path"*) ;;
  *) cargo_args=(--workspace "${cargo_args[@]}") ;;
esac

required=
case "${JETSTREAM_REQUIRE_ROOT_TESTS:-}" in '' | 0) ;; *) required=1 ;; esac

if [ "$(id -u)" != 0 ]; then
  if [ -n "$required" ]; then
    echo "scripts/test.sh: JETSTREAM_REQUIRE_ROOT_TESTS is set but this is not root:" \
      "the tests that need root would not run" >&2
    exit 1
  fi
  echo "== tests (not root: the tests that need root are counted as ignored; docs/testing.md)"
  exec cargo test "${cargo_args[@]}" -- "${harness_args[@]}"
fi

echo "== tests"
cargo test "${cargo_args[@]}" -- "${harness_args[@]}"
# Ignored for other reasons, and kept out: a by-hand writer of the fuzz seed corpus, and the
# body of a child process the resume tests start themselves (both return at once when run
# like this, and would count as passed).
echo "== tests that need root (the ignored ones above)"
exec cargo test "${cargo_args[@]}" -- "${harness_args[@]}" --ignored \
  --skip proto::packet::tests::write_seed_corpus --skip resume::child_entry
