#!/usr/bin/env bash
# Builds the Debian package `jetstream` (issue 16, item 4) from the release build:
#   /usr/bin/jetstream, /usr/bin/jscp            (stripped)
#   /usr/share/man/man1/jetstream.1.gz, jscp.1.gz
#   /etc/pam.d/jetstream                         (conffile)
#   /etc/jetstream/jetstream.toml, relay.toml    (conffiles, every line commented out)
#   /lib/systemd/system/jetstream.service, jetstream-relay.service (ExecStart /usr/bin/jetstream)
#   /lib/systemd/system-preset/90-jetstream.preset (both disabled)
#   /var/lib/jetstream (0755), state/ (0700), triggers/ (0755), all root:root
#   /usr/share/doc/jetstream/{copyright,changelog.gz,operations.md}
# with the maintainer scripts of packaging/debian/ (units installed disabled and never
# started by the package; purge removes the state).
#
# Made with dpkg-deb from a staged tree rather than `cargo deb`: installing cargo-deb costs a
# CI run minutes of compiling for what twenty lines of shell do (see docs/operations.md).
# Depends: what dpkg-shlibdeps finds in the binaries (libc6, libgcc-s1), plus what it cannot
# see: libpam0g (the server dlopens libpam.so.0 at run time) and libpam-modules (pam_unix,
# which /etc/pam.d/jetstream names).
#
# Usage: [DEB_VERSION=V] packaging/build-deb.sh [OUTDIR]
#        (OUTDIR default: $CARGO_TARGET_DIR or target/, + /debian; version: Cargo.toml's)
# Prints the path of the .deb on its last line. Builds the release binaries if needed
# (a no-op when they are up to date, as in CI after scripts/bare-check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${1:-$TARGET/debian}
cargo build --release -q -p jetstream-server -p jetstream-cli
BIN=$TARGET/release

# DEB_VERSION: another package version (scripts/deb-check.sh makes an "upgrade" with it).
VERSION=${DEB_VERSION:-$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)}
[ -n "$VERSION" ] || { echo "build-deb: no version in Cargo.toml [workspace.package]" >&2; exit 1; }
ARCH=$(dpkg --print-architecture)
PKG=jetstream
MAINTAINER=${DEB_MAINTAINER:-JetStream maintainers <jetstream@example.invalid>}

# dpkg-shlibdeps wants the layout of a source package: debian/control, debian/<pkg>/.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/jetstream-deb.XXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/debian"
STAGE=$WORK/debian/$PKG

install -d -m 755 "$STAGE/usr/bin" "$STAGE/usr/share/man/man1" "$STAGE/usr/share/doc/$PKG" \
  "$STAGE/etc/pam.d" "$STAGE/etc/jetstream" "$STAGE/lib/systemd/system" \
  "$STAGE/lib/systemd/system-preset" "$STAGE/DEBIAN"
for b in jetstream jscp; do
  install -m 755 "$BIN/$b" "$STAGE/usr/bin/$b"
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$STAGE/usr/bin/$b"
done
for m in jetstream jscp; do
  gzip -9n <"docs/$m.1" >"$STAGE/usr/share/man/man1/$m.1.gz"
  chmod 644 "$STAGE/usr/share/man/man1/$m.1.gz"
done
install -m 644 packaging/pam.d/jetstream "$STAGE/etc/pam.d/jetstream"
install -m 644 packaging/jetstream.toml packaging/relay.toml "$STAGE/etc/jetstream/"
install -m 644 packaging/systemd/90-jetstream.preset "$STAGE/lib/systemd/system-preset/"
# The units as they are in packaging/systemd/, for the packaged binary's path, and without
# the header that tells how to install them by hand.
for u in jetstream.service jetstream-relay.service; do
  {
    echo "# Installed by the jetstream package: enable with systemctl enable --now ${u%.service}"
    echo "# (installed disabled). Configuration: /etc/jetstream/; see jetstream(1)."
    sed -e '1,/^\[Unit\]/{/^\[Unit\]/!d}' -e 's#/usr/local/bin/jetstream#/usr/bin/jetstream#g' \
      -e 's#^\[Unit\]$#[Unit]\nDocumentation=man:jetstream(1)#' \
      "packaging/systemd/$u"
  } >"$STAGE/lib/systemd/system/$u"
  chmod 644 "$STAGE/lib/systemd/system/$u"
  grep -q '^ExecStart=/usr/bin/jetstream ' "$STAGE/lib/systemd/system/$u" \
    || { echo "build-deb: $u: ExecStart does not run /usr/bin/jetstream" >&2; exit 1; }
done
# State (0700: keys, tokens, destinations' credentials) and trigger scripts. The package
# owns the directories; what the server writes in them is removed on purge (postrm).
install -d -m 755 "$STAGE/var/lib/jetstream" "$STAGE/var/lib/jetstream/triggers"
install -d -m 700 "$STAGE/var/lib/jetstream/state"

install -m 644 docs/operations.md "$STAGE/usr/share/doc/$PKG/operations.md"
cat >"$STAGE/usr/share/doc/$PKG/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: jetstream
Comment: An open-source re-implementation of the JetStream UDP file-transfer server.

Files: *
Copyright: 2026 The JetStream re-implementation authors
License: MIT or Apache-2.0
 On Debian systems the Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.
 .
 Permission is hereby granted, free of charge, to any person obtaining a copy of this
 software and associated documentation files (the "Software"), to deal in the Software
 without restriction, including without limitation the rights to use, copy, modify, merge,
 publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
 to whom the Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or
 substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
 INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
 PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
 FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
 OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
 DEALINGS IN THE SOFTWARE.
EOF
chmod 644 "$STAGE/usr/share/doc/$PKG/copyright"
# The date of the last commit, so that the same tree gives the same package.
DATE=$(git log -1 --format=%aD 2>/dev/null || date -R)
printf '%s (%s) unstable; urgency=medium\n\n  * Built from the source tree by packaging/build-deb.sh.\n\n -- %s  %s\n' \
  "$PKG" "$VERSION" "$MAINTAINER" "$DATE" | gzip -9n >"$STAGE/usr/share/doc/$PKG/changelog.gz"
chmod 644 "$STAGE/usr/share/doc/$PKG/changelog.gz"
# The state directory is 0700 on purpose (keys, tokens, credentials).
install -d -m 755 "$STAGE/usr/share/lintian/overrides"
echo "$PKG: non-standard-dir-perm 0700 != 0755 [var/lib/jetstream/state/]" \
  >"$STAGE/usr/share/lintian/overrides/$PKG"
chmod 644 "$STAGE/usr/share/lintian/overrides/$PKG"

for s in postinst prerm postrm; do
  install -m 755 "packaging/debian/$s" "$STAGE/DEBIAN/$s"
done
# Every file under /etc is a conffile (what debhelper does): dpkg keeps an administrator's
# changes on upgrade, asks before replacing them, and removes them only on purge.
(cd "$STAGE" && find etc -type f | sort | sed 's#^#/#') >"$STAGE/DEBIAN/conffiles"
chmod 644 "$STAGE/DEBIAN/conffiles"

printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$PKG" "$PKG" >"$WORK/debian/control"
SHLIBS=$(cd "$WORK" && dpkg-shlibdeps -O "debian/$PKG/usr/bin/jetstream" "debian/$PKG/usr/bin/jscp" \
  2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$SHLIBS" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
INSTALLED_SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
cat >"$STAGE/DEBIAN/control" <<EOF
Package: $PKG
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $INSTALLED_SIZE
Depends: $SHLIBS, libpam0g, libpam-modules
Section: net
Priority: optional
Description: UDP-accelerated, encrypted file transfer server and client
 JetStream moves files and trees between servers over long, lossy links at the
 link's rate: every datagram is encrypted (AES-256-GCM or ChaCha20-Poly1305),
 every file is verified end to end with BLAKE3 before it appears at its final
 path, and an interrupted transfer resumes with only what is missing.
 .
 This package holds the server (jetstream server, with its JSON control API,
 PAM logins and per-user sandboxes), the API client (jetstream api), the DMZ
 relay (jetstream relay_server), the scp-like client jscp, and their systemd
 units, installed disabled.
EOF
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
  | xargs -0 md5sum) >"$STAGE/DEBIAN/md5sums"
chmod 644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/md5sums"

mkdir -p "$OUT"
DEB=$OUT/${PKG}_${VERSION}_${ARCH}.deb
# --root-owner-group: every file root:root without fakeroot.
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
