#!/usr/bin/env bash
# Checks the Debian package (issue 16, item 4) on this machine, as root:
#   1. builds it (packaging/build-deb.sh, from the release build) and installs it with dpkg -i;
#   2. checks what it installed: binaries, man pages, PAM service, units (disabled), the
#      commented configuration files (conffiles), the state and trigger directories' owners
#      and modes;
#   3. starts the installed server exactly as the installed jetstream.service does: its
#      ExecStart line, read from the unit file, with the unit's EnvironmentFile, working
#      directory / and the state in /var/lib/jetstream; in a private network namespace, so
#      that the default ports (8886) are free whatever else runs here;
#   4. copies a file with the installed /usr/bin/jscp twice: as root with the server's local
#      token (as scripts/demo.sh does), and as a throwaway system user with a password
#      (through the installed /etc/pam.d/jetstream); checks the bytes and the owner;
#   5. stops the server with SIGTERM (what systemctl stop sends); upgrades to a newer build of
#      the package and checks that an edited conffile and the state are kept;
#   6. purges the package and checks that nothing of it is left: no file dpkg -L listed, no /etc/jetstream,
#      /var/lib/jetstream, PAM file, unit, unit symlink or deb-systemd-helper state, and
#      dpkg no longer knows the package. The users' copies are still there.
# Cleans up on any exit (server, package, user, files). Refuses to run where a jetstream
# package, /etc/jetstream or /var/lib/jetstream already exists: it would purge them. A
# /etc/pam.d/jetstream installed by hand (.ci/run installs one for the tests) is put aside
# while the package owns that path and put back afterwards.
# Usage: scripts/deb-check.sh   (needs root, dpkg, unshare and nsenter from util-linux, ip)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0
step() { echo "== deb-check: $* (${SECONDS}s)"; }
fail() {
  echo "deb-check: FAILED: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i, a test user, a network namespace)"
for tool in dpkg dpkg-deb unshare nsenter ip useradd chpasswd; do
  command -v "$tool" >/dev/null || fail "needs $tool"
done
status=$(dpkg-query -W -f='${db:Status-Status}' jetstream 2>/dev/null || true)
if [ -n "$status" ] && [ "$status" != not-installed ]; then
  fail "a jetstream package is already on this machine (dpkg status: $status); this check installs and purges its own: remove that one first (dpkg --purge jetstream)"
fi
for path in /etc/jetstream /var/lib/jetstream /var/lib/jetstream-relay; do
  [ -e "$path" ] && fail "$path exists; purging the package would remove it: move it away first"
done

SCRATCH=$(mktemp -d /tmp/jetstream-deb-check.XXXX)
chmod 755 "$SCRATCH"
INSTALLED="" SERVER_PID="" TEST_USER="" PAM_SAVED=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null
  fi
  [ -n "$INSTALLED" ] && dpkg --purge jetstream >/dev/null 2>&1
  [ -n "$PAM_SAVED" ] && [ ! -e /etc/pam.d/jetstream ] && mv "$PAM_SAVED" /etc/pam.d/jetstream
  [ -n "$TEST_USER" ] && userdel "$TEST_USER" 2>/dev/null
  rm -rf "$SCRATCH"
  if [ "$rc" != 0 ] && [ -s "$SCRATCH.server.log" ]; then
    echo "deb-check: the server's output:" >&2
    cat "$SCRATCH.server.log" >&2
  fi
  rm -f "$SCRATCH.server.log"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# dpkg takes a lock; on a developer machine something else may hold it for a while.
dpkg_locked() {
  local out
  for _ in $(seq 120); do
    if out=$("$@" 2>&1); then
      printf '%s\n' "$out"
      return 0
    fi
    grep -q 'lock' <<<"$out" || {
      printf '%s\n' "$out" >&2
      return 1
    }
    sleep 1
  done
  printf '%s\n' "$out" >&2
  return 1
}

step "building the package (packaging/build-deb.sh)"
DEB=$(packaging/build-deb.sh "$SCRATCH/out" | tail -1)
[ -f "$DEB" ] || fail "build-deb.sh made no package"
echo "   $(basename "$DEB"): $(du -h "$DEB" | cut -f1); $(dpkg-deb -f "$DEB" Depends)"

if [ -e /etc/pam.d/jetstream ]; then
  PAM_SAVED=$SCRATCH/pam.d-jetstream.saved
  mv /etc/pam.d/jetstream "$PAM_SAVED"
fi
step "dpkg -i"
INSTALLED=1
dpkg_locked dpkg -i "$DEB" | sed 's/^/   /'
[ "$(dpkg-query -W -f='${db:Status-Abbrev}' jetstream)" = "ii " ] \
  || fail "dpkg -s jetstream: not installed: $(dpkg-query -W -f='${db:Status-Abbrev}' jetstream)"

step "installed files, owners and modes"
expect() { # PATH TYPE OWNER MODE
  [ -e "$1" ] || fail "$1 is missing"
  local got
  got=$(stat -c '%F %U:%G %a' "$1")
  [ "$got" = "$2 $3 $4" ] || fail "$1: expected $2 $3 $4, found $got"
  echo "   $4 $3 $1"
}
expect /usr/bin/jetstream "regular file" root:root 755
expect /usr/bin/jscp "regular file" root:root 755
# Minimal images (Debian's docker images) tell dpkg not to install man pages
# (path-exclude in /etc/dpkg/dpkg.cfg.d): there the package's contents are checked instead.
MAN_EXCLUDED=""
if grep -rqs '^path-exclude.*/usr/share/man' /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d; then
  MAN_EXCLUDED=1
  for page in jetstream jscp; do
    dpkg-deb -c "$DEB" | grep -q " ./usr/share/man/man1/$page.1.gz\$" \
      || fail "the package has no man page $page.1.gz"
  done
  echo "   man pages: in the package; not installed here (dpkg path-exclude)"
else
  expect /usr/share/man/man1/jetstream.1.gz "regular file" root:root 644
  expect /usr/share/man/man1/jscp.1.gz "regular file" root:root 644
fi
expect /etc/pam.d/jetstream "regular file" root:root 644
expect /etc/jetstream "directory" root:root 755
expect /etc/jetstream/jetstream.toml "regular file" root:root 644
expect /etc/jetstream/relay.toml "regular file" root:root 644
expect /lib/systemd/system/jetstream.service "regular file" root:root 644
expect /lib/systemd/system/jetstream-relay.service "regular file" root:root 644
expect /lib/systemd/system-preset/90-jetstream.preset "regular file" root:root 644
expect /var/lib/jetstream "directory" root:root 755
expect /var/lib/jetstream/state "directory" root:root 700
expect /var/lib/jetstream/triggers "directory" root:root 755
expect /usr/share/doc/jetstream/copyright "regular file" root:root 644
# The tests' ensure_pam_service() installs /etc/pam.d/jetstream when it is missing: a test
# run at the same time as this check may put its own copy there once the purge removed the
# package's. The package's copy is known by its inode and change time.
PAM_STAMP=$(stat -c '%i %z' /etc/pam.d/jetstream)
cmp -s /etc/pam.d/jetstream packaging/pam.d/jetstream || fail "/etc/pam.d/jetstream differs from packaging/pam.d/jetstream"
conffiles=$(dpkg-query -W -f='${Conffiles}\n' jetstream | awk 'NF {print $1}' | sort | tr '\n' ' ')
[ "$conffiles" = "/etc/jetstream/jetstream.toml /etc/jetstream/relay.toml /etc/pam.d/jetstream " ] \
  || fail "conffiles: $conffiles"
echo "   conffiles: $conffiles"
# The configuration files change nothing until edited: every line a comment or empty.
if grep -Hnv -e '^[[:space:]]*#' -e '^[[:space:]]*$' /etc/jetstream/*.toml; then
  fail "the installed configuration sets something (lines above)"
fi
# Disabled: no symlink anywhere under /etc/systemd, and systemctl agrees.
links=$(find /etc/systemd -name 'jetstream*' 2>/dev/null)
[ -z "$links" ] || fail "units enabled by the package: $links"
for unit in jetstream.service jetstream-relay.service; do
  state=$(systemctl is-enabled "$unit" 2>&1 || true)
  [ "$state" = disabled ] || fail "systemctl is-enabled $unit: $state"
  echo "   $unit: $state"
done
# The installed units, against the installed binary and man page (Documentation=).
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify /lib/systemd/system/jetstream.service \
    /lib/systemd/system/jetstream-relay.service 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify complained: $out"
  echo "   systemd-analyze verify: both installed units pass"
fi
# The man pages are found by name and render without warnings; jscp(1) points at jetstream(1).
[ -n "$MAN_EXCLUDED" ] || [ "$(man -w jetstream)" = /usr/share/man/man1/jetstream.1.gz ] || fail "man -w jetstream: $(man -w jetstream 2>&1)"
for page in jetstream jscp; do
  [ -n "$MAN_EXCLUDED" ] && break
  warnings=$(MANWIDTH=80 man --warnings "$page" 2>&1 >/dev/null || true)
  [ -z "$warnings" ] || fail "man $page: $warnings"
done
if [ -z "$MAN_EXCLUDED" ]; then
  man jscp 2>/dev/null | grep -q 'jetstream(1)' || fail "jscp(1) does not refer to jetstream(1)"
  echo "   man jetstream: $(man jetstream 2>/dev/null | sed -n 4p | sed 's/^ *//')"
fi

step "starting /usr/bin/jetstream as jetstream.service's ExecStart does"
UNIT=/lib/systemd/system/jetstream.service
EXEC=$(sed -n 's/^ExecStart=//p' "$UNIT")
if [ -z "$EXEC" ] || [ "$(wc -l <<<"$EXEC")" != 1 ]; then
  fail "$UNIT: expected one ExecStart line"
fi
# The unit's environment: Environment= and EnvironmentFile= (a leading - : optional).
declare -A unit_env=()
while IFS= read -r line; do
  case "$line" in
    Environment=*)
      for kv in ${line#Environment=}; do unit_env[${kv%%=*}]=${kv#*=}; done
      ;;
    EnvironmentFile=*)
      file=${line#EnvironmentFile=}
      optional=""
      [ "${file:0:1}" = - ] && optional=1 && file=${file:1}
      if [ -r "$file" ]; then
        while IFS= read -r kv; do
          case "$kv" in '' | '#'* | ';'*) continue ;; esac
          v=${kv#*=}
          v=${v#\"}
          v=${v%\"}
          unit_env[${kv%%=*}]=$v
        done <"$file"
      elif [ -z "$optional" ]; then
        fail "$UNIT needs $file"
      fi
      ;;
  esac
done <"$UNIT"
# systemd's expansion of the command line: $NAME becomes zero or more words (split at
# white space), ${NAME} one word; a variable that is not set is empty. Quotes, % specifiers
# and the ExecStart prefixes (-, @, +, !) are not used by the unit and not handled here.
argv=()
for word in $EXEC; do
  # shellcheck disable=SC2016 # the patterns are literal $ signs
  case "$word" in
    '"'* | "'"* | *%*) fail "ExecStart uses quoting or specifiers this check does not handle: $EXEC" ;;
    '$'[A-Za-z_]*) for w in ${unit_env[${word#\$}]:-}; do argv+=("$w"); done ;;
    '${'*'}') argv+=("${unit_env[${word:2:-1}]:-}") ;;
    *'$'*) fail "ExecStart: a variable inside a word is not handled: $word" ;;
    *) argv+=("$word") ;;
  esac
done
[ "${argv[0]}" = /usr/bin/jetstream ] || fail "ExecStart runs ${argv[0]}, not the packaged /usr/bin/jetstream"
echo "   ExecStart=$EXEC"
echo "   runs: ${argv[*]}"
# No WorkingDirectory=: systemd starts system services in /. Its stdout and stderr go to the
# journal; here to a file. The private network namespace has only its own loopback.
(cd / && exec unshare -n sh -c 'ip link set lo up && exec "$@"' sh "${argv[@]}" \
  </dev/null >"$SCRATCH.server.log" 2>&1) &
SERVER_PID=$!
in_ns() { nsenter -t "$SERVER_PID" -n "$@"; }
TOKEN_FILE=/var/lib/jetstream/state/local.token
deadline=$((SECONDS + 30))
until [ -s "$TOKEN_FILE" ] && in_ns /usr/bin/jetstream api echo >/dev/null 2>&1; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    wait "$SERVER_PID" && rc=0 || rc=$?
    SERVER_PID=""
    if [ "$rc" = 2 ]; then
      fail "the installed /usr/bin/jetstream rejected the unit's command line (exit 2, a usage error: an option this binary does not know?): ${argv[*]}"
    fi
    fail "the server exited with $rc at start"
  fi
  [ "$SECONDS" -lt "$deadline" ] || fail "the server did not answer within 30 s"
  sleep 0.1
done
grep -E 'listening' "$SCRATCH.server.log" | head -1 | sed 's/^/   /'

step "copying with /usr/bin/jscp: root with the local token"
head -c 16M /dev/urandom >"$SCRATCH/payload.bin"
chmod 644 "$SCRATCH/payload.bin"
mkdir "$SCRATCH/root-dst"
in_ns env JETSTREAM_KNOWN_HOSTS="$SCRATCH/known_hosts" /usr/bin/jscp --accept-new-host \
  --token "$(cat "$TOKEN_FILE")" "$SCRATCH/payload.bin" "127.0.0.1:$SCRATCH/root-dst/payload.bin" \
  | sed 's/^/   /'
cmp "$SCRATCH/payload.bin" "$SCRATCH/root-dst/payload.bin" || fail "the copy differs"
echo "   verified: $SCRATCH/root-dst/payload.bin"

step "copying with /usr/bin/jscp: a system user with a password (PAM service jetstream)"
TEST_USER=jsdeb$$
useradd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$TEST_USER"
PASSWORD=deb-check-$RANDOM$RANDOM
echo "$TEST_USER:$PASSWORD" | chpasswd
install -d -o "$TEST_USER" -m 700 "$SCRATCH/user-dst"
in_ns env JETSTREAM_KNOWN_HOSTS="$SCRATCH/known_hosts" JETSTREAM_API_PASSWORD="$PASSWORD" \
  /usr/bin/jscp "$SCRATCH/payload.bin" "$TEST_USER@127.0.0.1:$SCRATCH/user-dst/payload.bin" \
  | sed 's/^/   /'
cmp "$SCRATCH/payload.bin" "$SCRATCH/user-dst/payload.bin" || fail "the user's copy differs"
owner=$(stat -c %U "$SCRATCH/user-dst/payload.bin")
[ "$owner" = "$TEST_USER" ] || fail "the user's copy belongs to $owner, not $TEST_USER"
echo "   verified: $SCRATCH/user-dst/payload.bin, owned by $owner"
# A wrong password is refused (exit 3): the PAM service really checks.
if in_ns env JETSTREAM_KNOWN_HOSTS="$SCRATCH/known_hosts" JETSTREAM_API_PASSWORD=wrong \
  /usr/bin/jscp -q "$SCRATCH/payload.bin" "$TEST_USER@127.0.0.1:$SCRATCH/user-dst/other.bin" 2>/dev/null; then
  fail "a wrong password was accepted"
else
  rc=$?
  [ "$rc" = 3 ] || fail "a wrong password: jscp exited $rc, expected 3 (authentication failed)"
fi
echo "   a wrong password: refused (exit 3)"

step "stopping the server (SIGTERM, as systemctl stop)"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" && rc=0 || rc=$?
SERVER_PID=""
[ "$rc" = 0 ] || fail "the server exited with $rc on SIGTERM"
expect /var/lib/jetstream/state "directory" root:root 700
expect /var/lib/jetstream/state/tls/server.key "regular file" root:root 600

step "upgrade: dpkg -i of a newer version keeps the state and an edited configuration"
key_sum=$(sha256sum /var/lib/jetstream/state/tls/server.key)
echo '# edited by deb-check' >>/etc/jetstream/jetstream.toml
conf_sum=$(sha256sum /etc/jetstream/jetstream.toml)
DEB2=$(DEB_VERSION="$(dpkg-deb -f "$DEB" Version)+upgrade1" packaging/build-deb.sh "$SCRATCH/out2" | tail -1)
dpkg_locked dpkg -i "$DEB2" | sed 's/^/   /'
[ "$(dpkg-query -W -f='${Version}' jetstream)" = "$(dpkg-deb -f "$DEB2" Version)" ] || fail "the upgrade did not install"
[ "$(sha256sum /etc/jetstream/jetstream.toml)" = "$conf_sum" ] || fail "the upgrade replaced the edited jetstream.toml"
[ "$(sha256sum /var/lib/jetstream/state/tls/server.key)" = "$key_sum" ] || fail "the upgrade changed the state"
[ -z "$(find /etc/systemd -name 'jetstream*' 2>/dev/null)" ] || fail "the upgrade enabled a unit"
expect /var/lib/jetstream/state "directory" root:root 700
PAM_STAMP=$(stat -c '%i %z' /etc/pam.d/jetstream)
echo "   kept: the edited /etc/jetstream/jetstream.toml, the state (server key unchanged); units still disabled"

step "dpkg --purge"
dpkg -L jetstream | sort >"$SCRATCH/files"
dpkg_locked dpkg --purge jetstream | sed 's/^/   /'
INSTALLED=""
if dpkg -s jetstream >/dev/null 2>&1; then
  fail "dpkg -s jetstream still succeeds after the purge"
fi
left=()
while read -r path; do
  [ "$path" = /. ] && continue
  [ -e "$path" ] || [ -L "$path" ] || continue
  # A directory shared with other packages (/usr/bin, /lib/systemd/system, ...) stays.
  [ -d "$path" ] && dpkg-query -S "$path" >/dev/null 2>&1 && continue
  left+=("$path")
done <"$SCRATCH/files"
for path in /etc/jetstream /var/lib/jetstream /var/lib/jetstream-relay /etc/pam.d/jetstream \
  /lib/systemd/system/jetstream.service /lib/systemd/system/jetstream-relay.service; do
  { [ -e "$path" ] || [ -L "$path" ]; } && left+=("$path")
done
while read -r path; do left+=("$path"); done < <(
  find /etc/systemd /var/lib/systemd /var/lib/dpkg/info -name 'jetstream*' 2>/dev/null
  find /var/lib/systemd -name '*.dsh-also' -exec grep -l jetstream {} + 2>/dev/null
)
if [ -e /etc/pam.d/jetstream ] && [ "$(stat -c '%i %z' /etc/pam.d/jetstream)" != "$PAM_STAMP" ]; then
  echo "   note: /etc/pam.d/jetstream was made again after the purge by something else (a test running now?)"
  left=("${left[@]/\/etc\/pam.d\/jetstream/}")
fi
mapfile -t left < <(printf '%s\n' "${left[@]}" | sed '/^$/d' | sort -u)
((${#left[@]} == 0)) || fail "left after the purge: ${left[*]}"
echo "   nothing left of the package's $(wc -l <"$SCRATCH/files") paths"
# Users' files are theirs: the purge did not touch them.
cmp "$SCRATCH/payload.bin" "$SCRATCH/user-dst/payload.bin" || fail "the purge touched a user's file"
echo "   the users' copies are still there"

step "passed"
