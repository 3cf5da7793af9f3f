#!/usr/bin/env bash
# Chaos run: proves exactly-once under faults. Starts its own PostgreSQL cluster and Redis on free loopback ports
# in a temporary directory (never the shared ones of scripts/services.sh, which others may be testing against),
# a fresh seeded database and the server; runs `loyalty-loadtest chaos` (tills that resend unanswered requests
# with the same ids); meanwhile, in turn, SIGKILLs and restarts the server, stops and restarts Redis, and
# restarts PostgreSQL (fast and immediate shutdowns alternately). Then the tills' journals are checked against
# the ledger and `loyalty audit` runs. Stops everything it started, also on failure or Ctrl-C.
#
#   loadtests/chaos.sh [--duration S] [--tills N] [--members N] [--fault-gap S] [--build debug|release] [--skip-build]
#
#   --duration S     seconds of checkouts (default 150); faults are injected during them, at least 3 of each kind
#   --tills N        simulated tills, one terminal each (default 24)
#   --members N      members to seed, split evenly over the tills (default 2000)
#   --fault-gap S    seconds between one fault's recovery and the next fault (default 5)
#   --build MODE     build configuration of loyalty and loyalty-loadtest (default release)
#   --skip-build     use the binaries already built in that configuration
#   --keep           keep the temporary directory (data, logs) for inspection
#
# Exit status 0 only when every check passed with 0 violations, `loyalty audit` was clean and at least 3 faults
# of each kind were injected. Summary and logs: .local/chaos-results/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION=150; TILLS=24; MEMBERS=2000; FAULT_GAP=5; MODE=release; SKIP_BUILD=0; KEEP=0
MIN_FAULTS_PER_KIND=3
WARMUP=8     # seconds of checkouts before the first fault
DRAIN=120    # seconds the tills get after the run for their last answers
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION="$2"; shift 2 ;;
        --tills) TILLS="$2"; shift 2 ;;
        --members) MEMBERS="$2"; shift 2 ;;
        --fault-gap) FAULT_GAP="$2"; shift 2 ;;
        --build) MODE="$2"; shift 2 ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

log() { printf '[chaos.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
for v in DURATION TILLS MEMBERS FAULT_GAP; do [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"; done
[ "$DURATION" -ge 60 ] || die "--duration must be at least 60 s (three rounds of faults)"
[[ "$MODE" =~ ^(debug|release)$ ]] || die "--build is debug or release"

PG_BIN="$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n1)")"
[ -x "$PG_BIN/pg_ctl" ] || die "PostgreSQL server binaries not found (apt-get install postgresql)"
for tool in redis-server redis-cli curl python3 psql timeout; do command -v "$tool" >/dev/null || die "$tool not found"; done

renice -n 5 $$ >/dev/null   # everything started from here shares a small machine with other work
BIN="$ROOT/.build/$MODE"
RESULTS="$ROOT/.local/chaos-results"
WORK="$(mktemp -d /tmp/loyalty-chaos.XXXXXX)"
chmod 755 "$WORK"
PG_DATA="$WORK/pg/data"; PG_RUN="$WORK/pg/run"; REDIS_DIR="$WORK/redis"
FAULT_LOG="$WORK/faults.log"; SERVER_LOG="$WORK/server.log"; SECRET="$WORK/secret"
mkdir -p "$RESULTS" "$PG_DATA" "$PG_RUN" "$REDIS_DIR"
: >"$FAULT_LOG"
rm -f "$RESULTS"/*

as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    chown -R postgres: "$WORK/pg"
fi
chmod 700 "$PG_DATA"

read -r PG_PORT REDIS_PORT POS_PORT ADMIN_PORT < <(python3 -c 'import socket
s = [socket.socket() for _ in range(4)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
DB_URL="postgres://loyalty@127.0.0.1:$PG_PORT/loyalty_chaos?sslmode=disable"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

PG_STARTED=0; REDIS_STARTED=0; SERVER_WRAPPER=""; SERVER_PID=""; CHAOS_PID=""

stop_server() {
    [ -n "$SERVER_WRAPPER" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" "$SERVER_WRAPPER" 2>/dev/null || true
    wait "$SERVER_WRAPPER" 2>/dev/null || true
    SERVER_WRAPPER=""; SERVER_PID=""
}

cleanup() {
    local rc=$?
    set +e; trap - EXIT INT TERM HUP
    if [ -n "$CHAOS_PID" ] && kill -0 "$CHAOS_PID" 2>/dev/null; then kill -TERM "$CHAOS_PID"; wait "$CHAOS_PID" 2>/dev/null; fi
    stop_server
    [ "$REDIS_STARTED" = 0 ] || timeout 20 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1
    [ "$PG_STARTED" = 0 ] || pg_ctl -m fast stop >/dev/null 2>&1
    cp "$FAULT_LOG" "$SERVER_LOG" "$PG_RUN/postgres.log" "$REDIS_DIR/redis.log" "$RESULTS/" 2>/dev/null
    if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    if [ "$rc" = 0 ]; then log "passed; summary and logs in .local/chaos-results/"; else log "FAILED (exit $rc); logs in .local/chaos-results/"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# 1. Build.
if [ "$SKIP_BUILD" = 0 ]; then
    for product in loyalty loyalty-loadtest; do
        log "building $product ($MODE)"
        timeout 3600 swift build -c "$MODE" --product "$product" >&2
    done
fi
for b in loyalty loyalty-loadtest; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing; build it or drop --skip-build"; done

# 2. Our own PostgreSQL and Redis.
log "PostgreSQL on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:$REDIS_PORT, data in $WORK"
as_pg "'$PG_BIN/initdb' -D '$PG_DATA' -U loyalty --auth=trust --encoding=UTF8 --locale=C.UTF-8" >"$PG_RUN/initdb.log" 2>&1 \
    || { cat "$PG_RUN/initdb.log" >&2; die "initdb failed"; }
cat >>"$PG_DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
max_connections = 100
shared_buffers = 64MB
fsync = on
synchronous_commit = on
log_min_messages = warning
CONF
pg_ctl() {  # pg_ctl ARGS...: as the cluster's owner, bounded
    local cmd="'$PG_BIN/pg_ctl' -D '$PG_DATA' -l '$PG_RUN/postgres.log' -w -t 60 $*"
    if [ "$(id -u)" = 0 ]; then timeout 90 su postgres -s /bin/bash -c "$cmd"; else timeout 90 bash -c "$cmd"; fi
}
PG_STARTED=1
pg_ctl start >/dev/null || { tail -n 20 "$PG_RUN/postgres.log" >&2; die "PostgreSQL did not start"; }
timeout 30 psql "postgres://loyalty@127.0.0.1:$PG_PORT/postgres?sslmode=disable" -qc "CREATE DATABASE loyalty_chaos" >/dev/null

start_redis() {
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --save '' --appendonly no --dir "$REDIS_DIR" \
        --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" >/dev/null
    for _ in $(seq 1 100); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.1; done
    return 1
}
REDIS_STARTED=1
start_redis || die "Redis did not start"

# 3. A fresh database: migrations, members, one terminal per till.
timeout 120 "$BIN/loyalty" migrate --database-url "$DB_URL" >/dev/null
log "seeding $MEMBERS members and $TILLS terminals"
timeout 300 "$BIN/loyalty-loadtest" seed --database-url "$DB_URL" --members "$MEMBERS" --terminals "$TILLS" --secret-file "$SECRET" 2>/dev/null

# 4. The server, started again after each SIGKILL.
B_SERVER=$((DURATION + DRAIN + 900))
start_server() {
    timeout --kill-after=10 "$B_SERVER" "$BIN/loyalty" serve --database-url "$DB_URL" --redis-url "$REDIS_URL" \
        --host 127.0.0.1 --pos-port "$POS_PORT" --admin-port "$ADMIN_PORT" --database-pool-size 16 </dev/null >>"$SERVER_LOG" 2>&1 &
    SERVER_WRAPPER=$!
    SERVER_PID=""
    for _ in $(seq 1 50); do SERVER_PID="$(pgrep -P "$SERVER_WRAPPER" || true)"; [ -z "$SERVER_PID" ] || break; sleep 0.1; done
    [ -n "$SERVER_PID" ] || return 1
}
wait_ready() {  # wait_ready SECONDS: the server answers /ready (PostgreSQL and Redis both reachable)
    local deadline=$((SECONDS + $1))
    until curl -fsS -m 2 "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
start_server || die "the server did not start"
wait_ready 60 || { tail -n 20 "$SERVER_LOG" >&2; die "the server was not ready within 60 s"; }
log "server ready: POS 127.0.0.1:$POS_PORT, admin 127.0.0.1:$ADMIN_PORT"

# 5. The tills.
"$BIN/loyalty-loadtest" chaos --database-url "$DB_URL" --port "$POS_PORT" --secret-file "$SECRET" --tills "$TILLS" \
    --duration-s "$DURATION" --drain-s "$DRAIN" --fault-log "$FAULT_LOG" --min-faults-per-kind "$MIN_FAULTS_PER_KIND" \
    --loyalty-bin "$BIN/loyalty" >"$RESULTS/summary.txt" &
CHAOS_PID=$!
T0=$SECONDS

# 6. Faults, one at a time, each followed by its recovery; the next after FAULT_GAP seconds.
PG_MODES=(fast immediate)
fault() {  # fault KIND: inject it, wait for recovery, log "<time> <kind> <detail> down=<s>s"
    local kind=$1 began=$SECONDS detail=""
    case "$kind" in
        server-sigkill)
            detail="pid=$SERVER_PID"
            kill -KILL "$SERVER_PID"
            wait "$SERVER_WRAPPER" 2>/dev/null || true
            sleep 1
            start_server || die "the server did not start again"
            ;;
        redis-restart)
            detail="stopped=3s"
            timeout 20 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
            sleep 3
            start_redis || die "Redis did not start again"
            ;;
        postgres-restart)
            local mode=${PG_MODES[$((PG_RESTARTS % 2))]}
            PG_RESTARTS=$((PG_RESTARTS + 1))
            detail="mode=$mode"
            pg_ctl "-m $mode restart" >/dev/null || { tail -n 20 "$PG_RUN/postgres.log" >&2; die "PostgreSQL did not restart"; }
            ;;
    esac
    wait_ready 90 || { tail -n 20 "$SERVER_LOG" >&2; die "the server was not ready 90 s after $kind"; }
    echo "$(date -u +%FT%TZ) $kind $detail down=$((SECONDS - began))s" >>"$FAULT_LOG"
    log "fault $((INJECTED + 1)): $kind $detail, ready again after $((SECONDS - began)) s (run at $((SECONDS - T0)) s)"
}
KINDS=(server-sigkill redis-restart postgres-restart)
INJECTED=0; PG_RESTARTS=0
sleep "$WARMUP"
while kill -0 "$CHAOS_PID" 2>/dev/null; do
    elapsed=$((SECONDS - T0))
    # Stop once the checkouts are nearly over and every kind had its three turns (or, as a bound, in the drain).
    if { [ "$elapsed" -ge $((DURATION - 10)) ] && [ "$INJECTED" -ge $((3 * MIN_FAULTS_PER_KIND)) ]; } || [ "$elapsed" -ge $((DURATION + DRAIN / 2)) ]; then break; fi
    [ "$elapsed" -lt "$DURATION" ] || log "note: fault $((INJECTED + 1)) lands after the checkouts ended (raise --duration)"
    fault "${KINDS[$((INJECTED % 3))]}"
    INJECTED=$((INJECTED + 1))
    sleep "$FAULT_GAP"
done
echo "end" >>"$FAULT_LOG"
log "$INJECTED faults injected; waiting for the tills and the checks"

# 7. The verdict is the chaos command's exit status.
rc=0
wait "$CHAOS_PID" || rc=$?
CHAOS_PID=""
cat "$RESULTS/summary.txt"
exit "$rc"
