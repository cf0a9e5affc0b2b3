#!/bin/sh
# The official postgres image's start-up contract on Debian's package: on an empty data directory, create
# the cluster with superuser POSTGRES_USER (password POSTGRES_PASSWORD, required) and database POSTGRES_DB,
# accepting password logins from the network; then run the server in the foreground.
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
: "${PGDATA:=/var/lib/postgresql/data}" "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] || { echo "postgres: set POSTGRES_PASSWORD" >&2; exit 1; }
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  "$bin/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -E UTF8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    echo "CREATE DATABASE \"$POSTGRES_DB\"" | "$bin/postgres" --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "postgres: created the cluster, user $POSTGRES_USER, database $POSTGRES_DB"
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*'
