#!/usr/bin/env bash
# Starts a throwaway local PostgreSQL cluster from the installed server binaries (Debian's
# postgresql package; no Docker, no service manager) and prints the connection string for
# ConnectionStrings__TokenMeter.
#
#   scripts/local-postgres.sh [start]   create (first time) and start the cluster
#   scripts/local-postgres.sh stop      stop it
#   scripts/local-postgres.sh status    say whether it runs
#   scripts/local-postgres.sh destroy   stop it and delete its data
#
# Environment: PGPORT (default 5433), PGDATA_DIR (default /tmp/homework-postgres-$PGPORT).
set -euo pipefail

cd "$(dirname "$0")/.."
port="${PGPORT:-5433}"
root="${PGDATA_DIR:-${TMPDIR:-/tmp}/homework-postgres-$port}"
data="$root/data"
command="${1:-start}"

bin=""
for dir in /usr/lib/postgresql/*/bin; do
  [ -x "$dir/initdb" ] && bin="$dir"
done
if [ -z "$bin" ]; then
  echo "local-postgres: no PostgreSQL server binaries found; install them with: sudo apt-get install -y postgresql" >&2
  exit 1
fi

# initdb and postgres refuse to run as root: run them as the 'postgres' system user then.
as_owner=()
if [ "$(id -u)" = 0 ]; then
  as_owner=(runuser -u postgres --)
fi

connection="Host=127.0.0.1;Port=$port;Username=postgres;Database=homework"

case "$command" in
  start)
    if [ ! -f "$data/PG_VERSION" ]; then
      mkdir -p "$root"
      [ "$(id -u)" = 0 ] && chown postgres:postgres "$root"
      "${as_owner[@]}" "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
    fi
    if "${as_owner[@]}" "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      echo "local-postgres: already running" >&2
    else
      "${as_owner[@]}" "$bin/pg_ctl" -D "$data" -l "$root/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -c unix_socket_directories=$root -p $port" start >/dev/null
    fi
    "${as_owner[@]}" "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'homework'" | grep -q 1 \
      || "${as_owner[@]}" "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE homework"
    echo "local-postgres: running on 127.0.0.1:$port (data in $data, log in $root/server.log)" >&2
    echo "$connection"
    ;;
  stop)
    "${as_owner[@]}" "$bin/pg_ctl" -D "$data" -w stop >/dev/null && echo "local-postgres: stopped" >&2
    ;;
  status)
    if "${as_owner[@]}" "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
      echo "local-postgres: running; connection string:" >&2
      echo "$connection"
    else
      echo "local-postgres: not running" >&2
      exit 3
    fi
    ;;
  destroy)
    "${as_owner[@]}" "$bin/pg_ctl" -D "$data" -w stop >/dev/null 2>&1 || true
    rm -rf "$root"
    echo "local-postgres: removed $root" >&2
    ;;
  *)
    echo "usage: $0 [start|stop|status|destroy]" >&2
    exit 2
    ;;
esac
