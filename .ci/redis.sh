#!/usr/bin/env bash
# Install and start a local Redis (Debian's redis-server) for the stream consumer tests; print the URL.
#
# Usage: eval "$(bash .ci/redis.sh)"   # sets BELONG_TEST_REDIS_URL
#
# Idempotent: installs only when missing, starts a server only when none answers on the port. It
# keeps nothing on disk (no RDB snapshots, no AOF). Everything but the final `export` goes to stderr.
set -euo pipefail

PORT="${BELONG_REDIS_PORT:-16379}"
DIR="${BELONG_REDIS_DIR:-/tmp/belong-redis-${PORT}}"

log() { echo "redis.sh: $*" >&2; }

if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq redis-server >&2
fi

if ! redis-cli -p "$PORT" ping >/dev/null 2>&1; then
    log "starting redis-server on 127.0.0.1:${PORT}"
    mkdir -p "$DIR"
    redis-server --bind 127.0.0.1 --port "$PORT" --daemonize yes --save '' --appendonly no \
        --dir "$DIR" --logfile "$DIR/redis.log" --pidfile "$DIR/redis.pid" >&2
fi

for _ in $(seq 1 30); do
    if redis-cli -p "$PORT" ping >/dev/null 2>&1; then break; fi
    sleep 0.2
done
redis-cli -p "$PORT" ping >&2 || { log "server did not come up on 127.0.0.1:${PORT}"; exit 1; }

echo "export BELONG_TEST_REDIS_URL=redis://127.0.0.1:${PORT}/0"
