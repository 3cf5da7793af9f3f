#!/usr/bin/env bash
# The database ceiling of the till's commit: checkout_commit_batch (migration 0012) driven by pgbench, next to
# pgbench's TPC-B in the same run, on the server of LOYALTY_DATABASE_URL (the user must be able to create
# databases). Creates its own two databases (lean_ceiling_<pid>, lean_tpcb_<pid>) and drops them at the end.
#
# Each round runs, for DURATION seconds each, with CLIENTS clients over TCP and prepared statements:
#   tpcb     pgbench's built-in TPC-B-like script (scale 16)
#   batch16  checkout_commit_batch with 16 commits per call (loadtests/sql/checkout_commit_batch16.pgbench)
#   batch1   checkout_commit_batch with 1 commit per call
#   old1     pos_commit of 0006, one commit per call, same arguments (compact explanation)
# and prints calls/s, commits/s (committed purchases, counted in pos_checkouts), the ratio of commits/s to TPC-B's
# transactions/s, and WAL bytes per commit or transaction (pg_current_wal_lsn before and after; server-wide, so
# other activity on the server counts too).
#
#   LOYALTY_DATABASE_URL=postgres://... loadtests/sql-ceiling.sh
#   DURATION=20 CLIENTS=16 THREADS=2 MEMBERS=100000 ROUNDS=2 SCALE=16 STAGES="tpcb batch16 batch1 old1"
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${LOYALTY_DATABASE_URL:?set LOYALTY_DATABASE_URL}"
DURATION="${DURATION:-20}"
CLIENTS="${CLIENTS:-16}"
THREADS="${THREADS:-2}"
MEMBERS="${MEMBERS:-100000}"
ROUNDS="${ROUNDS:-2}"
SCALE="${SCALE:-16}"
STAGES="${STAGES:-tpcb batch16 batch1 old1}"
export PATH="/usr/lib/postgresql/15/bin:$PATH"
export PGCONNECT_TIMEOUT=10

admin="$LOYALTY_DATABASE_URL"
url_for() { printf '%s' "$admin" | sed -E "s#^(postgres(ql)?://[^/]+/)[^?]*#\1$1#"; }
ledger_db="lean_ceiling_$$"
tpcb_db="lean_tpcb_$$"
ledger_url="$(url_for "$ledger_db")"
tpcb_url="$(url_for "$tpcb_db")"
# pgbench takes connection options, not a URL: host and port from the URL (TCP), the rest through libpq's
# environment (PGUSER, PGPASSWORD, PGDATABASE), which a URL-less connection reads.
eval "$(python3 - "$admin" <<'PY'
import sys, urllib.parse, shlex
u = urllib.parse.urlparse(sys.argv[1])
print("pg_host=" + shlex.quote(u.hostname or "127.0.0.1"))
print("pg_port=" + shlex.quote(str(u.port or 5432)))
print("export PGUSER=" + shlex.quote(urllib.parse.unquote(u.username or "")))
print("export PGPASSWORD=" + shlex.quote(urllib.parse.unquote(u.password or "")))
PY
)"
[ "$pg_host" = "localhost" ] && pg_host=127.0.0.1

cleanup() {
    psql "$admin" -X -q -c "DROP DATABASE IF EXISTS $ledger_db WITH (FORCE)" -c "DROP DATABASE IF EXISTS $tpcb_db WITH (FORCE)" || true
}
trap cleanup EXIT
psql "$admin" -X -q -c "CREATE DATABASE $ledger_db" -c "CREATE DATABASE $tpcb_db"

echo "setting up: migrations and $MEMBERS members in $ledger_db, pgbench -i -s $SCALE in $tpcb_db"
"$here/sql/apply-migrations.sh" "$ledger_url"
psql "$ledger_url" -X -q -v ON_ERROR_STOP=1 -v members="$MEMBERS" -f "$here/sql/checkout_seed.sql"
pgbench -h "$pg_host" -p "$pg_port" -i -q -s "$SCALE" "$tpcb_db" >/dev/null 2>&1

lsn() { psql "$ledger_url" -X -qAt -c "SELECT pg_current_wal_lsn()"; }
wal_since() { psql "$ledger_url" -X -qAt -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$1')"; }
purchases() { psql "$ledger_url" -X -qAt -c "SELECT count(*) FROM pos_checkouts"; }

# run <stage> -> sets calls_per_s, transactions, units (commits or TPC-B transactions), wal
run() {
    local stage="$1" out before_wal before_rows after_rows
    local args=(-h "$pg_host" -p "$pg_port" -c "$CLIENTS" -j "$THREADS" -T "$DURATION" -M prepared -n)
    before_wal="$(lsn)"
    case "$stage" in
        tpcb) out="$(pgbench "${args[@]}" "$tpcb_db" 2>&1)" ;;
        batch16) before_rows="$(purchases)"; out="$(pgbench "${args[@]}" -D members="$MEMBERS" -f "$here/sql/checkout_commit_batch16.pgbench" "$ledger_db" 2>&1)" ;;
        batch1) before_rows="$(purchases)"; out="$(pgbench "${args[@]}" -D members="$MEMBERS" -f "$here/sql/checkout_commit_batch1.pgbench" "$ledger_db" 2>&1)" ;;
        old1) before_rows="$(purchases)"; out="$(pgbench "${args[@]}" -D members="$MEMBERS" -f "$here/sql/pos_commit1.pgbench" "$ledger_db" 2>&1)" ;;
    esac
    wal="$(wal_since "$before_wal")"
    calls_per_s="$(printf '%s\n' "$out" | sed -nE 's/^tps = ([0-9.]+) .*/\1/p' | head -1)"
    transactions="$(printf '%s\n' "$out" | sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p')"
    if [ -z "$calls_per_s" ] || [ -z "$transactions" ]; then
        printf '%s\n' "$out" >&2
        echo "pgbench failed in stage $stage" >&2
        exit 1
    fi
    if [ "$stage" = tpcb ]; then
        units="$transactions"
    else
        after_rows="$(purchases)"
        units=$((after_rows - before_rows))
    fi
}

fmt() { awk -v v="$1" -v p="${2:-0}" 'BEGIN { printf "%.*f", p, v }'; }
for round in $(seq 1 "$ROUNDS"); do
    echo
    echo "round $round of $ROUNDS ($CLIENTS clients, $THREADS threads, ${DURATION} s each, TCP $pg_host:$pg_port, -M prepared; load $(cut -d' ' -f1-3 /proc/loadavg))"
    printf '%-10s %12s %8s %12s %14s %12s %10s\n' stage "calls/s" "batch" "commits/s" "x TPC-B tps" "WAL B/unit" "failed"
    tpcb_tps=""
    tpcb_wal=""
    for stage in $STAGES; do
        run "$stage"
        case "$stage" in
            tpcb) batch=1 ;;
            batch16) batch=16 ;;
            *) batch=1 ;;
        esac
        per_s="$(awk -v c="$calls_per_s" -v u="$units" -v t="$transactions" 'BEGIN { printf "%.1f", (t > 0 ? c * u / t : 0) }')"
        wal_per="$(awk -v w="$wal" -v u="$units" 'BEGIN { printf "%.0f", (u > 0 ? w / u : 0) }')"
        failed=$((transactions * batch - units))
        if [ "$stage" = tpcb ]; then
            tpcb_tps="$per_s"
            tpcb_wal="$wal_per"
            ratio="1.00"
            failed=0
        elif [ -n "$tpcb_tps" ]; then
            ratio="$(awk -v a="$per_s" -v b="$tpcb_tps" 'BEGIN { printf "%.2f", a / b }')"
        else
            ratio="-"
        fi
        printf '%-10s %12s %8s %12s %14s %12s %10s\n' "$stage" "$(fmt "$calls_per_s" 1)" "$batch" "$(fmt "$per_s" 0)" "$ratio" "$wal_per" "$failed"
        if [ "$stage" != tpcb ] && [ -n "$tpcb_wal" ] && [ "$tpcb_wal" != 0 ]; then
            printf '%-10s %s\n' "" "WAL per commit $(awk -v a="$wal_per" -v b="$tpcb_wal" 'BEGIN { printf "%.2f", a / b }') x TPC-B's per transaction ($tpcb_wal B)"
        fi
    done
done
echo
echo "units: commits/s counts purchases committed (pos_checkouts rows); for tpcb, transactions. 'failed' = items answered"
echo "with an error (e.g. insufficient balance after repeated redemptions by one member)."
