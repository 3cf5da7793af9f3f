#!/usr/bin/env bash
# Sets up and runs the server: starts the project-local PostgreSQL and Redis (unless LOYALTY_DATABASE_URL /
# LOYALTY_REDIS_URL point elsewhere), builds in release mode, applies migrations, loads rules/, and serves
# POS on LOYALTY_POS_PORT (7070) and the admin API on LOYALTY_ADMIN_PORT (8080). Ctrl-C stops the server;
# `scripts/services.sh stop` stops the databases.
#
#   scripts/run.sh [serve flags]          # run the server
#   scripts/run.sh --demo [serve flags]   # first seed demo data (scripts/demo.sql: the tier ladder rules/ names,
#                                         # members 42-44, member 42 with card 4000123412341234), register terminal
#                                         # till-1 of store s1 and create an admin token, printing both secrets
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DEMO=0
if [ "${1:-}" = "--demo" ]; then
    DEMO=1
    shift
fi
eval "$(scripts/services.sh start)"
echo "[run] building (release; the first build takes several minutes)" >&2
swift build -c release --product loyalty
BIN="$(swift build -c release --show-bin-path)/loyalty"
echo "[run] the loyalty command is $BIN (bin/loyalty runs it with this checkout's databases)" >&2
"$BIN" migrate
if [ "$DEMO" = 1 ]; then
    command -v psql >/dev/null || { echo "[run] error: --demo needs psql" >&2; exit 1; }
    echo "[run] demo: seeding tiers and members (scripts/demo.sql)" >&2
    psql -q -X -v ON_ERROR_STOP=1 "$LOYALTY_DATABASE_URL" -f scripts/demo.sql >&2
    terminal_json="$("$BIN" terminal register --id till-1 --store s1 --json)"
    secret="$(printf '%s' "$terminal_json" | sed -n 's/.*"secret" *: *"\([^"]*\)".*/\1/p')"
    token="$("$BIN" token create --role admin --name "demo $(date -u +%Y-%m-%dT%H:%M:%SZ)" | tail -n 1)"
    cat >&2 <<DEMO
[run] demo ready. In another shell, from this folder:
    export PATH="\$PWD/bin:\$PATH"
    export LOYALTY_TERMINAL_ID=till-1 LOYALTY_TERMINAL_SECRET=$secret
    export TOKEN=$token API=http://127.0.0.1:${LOYALTY_ADMIN_PORT:-8080}
    loyalty pos lookup --card 4000123412341234
    curl -s \$API/v1/members/42/balances -H "Authorization: Bearer \$TOKEN"
DEMO
fi
echo "[run] POS on 127.0.0.1:${LOYALTY_POS_PORT:-7070}, admin API on http://127.0.0.1:${LOYALTY_ADMIN_PORT:-8080} (try /ready)" >&2
exec "$BIN" serve "$@"
