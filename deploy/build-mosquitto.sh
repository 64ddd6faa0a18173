#!/usr/bin/env bash
# Builds the Mosquitto broker (with its dynamic-security plugin and mosquitto_ctrl) from Debian's
# source package into PREFIX.
#   usage: deploy/build-mosquitto.sh PREFIX [SOURCE]
# SOURCE: the upstream tarball as Debian ships it (a path or a URL); by default Debian's own
# copy (the `mosquitto` source package, 2.1.2 in sid), checked against its SHA-256 from
# Debian's Sources index.
#
# Why not Debian bookworm's binary package: it is Mosquitto 2.0.11, whose dynamic-security
# plugin rewrites its whole JSON file after every command, so registering devices slows to a
# few per second at 10,000 devices (BENCHMARKS.md). 2.1 saves once per command message
# (`need_save` in plugins/dynamic-security/control.c) and is the version docker-compose.yml
# pins (eclipse-mosquitto:2.1.2-alpine). Skips the build (about 30 s on 2 cores) when PREFIX
# already holds this version.
set -euo pipefail
prefix="$1"
version=2.1.2
sha256=a8e37cc4c1d4141e56c5a8729c5fa36b1f0b1ca95378a12131d68f0509de122a
source="${2:-http://deb.debian.org/debian/pool/main/m/mosquitto/mosquitto_${version}.orig.tar.gz}"

# `mosquitto -h` prints the version first (2.0 then exits with 3).
if [ -x "$prefix/sbin/mosquitto" ] &&
   { "$prefix/sbin/mosquitto" -h 2>/dev/null || true; } | grep -q "^mosquitto version $version\$"; then
  echo "==> Mosquitto $version: already built in $prefix"
  exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/townpulse-mosquitto.XXXXXX")"
trap 'rm -rf "$work"' EXIT
case "$source" in
  http://*|https://*) curl -fsSL --retry 3 -o "$work/src.tar.gz" "$source" ;;
  *) cp "$source" "$work/src.tar.gz" ;;
esac
if ! echo "$sha256  $work/src.tar.gz" | sha256sum -c --status; then
  echo "$source: SHA-256 is not Mosquitto $version's ($sha256)" >&2
  exit 1
fi

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
[ -f /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
[ -f /usr/include/cjson/cJSON.h ] || need+=(libcjson-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> apt-get install ${need[*]}"
  # Another apt may be running on a shared machine: wait for its lock rather than fail.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${need[@]}" >/dev/null
fi

echo "==> Mosquitto $version: building from $source"
mkdir "$work/src"
tar xzf "$work/src.tar.gz" -C "$work/src" --strip-components=1
# Without websockets (the stack serves MQTT and MQTT over TLS only), documentation, tests or the
# interactive shell of mosquitto_ctrl: fewer build dependencies. The tools find the library
# through their RPATH, beside the distribution's libmosquitto if it has one.
new="$prefix.new.$$"
rm -rf "$new"
cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DCMAKE_INSTALL_RPATH="$prefix/lib" -DWITH_DOCS=OFF -DWITH_TESTS=OFF -DWITH_CTRL_SHELL=OFF \
  -DWITH_WEBSOCKETS=OFF -DWITH_SRV=OFF -DWITH_DLT=OFF >"$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log" >&2; exit 1; }
make -C "$work/build" -j"$(nproc)" >>"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; exit 1; }
# Installed next to the old copy, then swapped, so a failed build leaves the old one usable.
make -C "$work/build" install DESTDIR="$new.stage" >>"$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log" >&2; exit 1; }
mv "$new.stage$prefix" "$new"
rm -rf "$new.stage"
chmod -R a+rX "$new"
rm -rf "$prefix"
mkdir -p "$(dirname "$prefix")"
mv "$new" "$prefix"
echo "==> Mosquitto $version installed in $prefix"
