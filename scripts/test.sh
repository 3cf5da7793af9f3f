#!/usr/bin/env bash
# Runs every test against a real PostgreSQL and Redis: starts the project-local ones (unless
# LOYALTY_DATABASE_URL / LOYALTY_REDIS_URL point elsewhere), then `swift test`. Extra arguments go to swift test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/services.sh start)"
echo "[test] PostgreSQL ${LOYALTY_DATABASE_URL%%\?*}  Redis $LOYALTY_REDIS_URL" >&2
exec swift test "$@"
