#!/usr/bin/env bash
# Installs what the local stack needs, skipping what is already there. Idempotent.
# Debian packages: Mosquitto's clients, PostgreSQL 15, a JDK and Maven, Node.js/npm and
# Chromium (+ its driver, for the console's browser tests), pgBackRest (backups) and systemd
# (systemd-analyze) if missing; TimescaleDB (see below);
# the Mosquitto broker 2.1, built from Debian's source package into TOWNPULSE_MOSQUITTO_PREFIX
# (default /opt/townpulse/mosquitto; Debian 12's binary package is 2.0.11, see
# deploy/build-mosquitto.sh); the Apache Kafka broker jars from Maven Central; the console's
# front-end libraries from npm; the Python project into .venv.
#
# TimescaleDB, in order of preference:
#   1. the distribution's package, when apt has one (installed into the machine's PostgreSQL);
#   2. a build of the pinned release (deploy/timescaledb-release.sh) into a private copy of
#      PostgreSQL 15 under TOWNPULSE_TIMESCALEDB_PREFIX (default /opt/townpulse/pg15-timescaledb):
#      the machine's own PostgreSQL stays unchanged, so other clusters on the machine that do not
#      preload the library are not affected. The source is TOWNPULSE_TIMESCALEDB_SOURCE (a local
#      tarball when offline, or a URL), else the release's GitHub URL; either way its SHA-256
#      must be the checked-in one, or the install stops;
#   3. neither could be had (offline without a tarball, no compiler): plain PostgreSQL, with a
#      warning that `make status` repeats (the reason is kept in the run dir).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15)
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# systemd-analyze: `townpulse service install`'s units are verified with it (tests), and the
# town's machine runs them with systemd.
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# Continuous archiving and backups of PostgreSQL (docs/operations.md); Debian 12: 2.45.
command -v pgbackrest >/dev/null 2>&1 || need_apt+=(pgbackrest)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need_apt[*]} (run as root, or install them with apt-get)" >&2
    exit 1
  fi
  echo "==> apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# ---- TimescaleDB --------------------------------------------------------------------------------
ts_prefix="${TOWNPULSE_TIMESCALEDB_PREFIX:-/opt/townpulse/pg15-timescaledb}"
# shellcheck source=deploy/timescaledb-release.sh
source deploy/timescaledb-release.sh
ts_source="${TOWNPULSE_TIMESCALEDB_SOURCE:-$TIMESCALEDB_URL}"
# Why the stack runs on plain PostgreSQL, for `townpulse status` (townpulse/stack/postgres.py).
ts_fallback="${TOWNPULSE_RUN_DIR:-.run}/timescaledb-fallback"
mkdir -p "$(dirname "$ts_fallback")"
rm -f "$ts_fallback"
ts_apt_pkg=""
for candidate in timescaledb-2-postgresql-15 postgresql-15-timescaledb; do
  if apt-cache policy "$candidate" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    ts_apt_pkg="$candidate"
    break
  fi
done
if [ -f /usr/share/postgresql/15/extension/timescaledb.control ]; then
  echo "==> TimescaleDB: $(sed -n "s/^default_version = '\(.*\)'/\1/p" \
    /usr/share/postgresql/15/extension/timescaledb.control) (machine's PostgreSQL)"
elif [ -n "$ts_apt_pkg" ]; then
  echo "==> apt-get install $ts_apt_pkg"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$ts_apt_pkg" >/dev/null
elif [ -z "${TOWNPULSE_TIMESCALEDB_SOURCE:-}" ] &&
     [ -f "$ts_prefix/share/postgresql/15/extension/timescaledb--$TIMESCALEDB_VERSION.sql" ]; then
  # Checked when it was built; build-timescaledb.sh rebuilds it after a PostgreSQL upgrade when
  # given the source again.
  echo "==> TimescaleDB $TIMESCALEDB_VERSION: already built in $ts_prefix"
else
  status=0
  bash deploy/build-timescaledb.sh "$ts_source" "$ts_prefix" || status=$?
  if [ "$status" -eq 4 ]; then
    echo "==> TimescaleDB: the source's checksum does not match: install stopped" >&2
    exit 1
  elif [ "$status" -ne 0 ]; then
    if [ "$status" -eq 3 ]; then
      why="could not fetch $ts_source (offline? set TOWNPULSE_TIMESCALEDB_SOURCE to a local tarball of $TIMESCALEDB_VERSION)"
    else
      why="the build from $ts_source failed (exit $status)"
    fi
    echo "$why" >"$ts_fallback"
    echo "==> WARNING: TimescaleDB: $why: the stack runs on plain PostgreSQL" >&2
  fi
fi

# ---- Mosquitto ----------------------------------------------------------------------------------
bash deploy/build-mosquitto.sh "${TOWNPULSE_MOSQUITTO_PREFIX:-/opt/townpulse/mosquitto}" \
  ${TOWNPULSE_MOSQUITTO_SOURCE:+"$TOWNPULSE_MOSQUITTO_SOURCE"}

# The stack runs PostgreSQL and Mosquitto as their own users: make sure both exist.
id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
id mosquitto >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin mosquitto

if [ ! -f deploy/kafka/target/lib/.complete ] || [ deploy/kafka/pom.xml -nt deploy/kafka/target/lib/.complete ]; then
  echo "==> Apache Kafka jars (Maven Central)"
  rm -rf deploy/kafka/target/lib
  mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies
  touch deploy/kafka/target/lib/.complete
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> Python virtual environment"
  python3 -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "==> Python packages"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev]"
  touch .venv/.installed
fi

# The console serves its chart library itself (no outside host at run time): uPlot from npm,
# pinned by deploy/console/package-lock.json, copied next to the console's own static files.
# axe-core stays in node_modules: only the browser tests inject it.
VENDOR=services/api/console/static/vendor
if [ ! -f "$VENDOR/.complete" ] || [ deploy/console/package-lock.json -nt "$VENDOR/.complete" ]; then
  echo "==> Console libraries (npm)"
  npm ci --prefix deploy/console --no-audit --no-fund --loglevel=error
  mkdir -p "$VENDOR"
  cp deploy/console/node_modules/uplot/dist/uPlot.iife.min.js \
     deploy/console/node_modules/uplot/dist/uPlot.min.css "$VENDOR/"
  cp deploy/console/node_modules/uplot/LICENSE "$VENDOR/uPlot.LICENSE.txt"
  touch "$VENDOR/.complete"
fi
