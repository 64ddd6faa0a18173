#!/usr/bin/env bash
# Builds TimescaleDB from a source tarball (a path or a URL) into a private copy of PostgreSQL 15.
#   usage: deploy/build-timescaledb.sh SOURCE PREFIX
# The tarball must have the pinned release's SHA-256 (deploy/timescaledb-release.sh), or the one
# given in TOWNPULSE_TIMESCALEDB_SHA256 for another release: nothing else is built, since what is
# built runs inside the database server. Exit status: 0 built (or already there), 3 the source
# could not be fetched, 4 the checksum did not match (refused), other: the build failed.
# The copy (PREFIX/lib/postgresql/15, PREFIX/share/postgresql/15) is the machine's PostgreSQL 15,
# relocated: its binaries find their share and lib directories relative to themselves, so the
# extension can be installed there without touching the machine's PostgreSQL. Skips the build
# (about 5.5 min on 2 cores) when PREFIX already holds the tarball's version.
set -euo pipefail
source="$1"
prefix="$2"
pg_lib=/usr/lib/postgresql/15
pg_share=/usr/share/postgresql/15

# shellcheck source=deploy/timescaledb-release.sh
source "$(dirname "$0")/timescaledb-release.sh"
expected="${TOWNPULSE_TIMESCALEDB_SHA256:-$TIMESCALEDB_SHA256}"

work="$(mktemp -d "${TMPDIR:-/tmp}/townpulse-timescaledb.XXXXXX")"
trap 'rm -rf "$work"' EXIT
case "$source" in
  http://*|https://*) curl -fsSL --retry 3 -o "$work/src.tar.gz" "$source" || exit 3 ;;
  *) cp "$source" "$work/src.tar.gz" || exit 3 ;;
esac
actual="$(sha256sum "$work/src.tar.gz" | cut -d' ' -f1)"
if [ "$actual" != "$expected" ]; then
  echo "$source: SHA-256 $actual, expected $expected: refusing to build it" >&2
  exit 4
fi
version="$(tar xzf "$work/src.tar.gz" --wildcards -O '*/version.config' | sed -n 's/^version = //p')"
if [ -z "$version" ]; then
  echo "$source: no version.config, not a TimescaleDB source tarball" >&2
  exit 1
fi
# The copy must also be the machine's current PostgreSQL: after a minor upgrade (security fixes)
# it is made again.
if [ -f "$prefix/share/postgresql/15/extension/timescaledb--$version.sql" ] &&
   [ "$("$prefix/lib/postgresql/15/bin/postgres" --version)" = "$("$pg_lib/bin/postgres" --version)" ]; then
  echo "==> TimescaleDB $version: already built in $prefix"
  exit 0
fi

need=()
[ -x "$pg_lib/bin/pg_config" ] && [ -d /usr/include/postgresql/15/server ] || need+=(postgresql-server-dev-15)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
[ -f /usr/include/krb5.h ] || need+=(libkrb5-dev)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> apt-get install ${need[*]}"
  # Another apt may be running on a shared machine: wait for its lock rather than fail.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${need[@]}" >/dev/null
fi

echo "==> TimescaleDB $version: building from $source (about 5.5 min on 2 cores)"
tar xzf "$work/src.tar.gz" -C "$work"
cd "$work"/timescaledb-*/
./bootstrap -DPG_CONFIG="$pg_lib/bin/pg_config" -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
  -DWARNINGS_AS_ERRORS=OFF -DLINTER=OFF -DGENERATE_DOWNGRADE_SCRIPT=OFF >"$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log" >&2; exit 1; }
make -C build -j"$(nproc)" >>"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; exit 1; }
make -C build install DESTDIR="$work/stage" >>"$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log" >&2; exit 1; }

# Assemble the copy next to the old one, then swap, so a failed build leaves the old one usable.
new="$prefix.new.$$"
rm -rf "$new"
mkdir -p "$new/lib/postgresql" "$new/share/postgresql"
cp -a "$pg_lib" "$new/lib/postgresql/"
cp -a "$pg_share" "$new/share/postgresql/"
cp -a "$work/stage$pg_lib/lib/." "$new/lib/postgresql/15/lib/"
cp -a "$work/stage$pg_share/extension/." "$new/share/postgresql/15/extension/"
chmod -R a+rX "$new"
rm -rf "$prefix"
mkdir -p "$(dirname "$prefix")"
mv "$new" "$prefix"
echo "==> TimescaleDB $version installed in $prefix"
