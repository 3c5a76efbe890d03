#!/bin/bash
# Run once by the official postgres image when it creates the primary's data
# directory (/docker-entrypoint-initdb.d): lets the replicas stream from it.
# The replicas log in as `postgres` with POSTGRES_PASSWORD.
set -euo pipefail
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
