# The TimescaleDB release built when the distribution has no package (sourced by deploy/install.sh
# and deploy/build-timescaledb.sh).
#
# The SHA-256 is that of GitHub's source archive of the tag, TIMESCALEDB_URL below. It was
# computed offline from the vendored copy (../shared/vendor/timescaledb-2.28.3.tar.gz), which is
# such an archive: a `git archive` tarball whose top directory is `timescaledb-2.28.3/` (GitHub's
# naming for a tag archive; a release asset would be named otherwise), whose pax header names
# commit 4a77ff5cf1bf4348c4f0527e042434a289f06e39 (tag 2.28.3) and whose version.config says
# 2.28.3. TimescaleDB publishes no other source asset for its releases. Byte-identity with
# GitHub's download could not be checked without network: GitHub keeps tag archives stable, but if
# the first online build refuses the download, compare it with the vendored copy before changing
# the sum here.
TIMESCALEDB_VERSION=2.28.3
TIMESCALEDB_URL="https://github.com/timescale/timescaledb/archive/refs/tags/${TIMESCALEDB_VERSION}.tar.gz"
TIMESCALEDB_SHA256=ec2f7de0ba53a473c01e0a57e09053898c6b1f7487228caff0f1d31c8cb2dedb
