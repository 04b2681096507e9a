#!/usr/bin/env bash
# Install and start a local PostgreSQL 15 for the storage tests; print the URL to use.
#
# Usage: eval "$(bash .ci/postgres.sh)"   # sets BELONG_TEST_POSTGRES_URL
#
# Idempotent: installs only when missing, starts the cluster only when down, creates the role and
# database only when absent. Everything but the final `export` line goes to stderr. Safe as root:
# the server runs as the `postgres` user through pg_ctlcluster, SQL runs through runuser.
set -euo pipefail

PG_VERSION="${PG_VERSION:-15}"
PG_CLUSTER="${PG_CLUSTER:-main}"
DB_NAME="${BELONG_PG_DB:-belonging_test}"
DB_USER="${BELONG_PG_USER:-belonging}"
DB_PASSWORD="${BELONG_PG_PASSWORD:-belonging}"

log() { echo "postgres.sh: $*" >&2; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -x "/usr/lib/postgresql/${PG_VERSION}/bin/postgres" ]; then
    log "installing postgresql-${PG_VERSION}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "postgresql-${PG_VERSION}" postgresql-client-common >&2
fi

if ! pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { found = 1 } END { exit !found }'; then
    log "creating cluster ${PG_VERSION}/${PG_CLUSTER}"
    pg_createcluster "$PG_VERSION" "$PG_CLUSTER" >&2
fi

PORT="$(pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { print $3 }')"
STATUS="$(pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { print $4 }')"

if [ "$STATUS" != "online" ]; then
    log "starting cluster ${PG_VERSION}/${PG_CLUSTER} on port ${PORT}"
    mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql
    pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start >&2
fi

for _ in $(seq 1 30); do
    if pg_isready -q -h 127.0.0.1 -p "$PORT"; then break; fi
    sleep 1
done
pg_isready -h 127.0.0.1 -p "$PORT" >&2 || { log "server did not come up on 127.0.0.1:${PORT}"; exit 1; }

psql_admin() { runuser -u postgres -- psql -p "$PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }

if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '${DB_USER}'")" != "1" ]; then
    log "creating role ${DB_USER}"
    psql_admin -c "CREATE ROLE ${DB_USER} LOGIN PASSWORD '${DB_PASSWORD}' CREATEDB" >&2
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '${DB_NAME}'")" != "1" ]; then
    log "creating database ${DB_NAME}"
    psql_admin -c "CREATE DATABASE ${DB_NAME} OWNER ${DB_USER}" >&2
fi

echo "export BELONG_TEST_POSTGRES_URL=postgresql+psycopg://${DB_USER}:${DB_PASSWORD}@127.0.0.1:${PORT}/${DB_NAME}"
