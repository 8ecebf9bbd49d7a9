#!/usr/bin/env bash
# .ci/mesa-backport.sh DESTDIR: a second CPU Vulkan driver for the tests, beside the system's.
#
# Debian 12's lavapipe is Mesa 22.3 (Vulkan 1.3); bookworm-backports' is Mesa 25.0 (Vulkan 1.4, three
# years of another shader compiler, a heap as large as the machine's memory). This fetches that one
# package and unpacks it into DESTDIR (nothing is installed, the system driver stays), then writes
# DESTDIR/lvp_icd.json, an ICD manifest pointing at the unpacked libvulkan_lvp.so, and prints its path:
#
#   VK_ICD_FILENAMES=$(.ci/mesa-backport.sh build/mesa25) ctest --test-dir build --output-on-failure -LE long
#
# apt runs on a configuration of its own under DESTDIR/apt (its sources list names only
# bookworm-backports, its package lists live there): the system's sources, lists and preferences are not
# touched, so nothing on the system can be upgraded from backports; the backports archive keeps its
# default priority of 100 there too (pinned explicitly), and only this one package is downloaded, at
# this exact version. Idempotent: a DESTDIR that already holds this version is left as it is. Needs
# apt-get, dpkg-deb and the Debian archive keyring (all in a Debian 12 image); root is not needed.
set -euo pipefail

PKG=mesa-vulkan-drivers
VERSION=25.0.7-2~bpo12+1
LIB=usr/lib/x86_64-linux-gnu/libvulkan_lvp.so

if [ $# -ne 1 ]; then
    echo "usage: $0 DESTDIR" >&2
    exit 2
fi
mkdir -p "$1"
DEST=$(cd "$1" && pwd)
ICD="$DEST/lvp_icd.json"

if [ -f "$DEST/VERSION" ] && [ "$(cat "$DEST/VERSION")" = "$VERSION" ] && [ -f "$DEST/root/$LIB" ] && [ -f "$ICD" ]; then
    echo "$ICD"
    exit 0
fi

APT="$DEST/apt"
rm -rf "$APT" "$DEST/root" "$DEST/VERSION" "$ICD"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/etc/preferences.d" "$APT/etc/sources.list.d" "$APT/deb"
cat >"$APT/etc/sources.list.d/bookworm-backports.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cat >"$APT/etc/preferences.d/backports" <<'EOF'
Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100
EOF
# The system's dpkg status is read (for dependencies), never written: apt-get download installs nothing.
opts=(-o "Dir::Etc::sourcelist=/dev/null" -o "Dir::Etc::sourceparts=$APT/etc/sources.list.d"
      -o "Dir::Etc::preferences=/dev/null" -o "Dir::Etc::preferencesparts=$APT/etc/preferences.d"
      -o "Dir::State::lists=$APT/lists" -o "Dir::Cache=$APT/cache"
      -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Get::List-Cleanup=0"
      -o "Acquire::Retries=3")
if [ "$(id -u)" -eq 0 ]; then
    # apt drops to the _apt user for downloads; that user cannot write into DESTDIR
    opts+=(-o "APT::Sandbox::User=root")
fi
apt-get "${opts[@]}" -qq update >&2
(cd "$APT/deb" && apt-get "${opts[@]}" -qq download "$PKG=$VERSION" >&2)
deb=$(ls "$APT/deb"/"${PKG}"_*.deb)
dpkg-deb -x "$deb" "$DEST/root"
if [ ! -f "$DEST/root/$LIB" ]; then
    echo "$0: $deb has no $LIB" >&2
    exit 1
fi
# it is meant for bookworm-backports' libraries (libdrm 2.4.121, say) but runs on bookworm's: every
# library it needs is there and every symbol it takes from them resolves (ldd -r), or this stops here
if ldd -r "$DEST/root/$LIB" 2>&1 | grep -E "not found|undefined symbol" >&2; then
    echo "$0: $LIB does not load on this system" >&2
    exit 1
fi
# the package's own manifest, with the library's absolute path in place of the installed one
sed "s|\"library_path\": *\"[^\"]*\"|\"library_path\": \"$DEST/root/$LIB\"|" \
    "$DEST/root/usr/share/vulkan/icd.d/lvp_icd.json" >"$ICD.tmp"
grep -q "$DEST/root/$LIB" "$ICD.tmp"
mv "$ICD.tmp" "$ICD"
rm -rf "$APT/deb"   # unpacked: the 11 MB .deb is not needed any more
echo "$VERSION" >"$DEST/VERSION"
echo "$ICD"
