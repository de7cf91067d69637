#!/usr/bin/env bash
# Checks that the README's two commands need nothing the project does not install (issue 16,
# item 1): in a private mount namespace where Linux-PAM's development files are hidden, as on
# a fresh Debian machine (runtime libpam.so.0 present; no libpam0g-dev: no headers in
# /usr/include/security, no libpam.so / libpam.a for `-lpam`, no pam.pc), it
#   1. makes sure the hiding works: `cc ... -lpam` must fail to link;
#   2. builds what the README's test command builds (`cargo test --workspace --no-run`);
#   3. runs the README's first command, scripts/demo.sh (release build, local server, jscp
#      copy, cmp), with JETSTREAM_DEMO_SIZE (default here 64M; the README's run makes 1 GiB).
# Fails if any step fails. Needs root (mount namespaces) and util-linux's unshare.
#
# Target dir: the workspace's own (CARGO_TARGET_DIR, else target/), so that nothing is built
# twice in CI: the release binaries `jetstream` and `jscp` are deleted first, so they are
# always linked here, inside the namespace. (In CI this step comes before the tests, so the
# test binaries are linked here for the first time too; the test step then reuses them.)
# Usage: scripts/bare-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${JETSTREAM_BARE_INNER:-}" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then
    echo "bare-check: needs root and unshare (util-linux) for a private mount namespace" >&2
    exit 1
  fi
  # --propagation private: nothing mounted in there shows outside, and it all goes away when
  # the script ends.
  exec unshare -m --propagation private env JETSTREAM_BARE_INNER=1 bash "$0" "$@"
fi

SECONDS=0
step() { echo "== bare-check: $* (${SECONDS}s)"; }

# The files of Debian's libpam0g-dev: dpkg's list where it is installed, else the known
# names (for a machine where they came some other way).
MULTIARCH=$(cc -print-multiarch 2>/dev/null || true)
hide=()
if dpkg -L libpam0g-dev >/dev/null 2>&1; then
  while read -r f; do
    [ -f "$f" ] || [ -L "$f" ] || continue
    case "$f" in /usr/share/*) continue ;; esac
    hide+=("$f")
  done < <(dpkg -L libpam0g-dev)
fi
for dir in /usr/lib/$MULTIARCH /usr/lib /usr/lib64 /usr/local/lib; do
  for name in libpam.so libpam.a libpam_misc.so libpam_misc.a libpamc.so libpamc.a \
      pkgconfig/pam.pc pkgconfig/pam_misc.pc pkgconfig/pamc.pc; do
    { [ -e "$dir/$name" ] || [ -L "$dir/$name" ]; } && hide+=("$dir/$name")
  done
done

step "hiding the PAM development files"
SCRATCH=$(mktemp -d /tmp/jetstream-bare.XXXX)
# The mounts go with the namespace; the directory they hang on is the host's.
trap 'umount -l "$SCRATCH" 2>/dev/null; rmdir "$SCRATCH" 2>/dev/null || true' EXIT
mount -t tmpfs jetstream-bare "$SCRATCH"
# Headers: an empty directory over /usr/include/security (the package's alone).
for inc in /usr/include/security /usr/local/include/security; do
  [ -d "$inc" ] && mount -t tmpfs jetstream-bare "$inc"
done
# Libraries and .pc files share their directories with everything else: an overlay whose
# upper layer holds a whiteout (a 0:0 character device) for each hidden name. Each directory
# gets its own overlay, parents first.
declare -A by_dir=()
while read -r f; do
  case "$f" in ''|/usr/include/*|/usr/local/include/*) continue ;; esac
  by_dir[$(dirname "$f")]+="$(basename "$f")"$'\n'
done < <(printf '%s\n' "${hide[@]}" | sort -u)
n=0
while read -r dir; do
  [ -n "$dir" ] || continue
  n=$((n + 1))
  mkdir -p "$SCRATCH/$n/up" "$SCRATCH/$n/work"
  while read -r name; do
    [ -n "$name" ] && mknod "$SCRATCH/$n/up/$name" c 0 0
  done <<<"${by_dir[$dir]}"
  mount -t overlay jetstream-bare \
    -o "lowerdir=$dir,upperdir=$SCRATCH/$n/up,workdir=$SCRATCH/$n/work" "$dir"
done < <(printf '%s\n' "${!by_dir[@]}" | sort -u)

# The hiding must work, and the runtime library must still be there (it is on every Debian
# machine: libpam0g is part of the base system).
echo 'int main(void) { return 0; }' >"$SCRATCH/t.c"
if cc "$SCRATCH/t.c" -lpam -o "$SCRATCH/t" 2>"$SCRATCH/cc.err"; then
  echo "bare-check: -lpam still links: the PAM development files are not hidden" >&2
  exit 1
fi
echo "   cc -lpam now fails: $(grep -m1 -e '-lpam' "$SCRATCH/cc.err" || head -1 "$SCRATCH/cc.err")"
if [ -e /usr/include/security/pam_appl.h ]; then
  echo "bare-check: pam_appl.h is still visible" >&2
  exit 1
fi
ldconfig -p | grep 'libpam\.so\.0 ' >/dev/null || echo "   note: libpam.so.0 (the runtime) is missing too"

TARGET=${CARGO_TARGET_DIR:-target}
step "cargo test --workspace --no-run (builds what the README's test command builds)"
if ! cargo test --workspace --no-run >"$SCRATCH/build.log" 2>&1; then
  grep -E -A15 '^error' "$SCRATCH/build.log" | head -80 >&2
  exit 1
fi
grep -E '^ *Finished' "$SCRATCH/build.log" || true

step "scripts/demo.sh (the README's first command; release build linked here)"
# Cargo copies a binary out of deps/ (a hard link) when only the copy is missing, so both go:
# cargo then links them again, here.
rm -f "$TARGET/release/jetstream" "$TARGET/release/jscp" \
  "$TARGET"/release/deps/jetstream-* "$TARGET"/release/deps/jscp-*
JETSTREAM_DEMO_SIZE=${JETSTREAM_DEMO_SIZE:-64M} scripts/demo.sh

step "passed: both README commands build and the demo runs without PAM development files"
