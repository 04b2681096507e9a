#!/usr/bin/env bash
# Make sure a Java runtime is present for the Spark test (pyspark starts a JVM): Debian's headless JRE 17.
#
# Usage: bash .ci/java.sh
#
# Idempotent: installs only when `java` is missing. Spark 4 needs Java 17 or newer.
set -euo pipefail

log() { echo "java.sh: $*" >&2; }

if ! command -v java >/dev/null 2>&1; then
    log "installing openjdk-17-jre-headless"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq openjdk-17-jre-headless >&2
fi
java -version 2>&1 | head -1 >&2
