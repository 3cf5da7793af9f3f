#!/usr/bin/env bash
# Checks the admin API against its own OpenAPI document with schemathesis (from PyPI): generated requests, valid
# and invalid, against a real server on a scratch database, with an admin token. Fails on any 5xx, on a response
# that does not match the document (body schema, status code, content type), or on an invalid request the
# server accepted. Bounded in time; stops what it started. CI runs it after the tests.
#
#   scripts/api-check.sh                 # debug build (reused when up to date)
#   API_CHECK_MAX_EXAMPLES=200 API_CHECK_PHASES=examples,coverage,fuzzing,stateful scripts/api-check.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
MAX_EXAMPLES="${API_CHECK_MAX_EXAMPLES:-30}"
# The default is deterministic (same seed, same cases, no stateful phase, no time budget that repeats fuzzing
# until it is spent), so a CI run checks the same requests every time. An exploratory run that fuzzes for 15
# minutes: API_CHECK_PHASES=examples,coverage,fuzzing,stateful API_CHECK_MAX_TIME_S=900.
MAX_TIME_S="${API_CHECK_MAX_TIME_S:-}"
PHASES="${API_CHECK_PHASES:-examples,coverage,fuzzing}"
SCHEMATHESIS_VERSION="4.32.5"
DB=loyalty_apicheck
RESULTS="$ROOT/.local/api-check"
SERVER_LOG="$RESULTS/server.log"

log() { echo "[api-check] $*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$RESULTS"
eval "$(scripts/services.sh start)"

if ! python3 -m schemathesis.cli --version >/dev/null 2>&1 && ! command -v schemathesis >/dev/null; then
    log "installing schemathesis $SCHEMATHESIS_VERSION from PyPI"
    python3 -m pip install -q "schemathesis==$SCHEMATHESIS_VERSION" >&2 || die "pip could not install schemathesis"
fi
SCHEMATHESIS="$(command -v schemathesis || echo "python3 -m schemathesis.cli")"

log "building loyalty (debug)"
swift build --product loyalty >&2
BIN="$(swift build --show-bin-path)"

base_url="${LOYALTY_DATABASE_URL%%\?*}"
admin_url="${base_url%/*}/postgres"
db_url="${base_url%/*}/$DB"
psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
"$BIN/loyalty" migrate --database-url "$db_url" >/dev/null
TOKEN="$("$BIN/loyalty" token create --role admin --name "api check" --database-url "$db_url" | tail -n1)"

read -r POS_PORT ADMIN_PORT < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
"$BIN/loyalty" serve --database-url "$db_url" --redis-url "$LOYALTY_REDIS_URL" --host 127.0.0.1 \
    --pos-port "$POS_PORT" --admin-port "$ADMIN_PORT" </dev/null >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
cleanup() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 120); do
    curl -fsS -m 2 "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$SERVER_LOG" >&2; die "the server exited"; }
    sleep 0.5
done
curl -fsS -m 2 "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null || die "the server was not ready; see $SERVER_LOG"

# Some data for the generated requests to find: a tier ladder comes with the migrations; a member, a segment.
curl -fsS -m 5 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"card_number": "CHECK-0001", "birth_date": "1990-05-01"}' "http://127.0.0.1:$ADMIN_PORT/v1/members" >/dev/null
curl -fsS -m 5 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"name": "everyone", "definition": {}}' "http://127.0.0.1:$ADMIN_PORT/v1/segments" >/dev/null

log "schemathesis $($SCHEMATHESIS --version | awk '{print $NF}'): phases $PHASES, at most $MAX_EXAMPLES cases per operation${MAX_TIME_S:+, ${MAX_TIME_S} s}"
status=0
generation=(--generation-database none)
[ "$PHASES" = "examples,coverage,fuzzing" ] && generation=(--generation-deterministic)
timeout --kill-after=10 "$((${MAX_TIME_S:-900} + 60))" $SCHEMATHESIS run docs/openapi.json \
    --url "http://127.0.0.1:$ADMIN_PORT" -H "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection \
    --phases "$PHASES" --max-examples "$MAX_EXAMPLES" ${MAX_TIME_S:+--max-time "$MAX_TIME_S"} --seed 20261124 --workers 1 \
    "${generation[@]}" --request-timeout 10 --no-color \
    --report junit --report-dir "$RESULTS" || status=$?
if [ "$status" != 0 ]; then
    log "schemathesis found problems (exit $status); server log: $SERVER_LOG"
    exit "$status"
fi
log "no server errors and no schema violations"
