#!/bin/bash
# A streaming replica for the official postgres image. On the first start,
# copy the primary with pg_basebackup -R (which writes primary_conninfo and
# standby.signal) through a replication slot named $SLOT_NAME; then start
# PostgreSQL as the image does. Later starts keep the data directory.
set -euo pipefail
: "${PRIMARY_HOST:?set PRIMARY_HOST to the primary's service name}"
: "${SLOT_NAME:?set SLOT_NAME to this replica's slot name}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 0700 "$PGDATA"
    until gosu postgres pg_isready -h "$PRIMARY_HOST" -p 5432 -U postgres; do
        sleep 1
    done
    PGPASSWORD="$POSTGRES_PASSWORD" gosu postgres pg_basebackup \
        -h "$PRIMARY_HOST" -p 5432 -U postgres \
        -D "$PGDATA" -R -X stream -C -S "$SLOT_NAME"
fi
exec docker-entrypoint.sh postgres -c hot_standby=on -c hot_standby_feedback=on
