#!/usr/bin/env bash
# Runs every test against a real PostgreSQL and Redis: starts the project-local ones (unless
# LOYALTY_DATABASE_URL / LOYALTY_REDIS_URL point elsewhere), then `swift test`, then (for a full run, i.e. without
# arguments) the schemathesis check of the admin API against its OpenAPI document (scripts/api-check.sh).
# Extra arguments go to swift test and skip the API check; LOYALTY_SKIP_API_CHECK=1 skips it too.
# LOYALTY_TEST_PARALLELISM sets how many tests run at once (default 6).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/services.sh start)"
echo "[test] PostgreSQL ${LOYALTY_DATABASE_URL%%\?*}  Redis $LOYALTY_REDIS_URL" >&2
# At most 6 tests at once: with every suite started together, two cores spent the first minute creating
# databases, and tests that wait on real time (idle and handshake timeouts, drains, notifications) missed them.
WIDTH=(--experimental-maximum-parallelization-width "${LOYALTY_TEST_PARALLELISM:-6}")
if [ $# -gt 0 ] || [ "${LOYALTY_SKIP_API_CHECK:-}" = 1 ]; then
    exec swift test "${WIDTH[@]}" "$@"
fi
swift test "${WIDTH[@]}"
scripts/api-check.sh
