#!/usr/bin/env bash
# One command for a whole load-test run: local PostgreSQL + Redis, release build, a fresh seeded database, the
# server on free loopback ports, pgbench and redis-benchmark baselines on the same servers, every scenario in
# loadtests/scenarios/, lookups again with Redis stopped, and the ratio table. Stops everything it started, also
# on failure or Ctrl-C. Results: .local/loadtest-results/ (report.md, one JSON per scenario, baselines.env).
#
# Options (environment):
#   LOADTEST_MEMBERS=100000   members to seed
#   LOADTEST_CONNECTIONS=16   POS connections (one terminal each); also the server's database pool and pgbench -c
#   LOADTEST_PIPELINE=4       outstanding requests per connection; redis-benchmark -c is CONNECTIONS × PIPELINE
#   LOADTEST_DURATION=15      seconds measured per scenario and for pgbench
#   LOADTEST_SKIP_BUILD=1     reuse the existing release binaries instead of building
#   LOADTEST_SCRATCH_PATH=.build  SwiftPM scratch path the release binaries are built in (and taken from)
#   LOADTEST_SCENARIOS="lookup-only commit-only ..."  the closed-loop scenarios to run (default: all five)
#   LOADTEST_NO_REDIS=1       run lookups again with Redis stopped (lookup-no-redis); 0 = skip
#   LOADTEST_BLAST=1          run the bonus blast over all members; 0 = skip
#   LOADTEST_SWEEP=25,50,75,90  shares (%) of each sweep scenario's closed-loop maximum to run open-loop; empty = none
#   LOADTEST_SWEEP_DURATION=10  seconds measured per sweep point
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MEMBERS="${LOADTEST_MEMBERS:-100000}"
CONNECTIONS="${LOADTEST_CONNECTIONS:-16}"
PIPELINE="${LOADTEST_PIPELINE:-4}"
DURATION="${LOADTEST_DURATION:-15}"
STATE_DIR="${LOYALTY_STATE_DIR:-$ROOT/.local}"   # where scripts/services.sh keeps its PostgreSQL and Redis
RESULTS="$ROOT/.local/loadtest-results"
SECRET="$ROOT/.local/loadtest-secret"
ADMIN_TOKEN="$ROOT/.local/loadtest-admin-token"
SERVER_LOG="$ROOT/.local/loadtest-server.log"
SCRATCH_PATH="${LOADTEST_SCRATCH_PATH:-$ROOT/.build}"
BIN="$SCRATCH_PATH/release"
LT_DB=loyalty_loadtest
PGB_DB=loyalty_pgbench
SCENARIO_DIR=loadtests/scenarios
read -r -a SCENARIOS <<<"${LOADTEST_SCENARIOS:-lookup-only commit-only checkout-mix hot-member admin-read-mix}"
NO_REDIS="${LOADTEST_NO_REDIS:-1}"
BLAST="${LOADTEST_BLAST:-1}"
# After its closed-loop run, each of these is run again open-loop at the LOADTEST_SWEEP shares of its maximum.
SWEEP_SCENARIOS=(lookup-only commit-only checkout-mix)
SWEEP="${LOADTEST_SWEEP-25,50,75,90}"
SWEEP_DURATION="${LOADTEST_SWEEP_DURATION:-10}"

log() { printf '[loadtest] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$SWEEP" =~ ^([1-9][0-9]?(,[1-9][0-9]?)*)?$ ]] || die "LOADTEST_SWEEP must be comma-separated percentages 1-99, not '$SWEEP'"
IFS=, read -r -a SWEEP_SHARES <<<"$SWEEP"
[[ "$NO_REDIS$BLAST" =~ ^[01][01]$ ]] || die "LOADTEST_NO_REDIS and LOADTEST_BLAST must be 0 or 1"
for name in "${SCENARIOS[@]}"; do [[ "$name" =~ ^[a-z0-9-]+$ ]] || die "LOADTEST_SCENARIOS: '$name' is not a scenario name"; done
for v in MEMBERS CONNECTIONS PIPELINE DURATION SWEEP_DURATION; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "LOADTEST_$v must be a positive integer, not '${!v}'"
done

# Time bounds in seconds, one per step, so a hung step cannot hang the run.
B_BUILD=3600; B_MIGRATE=60; B_SEED=$((60 + MEMBERS / 400)); B_READY=60; B_PGB_INIT=180
B_PGB_RUN=$((DURATION + 30)); B_REDIS=60; B_SCENARIO=$((DURATION + 240)); B_REPORT=30; B_CLEANUP=100  # a scenario run may pre-warm over all members
B_SWEEP=$((SWEEP_DURATION + 60))
B_RUN=$((B_MIGRATE + B_SEED + B_READY + B_PGB_INIT + B_PGB_RUN + B_REDIS + 5 * B_SCENARIO + (${#SWEEP_SCENARIOS[@]} + 1) * ${#SWEEP_SHARES[@]} * B_SWEEP + 120 + MEMBERS / 500 + 20 + B_REPORT + B_CLEANUP + B_MIGRATE))

CHILD=""            # the bounded step now running
SERVER_WRAPPER=""   # `timeout` around the server
SERVER_PID=""       # the server itself (for --server-pid and SIGKILL)
DB_URL=""; PG_STARTED=0; REDIS_STARTED=0; REDIS_STOPPED=0

# bounded SECONDS CMD...: run CMD under `timeout` in the background and wait for it, so Ctrl-C is handled at
# once (bash runs traps only between foreground commands) and a timed-out CMD is killed with its children.
bounded() {
    local limit=$1 rc=0; shift
    timeout --kill-after=10 "$limit" "$@" &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    [ "$rc" -ne 124 ] || log "timed out after ${limit} s: $*"
    return "$rc"
}

db_url() { echo "$PG_BASE/$1$PG_QUERY"; }   # the same server, another database
sql() { PGOPTIONS='-c client_min_messages=warning' timeout 30 psql "$(db_url postgres)" -v ON_ERROR_STOP=1 -qtAc "$1"; }

# Services we started are stopped again; services.sh stop would stop both, so one alone is stopped by hand.
stop_services() {
    if [ "$PG_STARTED" = 1 ] && [ "$REDIS_STARTED" = 1 ]; then
        timeout 120 scripts/services.sh stop || true
    elif [ "$REDIS_STARTED" = 1 ]; then
        timeout 20 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    elif [ "$PG_STARTED" = 1 ]; then
        local cmd; cmd="$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl | tail -n1)")/pg_ctl -D '$STATE_DIR/pg/data' -m fast -w stop"
        if [ "$(id -u)" = 0 ]; then timeout 60 su postgres -s /bin/bash -c "$cmd"; else timeout 60 bash -c "$cmd"; fi || true
    fi
}

stop_server() {
    [ -n "$SERVER_WRAPPER" ] || return 0
    log "stopping the server (SIGTERM, SIGKILL after 10 s)"
    kill -TERM "$SERVER_WRAPPER" 2>/dev/null || true   # timeout passes SIGTERM on to the server
    for _ in $(seq 1 100); do kill -0 "$SERVER_WRAPPER" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$SERVER_WRAPPER" 2>/dev/null; then
        log "server still up after 10 s: SIGKILL"
        kill -KILL "$SERVER_PID" "$SERVER_WRAPPER" 2>/dev/null || true
    fi
    wait "$SERVER_WRAPPER" 2>/dev/null || true
    SERVER_WRAPPER=""; SERVER_PID=""
}

start_redis_again() {  # services.sh start restarts only what is missing, on the remembered port
    timeout 60 scripts/services.sh start >/dev/null && REDIS_STOPPED=0
}

cleanup() {
    local rc=$?
    set +e; trap - EXIT INT TERM HUP
    [ -z "$CHILD" ] || { kill -TERM "$CHILD" 2>/dev/null; wait "$CHILD" 2>/dev/null; }
    stop_server
    if [ "$REDIS_STOPPED" = 1 ] && [ "$REDIS_STARTED" = 0 ]; then log "starting Redis again"; start_redis_again; fi
    if [ -n "$DB_URL" ]; then
        log "dropping $LT_DB and $PGB_DB"
        for db in "$LT_DB" "$PGB_DB"; do sql "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; done
    fi
    [ "$PG_STARTED$REDIS_STARTED" = 00 ] || log "stopping the services this run started"
    stop_services
    if [ "$rc" = 0 ]; then log "done: .local/loadtest-results/report.md"; else log "failed (exit $rc); server log: .local/loadtest-server.log"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# 1. Services. Project-local only: URLs exported in the caller's shell would make services.sh treat them as
#    external (never started, never stopped), and the Redis-off scenario must be able to stop Redis.
[ -z "${LOYALTY_DATABASE_URL:-}${LOYALTY_REDIS_URL:-}" ] || log "ignoring LOYALTY_DATABASE_URL / LOYALTY_REDIS_URL: a load test uses the project-local services"
unset LOYALTY_DATABASE_URL LOYALTY_REDIS_URL
STATUS="$(scripts/services.sh status 2>/dev/null || true)"
grep -q '^postgresql: running' <<<"$STATUS" || PG_STARTED=1
grep -q '^redis: running' <<<"$STATUS" || REDIS_STARTED=1
log "starting local services (PostgreSQL was $([ $PG_STARTED = 1 ] && echo stopped || echo running), Redis was $([ $REDIS_STARTED = 1 ] && echo stopped || echo running))"
SERVICES_ENV="$(timeout 600 scripts/services.sh start)" || die "scripts/services.sh start failed"
eval "$SERVICES_ENV"
DB_URL="$LOYALTY_DATABASE_URL"; REDIS_URL="$LOYALTY_REDIS_URL"
unset LOYALTY_DATABASE_URL LOYALTY_REDIS_URL   # see above: a later services.sh start must restart our Redis
[[ "$DB_URL" =~ ^(postgres(ql)?://[^/]+)/[^?]*(\?.*)?$ ]] || die "unexpected database URL $DB_URL"
PG_BASE="${BASH_REMATCH[1]}"; PG_QUERY="${BASH_REMATCH[3]}"
[[ "$REDIS_URL" =~ ^redis://([^@/]*@)?127\.0\.0\.1:([0-9]+) ]] || die "unexpected Redis URL $REDIS_URL"
REDIS_PORT="${BASH_REMATCH[2]}"

PGBENCH="$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -n1 || true)"
[ -n "$PGBENCH" ] || die "pgbench not found; install it with: apt-get install postgresql-15 (it ships with the server)"
command -v redis-benchmark >/dev/null || die "redis-benchmark not found; install it with: apt-get install redis-tools"
command -v curl >/dev/null || die "curl not found; install it with: apt-get install curl"

log "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "PostgreSQL $(sql 'SHOW server_version'), synchronous_commit=$(sql 'SHOW synchronous_commit'); Redis $(redis-cli -p "$REDIS_PORT" info server | tr -d '\r' | sed -n 's/^redis_version://p'); $("$PGBENCH" --version)"
log "members=$MEMBERS connections=$CONNECTIONS pipeline=$PIPELINE duration=${DURATION}s; bound: build ≤ $((2 * B_BUILD / 60)) min, then ≤ $((B_RUN / 60)) min"
mkdir -p "$RESULTS"
rm -f "$RESULTS"/*.json "$RESULTS/report.md" "$RESULTS/baselines.env"   # a report must only show this run

# 2. Build.
if [ "${LOADTEST_SKIP_BUILD:-0}" = 1 ]; then
    log "LOADTEST_SKIP_BUILD=1: reusing the release binaries"
else
    for product in loyalty loyalty-loadtest; do
        log "building $product (release)"
        started=$SECONDS
        bounded "$B_BUILD" swift build -c release --scratch-path "$SCRATCH_PATH" --product "$product"
        log "built $product in $((SECONDS - started)) s"
    done
fi
for b in loyalty loyalty-loadtest; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing; build it or unset LOADTEST_SKIP_BUILD"; done

# 3. A fresh database for the run.
LT_URL="$(db_url "$LT_DB")"
log "creating $LT_DB and migrating"
sql "DROP DATABASE IF EXISTS $LT_DB WITH (FORCE)" >/dev/null
sql "CREATE DATABASE $LT_DB" >/dev/null
bounded "$B_MIGRATE" "$BIN/loyalty" migrate --database-url "$LT_URL" >/dev/null

# 4. Seed members and the terminals lt-0 … lt-(CONNECTIONS-1).
log "seeding $MEMBERS members and $CONNECTIONS terminals (≤ $B_SEED s)"
bounded "$B_SEED" "$BIN/loyalty-loadtest" seed --database-url "$LT_URL" --members "$MEMBERS" \
    --terminals "$CONNECTIONS" --secret-file "$SECRET"

# A readonly admin token for the admin-API read mix (only its hash is stored).
bounded "$B_MIGRATE" "$BIN/loyalty" token create --role readonly --name "load test" --database-url "$LT_URL" \
    | tail -n1 >"$ADMIN_TOKEN" || die "could not create the load-test admin token"

# The database is new but Redis may still hold members cached from an earlier run's database (same ids, other
# ledger versions): move the member cache to a new epoch, as the server does after a Redis outage, so nothing
# cached before this run is served or blocks a newer write.
timeout 10 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" INCR loyalty:cache-epoch >/dev/null \
    || die "could not move the member cache to a new epoch (redis-cli INCR loyalty:cache-epoch)"

# 5. The server, on free loopback ports, under a timeout that outlasts the rest of the run.
read -r POS_PORT ADMIN_PORT < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))') || die "could not pick free ports"
POOL_ARGS=()
POOL_ARGS=(--database-pool-size "$CONNECTIONS")
log "starting the server: POS 127.0.0.1:$POS_PORT, admin 127.0.0.1:$ADMIN_PORT, log .local/loadtest-server.log"
timeout --kill-after=10 "$B_RUN" "$BIN/loyalty" serve --database-url "$LT_URL" --redis-url "$REDIS_URL" \
    --host 127.0.0.1 --pos-port "$POS_PORT" --admin-port "$ADMIN_PORT" "${POOL_ARGS[@]}" </dev/null >"$SERVER_LOG" 2>&1 &
SERVER_WRAPPER=$!
for _ in $(seq 1 50); do SERVER_PID="$(pgrep -P "$SERVER_WRAPPER" || true)"; [ -z "$SERVER_PID" ] || break; sleep 0.1; done
[ -n "$SERVER_PID" ] || { tail -n 20 "$SERVER_LOG" >&2; die "the server did not start"; }
server_up() { kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$SERVER_LOG" >&2; die "the server exited; see .local/loadtest-server.log"; }; }
deadline=$((SECONDS + B_READY))
until curl -fsS -m 2 "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1; do
    server_up
    [ "$SECONDS" -lt "$deadline" ] || die "the server was not ready within $B_READY s; see .local/loadtest-server.log"
    sleep 0.5
done
log "server ready (pid $SERVER_PID)"

# 6. Baselines on the same PostgreSQL and Redis, in this run.
log "pgbench: initialising $PGB_DB (scale 10)"
sql "DROP DATABASE IF EXISTS $PGB_DB WITH (FORCE)" >/dev/null
sql "CREATE DATABASE $PGB_DB" >/dev/null
bounded "$B_PGB_INIT" "$PGBENCH" -i -s 10 -q "$(db_url "$PGB_DB")" >"$RESULTS/pgbench-init.log" 2>&1 \
    || { cat "$RESULTS/pgbench-init.log" >&2; die "pgbench -i failed"; }
log "pgbench: TPC-B-like, $CONNECTIONS clients, ${DURATION} s, prepared statements"
wal_before="$(sql 'SELECT pg_current_wal_lsn()')"
bounded "$B_PGB_RUN" "$PGBENCH" -c "$CONNECTIONS" -j 2 -T "$DURATION" -M prepared "$(db_url "$PGB_DB")" \
    >"$RESULTS/pgbench.log" 2>&1 || { cat "$RESULTS/pgbench.log" >&2; die "pgbench failed"; }
PGBENCH_TXNS="$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$RESULTS/pgbench.log" | head -n1)"
PGBENCH_WAL_PER_TXN="$(sql "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$wal_before') / greatest(${PGBENCH_TXNS:-0}, 1))")"
log "pgbench: ${PGBENCH_WAL_PER_TXN} WAL bytes per transaction (${PGBENCH_TXNS:-?} transactions)"
# "without initial connection time" (PostgreSQL 14+) or "excluding connections establishing" (older).
PGBENCH_TPS="$(sed -nE 's/^tps = ([0-9.]+) \((without initial connection time|excluding connections establishing)\).*/\1/p' "$RESULTS/pgbench.log" | head -n1)"
[ -n "$PGBENCH_TPS" ] || PGBENCH_TPS="$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$RESULTS/pgbench.log" | tail -n1)"
[ -n "$PGBENCH_TPS" ] || { cat "$RESULTS/pgbench.log" >&2; die "no tps line in the pgbench output"; }
PGBENCH_LAT="$(sed -nE 's/^latency average = ([0-9.]+) ms.*/\1/p' "$RESULTS/pgbench.log" | head -n1)"
log "pgbench: $PGBENCH_TPS tps${PGBENCH_LAT:+, latency average $PGBENCH_LAT ms}"

# Reads: what PostgreSQL answers to one indexed SELECT per transaction, for the admin-API read mix (which runs
# CONNECTIONS concurrent requests, one each).
log "pgbench: select-only, $CONNECTIONS clients, ${DURATION} s, prepared statements"
bounded "$B_PGB_RUN" "$PGBENCH" -S -c "$CONNECTIONS" -j 2 -T "$DURATION" -M prepared "$(db_url "$PGB_DB")" \
    >"$RESULTS/pgbench-select.log" 2>&1 || { cat "$RESULTS/pgbench-select.log" >&2; die "pgbench -S failed"; }
PGBENCH_SELECT_TPS="$(sed -nE 's/^tps = ([0-9.]+) \((without initial connection time|excluding connections establishing)\).*/\1/p' "$RESULTS/pgbench-select.log" | head -n1)"
[ -n "$PGBENCH_SELECT_TPS" ] || { cat "$RESULTS/pgbench-select.log" >&2; die "no tps line in the pgbench -S output"; }
log "pgbench select-only: $PGBENCH_SELECT_TPS tps"

CONCURRENCY=$((CONNECTIONS * PIPELINE))
log "redis-benchmark: GET, $CONCURRENCY clients, 300000 requests"
bounded "$B_REDIS" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CONCURRENCY" -n 300000 -t get -q \
    >"$RESULTS/redis-benchmark.log" 2>&1 || { cat "$RESULTS/redis-benchmark.log" >&2; die "redis-benchmark failed"; }
# -q rewrites a progress line with \r; the last "GET: N requests per second[, p50=X msec]" is the result.
REDIS_LINE="$(tr '\r' '\n' <"$RESULTS/redis-benchmark.log" | grep -E '^GET: [0-9.]+ requests per second' | tail -n1 || true)"
[ -n "$REDIS_LINE" ] || { cat "$RESULTS/redis-benchmark.log" >&2; die "no GET line in the redis-benchmark output"; }
REDIS_GET_RPS="$(sed -E 's/^GET: ([0-9.]+) requests per second.*/\1/' <<<"$REDIS_LINE")"
REDIS_P50="$(sed -nE 's/.*p50=([0-9.]+) msec.*/\1/p' <<<"$REDIS_LINE")"
log "redis-benchmark: $REDIS_GET_RPS GET/s${REDIS_P50:+, p50 $REDIS_P50 ms}"
printf 'PGBENCH_TPS=%s\nPGBENCH_LATENCY_AVG_MS=%s\nPGBENCH_SELECT_TPS=%s\nREDIS_GET_RPS=%s\nREDIS_GET_P50_MS=%s\nPGBENCH_WAL_BYTES_PER_TXN=%s\n' \
    "$PGBENCH_TPS" "$PGBENCH_LAT" "$PGBENCH_SELECT_TPS" "$REDIS_GET_RPS" "$REDIS_P50" "$PGBENCH_WAL_PER_TXN" >"$RESULTS/baselines.env"

# 7. Scenarios, then lookups again with Redis stopped (the PostgreSQL fallback).
run_scenario() {  # run_scenario NAME [extra flags]
    local name=$1; shift
    server_up
    bounded "$B_SCENARIO" "$BIN/loyalty-loadtest" run --scenario "$SCENARIO_DIR/$name.json" \
        --host 127.0.0.1 --port "$POS_PORT" --secret-file "$SECRET" --database-url "$LT_URL" \
        --admin-url "http://127.0.0.1:$ADMIN_PORT" --admin-token-file "$ADMIN_TOKEN" \
        --connections "$CONNECTIONS" --duration-s "$DURATION" --server-pid "$SERVER_PID" "$@"
}
lt_sql() { PGOPTIONS='-c client_min_messages=warning' timeout 30 psql "$LT_URL" -v ON_ERROR_STOP=1 -qtAc "$1"; }
# The member cache's lookups per level (local memory, then Redis) from /metrics, exported there once a second.
cache_levels() { curl -fsS -m 2 "http://127.0.0.1:$ADMIN_PORT/metrics" 2>/dev/null | grep '^loyalty_member_cache_level_total' || true; }
report_cache_levels() {  # report_cache_levels NAME BEFORE AFTER: the hit ratio of each level over the scenario
    python3 - "$@" <<'PY' || true
import re, sys
def parse(text):
    counts = {}
    for line in text.splitlines():
        match = re.match(r'loyalty_member_cache_level_total\{(.*)\}\s+([0-9.eE+]+)', line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            counts[(labels.get('level'), labels.get('result'))] = float(match.group(2))
    return counts
name, before, after = sys.argv[1], parse(sys.argv[2]), parse(sys.argv[3])
if any(after.get(key, 0) < value for key, value in before.items()):
    before = {}  # the server restarted during the scenario: its counters began again at zero
parts = []
for level in ('local', 'redis'):
    hits = after.get((level, 'hit'), 0) - before.get((level, 'hit'), 0)
    misses = after.get((level, 'miss'), 0) - before.get((level, 'miss'), 0)
    if hits + misses > 0:
        parts.append(f'{level} {hits / (hits + misses):.1%} of {int(hits + misses)} lookups')
if parts:
    print(f'[loadtest] {name}: member cache hit ratio by level: ' + ', '.join(parts), file=sys.stderr)
PY
}
json_field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
for name in "${SCENARIOS[@]}"; do
    if [ ! -f "$SCENARIO_DIR/$name.json" ]; then log "skipping $name: $SCENARIO_DIR/$name.json does not exist"; continue; fi
    log "scenario $name"
    # POS scenarios pipeline; the admin read mix sends one request per connection (HTTP/1.1).
    pipeline=$PIPELINE; grep -q '"protocol": *"admin"' "$SCENARIO_DIR/$name.json" && pipeline=1
    if [ "$name" = commit-only ]; then   # WAL written per commit, next to TPC-B's per transaction
        wal_before="$(sql 'SELECT pg_current_wal_lsn()')"; commits_before="$(lt_sql 'SELECT count(*) FROM pos_checkouts')"
    fi
    levels_before="$(cache_levels)"
    run_scenario "$name" --pipeline "$pipeline" --json "$RESULTS/$name.json"
    sleep 1.2; report_cache_levels "$name" "$levels_before" "$(cache_levels)"
    if [ "$name" = commit-only ]; then
        commits="$(( $(lt_sql 'SELECT count(*) FROM pos_checkouts') - commits_before ))"
        COMMIT_WAL_PER_COMMIT="$(sql "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$wal_before') / greatest($commits, 1))")"
        log "commit-only: $COMMIT_WAL_PER_COMMIT WAL bytes per commit over $commits commits (TPC-B: $PGBENCH_WAL_PER_TXN per transaction)"
    fi
    # The latency a till feels: open loop at fixed shares of the maximum just measured.
    if [[ " ${SWEEP_SCENARIOS[*]} " == *" $name "* ]]; then
        max_rps="$(json_field "$RESULTS/$name.json" requestsPerS)"
        for share in "${SWEEP_SHARES[@]}"; do
            rate="$(python3 -c "print(max(1, int($max_rps * $share / 100)))")"
            log "scenario $name open loop at $share % of $(printf '%.0f' "$max_rps")/s: $rate/s"
            server_up
            bounded "$B_SWEEP" "$BIN/loyalty-loadtest" run --scenario "$SCENARIO_DIR/$name.json" \
                --host 127.0.0.1 --port "$POS_PORT" --secret-file "$SECRET" --database-url "$LT_URL" \
                --connections "$CONNECTIONS" --duration-s "$SWEEP_DURATION" --warmup-s 2 --no-prewarm --rate "$rate" \
                --server-pid "$SERVER_PID" --label "$name@$share%" --json "$RESULTS/sweep-$name-$share.json" >/dev/null
            if [ "$name" = commit-only ]; then
                # The raw database at the same arrival rate: TPC-B-like transactions, open loop (pgbench -R), so a
                # commit's p99 can be read against what PostgreSQL alone gives on this machine at that moment.
                log "pgbench TPC-B open loop at $rate/s (commit-only's $share % rate)"
                rm -f "$RESULTS"/pgbench-open.*
                bounded "$B_SWEEP" "$PGBENCH" -c "$CONNECTIONS" -j 2 -T "$SWEEP_DURATION" -R "$rate" -M prepared \
                    --log --log-prefix="$RESULTS/pgbench-open" "$(db_url "$PGB_DB")" >"$RESULTS/pgbench-open-$share.log" 2>&1 \
                    || { cat "$RESULTS/pgbench-open-$share.log" >&2; die "pgbench -R $rate failed"; }
                python3 loadtests/pgbench-open-loop.py "$RESULTS/pgbench-open" "pgbench-tpcb@$share%" "$rate" "$SWEEP_DURATION" \
                    "$RESULTS/sweep-pgbench-tpcb-$share.json" >&2 || die "could not summarise the pgbench -R $rate log"
                rm -f "$RESULTS"/pgbench-open.*
            fi
        done
    fi
done
if [ "$NO_REDIS" = 1 ] && [ -f "$SCENARIO_DIR/lookup-only.json" ]; then
    log "stopping Redis for lookup-no-redis"
    REDIS_STOPPED=1
    timeout 20 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    sleep 2
    # Served from PostgreSQL: the issue's bar is a quarter of Redis's GET rate here.
    run_scenario lookup-only --pipeline "$PIPELINE" --label lookup-no-redis --no-prewarm --target-ratio 0.25 --json "$RESULTS/lookup-no-redis.json"
    log "starting Redis again"
    start_redis_again || die "Redis did not start again"
    deadline=$((SECONDS + 15))   # does the server notice Redis is back?
    until curl -fsS -m 2 "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1 || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.5; done
    curl -fsS -m 2 "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1 || log "note: the server is not ready 15 s after Redis came back"
fi

# 7b. A bonus blast over every seeded member (the campaign machinery the server runs), members paid per second.
if [ "$BLAST" = 1 ]; then
    log "bonus blast over all $MEMBERS members"
    bounded $((120 + MEMBERS / 500)) "$BIN/loyalty-loadtest" blast --database-url "$LT_URL" >"$RESULTS/blast.txt"
    cat "$RESULTS/blast.txt"
else
    echo "Bonus blast: not run (LOADTEST_BLAST=0)." >"$RESULTS/blast.txt"
fi

# 7c. Every scenario must leave the ledger consistent: rebuild balances from postings and check every invariant.
log "auditing the load-test ledger"
bounded $((B_MIGRATE + MEMBERS / 1000)) "$BIN/loyalty" audit --database-url "$LT_URL" >"$RESULTS/audit.txt" 2>&1 \
    || { cat "$RESULTS/audit.txt" >&2; die "loyalty audit found violations after the scenarios (see above)"; }
tail -n1 "$RESULTS/audit.txt"

# 8. The ratio table.
shopt -s nullglob
results=("$RESULTS"/*.json)
[ ${#results[@]} -gt 0 ] || die "no scenario results (no scenario files in $SCENARIO_DIR/?)"
bounded "$B_REPORT" "$BIN/loyalty-loadtest" report --baseline "pgbench-tps=$PGBENCH_TPS" \
    --baseline "pgbench-select-tps=$PGBENCH_SELECT_TPS" --baseline "redis-get-rps=$REDIS_GET_RPS" "${results[@]}" >"$RESULTS/report.md"
{
    echo
    echo "WAL per write: commit-only ${COMMIT_WAL_PER_COMMIT:-—} bytes per commit; pgbench TPC-B ${PGBENCH_WAL_PER_TXN:-—} bytes per transaction."
    echo
    cat "$RESULTS/blast.txt"
    echo
    echo "Ledger audit after all scenarios: $(tail -n1 "$RESULTS/audit.txt")"
} >>"$RESULTS/report.md"
# The latency-versus-throughput chart of the sweep (gnuplot, from Debian; skipped with a note if it is missing).
if ! command -v gnuplot >/dev/null && [ "$(id -u)" = 0 ]; then
    timeout 300 env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null 2>&1 || true
fi
if command -v gnuplot >/dev/null && ls "$RESULTS"/sweep-*.json >/dev/null 2>&1; then
    python3 loadtests/sweep-chart.py "$RESULTS" && log "chart: .local/loadtest-results/latency-sweep.png"
else
    log "no chart: gnuplot is not installed (apt-get install gnuplot-nox) or no sweep ran"
fi
cat "$RESULTS/report.md"
# 9. Stopping the server, dropping the scratch databases and stopping services is the EXIT trap's job.
