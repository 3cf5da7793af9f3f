#!/usr/bin/env bash
# Sets up and runs the server: starts the project-local PostgreSQL and Redis (unless LOYALTY_DATABASE_URL /
# LOYALTY_REDIS_URL point elsewhere), builds in release mode, applies migrations, loads rules/, and serves
# POS on LOYALTY_POS_PORT (7070) and the admin API on LOYALTY_ADMIN_PORT (8080). Ctrl-C stops the server;
# `scripts/services.sh stop` stops the databases.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/services.sh start)"
echo "[run] building (release; the first build takes several minutes)" >&2
swift build -c release --product loyalty
BIN="$(swift build -c release --show-bin-path)/loyalty"
"$BIN" migrate
echo "[run] POS on 127.0.0.1:${LOYALTY_POS_PORT:-7070}, admin API on http://127.0.0.1:${LOYALTY_ADMIN_PORT:-8080} (try /ready)" >&2
exec "$BIN" serve "$@"
