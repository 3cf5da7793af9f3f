#!/usr/bin/env bash
# Runs every test against a real PostgreSQL and Redis: starts the project-local ones (unless
# LOYALTY_DATABASE_URL / LOYALTY_REDIS_URL point elsewhere), then `swift test`, then (for a full run, i.e. without
# arguments) the schemathesis check of the admin API against its OpenAPI document (scripts/api-check.sh).
# Extra arguments go to swift test and skip the API check; LOYALTY_SKIP_API_CHECK=1 skips it too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/services.sh start)"
echo "[test] PostgreSQL ${LOYALTY_DATABASE_URL%%\?*}  Redis $LOYALTY_REDIS_URL" >&2
if [ $# -gt 0 ] || [ "${LOYALTY_SKIP_API_CHECK:-}" = 1 ]; then
    exec swift test "$@"
fi
swift test
scripts/api-check.sh
