#!/usr/bin/env bash
# The database ceiling of the till's commit: checkout_commit_batch (migration 0013) driven by pgbench, next to
# pgbench's TPC-B in the same run, on the server of LOYALTY_DATABASE_URL (the user must be able to create
# databases). Creates its own two databases (lean_ceiling_<pid>, lean_tpcb_<pid>) and drops them at the end.
#
# Each round runs, for DURATION seconds each, with CLIENTS clients over TCP and prepared statements:
#   tpcb     pgbench's built-in TPC-B-like script (scale 16)
#   batch16  checkout_commit_batch with 16 commits per call (loadtests/sql/checkout_commit_batch16.pgbench)
#   batch1   checkout_commit_batch with 1 commit per call
#   old1     pos_commit of 0006, one commit per call, same arguments (compact explanation)
# and prints calls/s, commits/s (committed purchases, counted in pos_checkouts), the ratio of commits/s to TPC-B's
# transactions/s, and WAL bytes per commit or transaction between pg_current_wal_lsn() before and after the stage:
# in all, and (with pg_walinspect, when the user may create it) split into WAL records and full-page images. Each
# stage starts right after a CHECKPOINT (when the user may run one), so each pays the full-page images of its own
# first touches, as in production after every checkpoint. WAL is server-wide: other activity on the server counts.
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

echo "setting up: migrations and 2 x $MEMBERS members in $ledger_db, pgbench -i -s $SCALE in $tpcb_db"
"$here/sql/apply-migrations.sh" "$ledger_url"
psql "$ledger_url" -X -q -v ON_ERROR_STOP=1 -v members="$((MEMBERS * 2))" -f "$here/sql/checkout_seed.sql"
walinspect=no
if psql "$ledger_url" -X -q -c "CREATE EXTENSION IF NOT EXISTS pg_walinspect" >/dev/null 2>&1; then walinspect=yes; fi
pgbench -h "$pg_host" -p "$pg_port" -i -q -s "$SCALE" "$tpcb_db" >/dev/null 2>&1

lsn() { psql "$ledger_url" -X -qAt -c "SELECT pg_current_wal_lsn()"; }
# "total records fpi" bytes since $1 (records and fpi empty without pg_walinspect)
wal_since() {
    # A checkpoint during the stage may already have recycled its first WAL segments: then the total only.
    if [ "$walinspect" = yes ] && psql "$ledger_url" -X -qAt -F ' ' -c "SELECT pg_wal_lsn_diff(e, '$1')::bigint, coalesce(sum(record_size), 0), coalesce(sum(fpi_size), 0)
            FROM (SELECT pg_current_wal_lsn() AS e) AS x LEFT JOIN LATERAL pg_get_wal_stats('$1', e) ON true GROUP BY e" 2>/dev/null; then
        return
    fi
    psql "$ledger_url" -X -qAt -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$1')::bigint"
}
checkpoint() { psql "$ledger_url" -X -q -c "CHECKPOINT" >/dev/null 2>&1 || true; }
purchases() { psql "$ledger_url" -X -qAt -c "SELECT count(*) FROM pos_checkouts"; }

# run <stage> -> sets calls_per_s, transactions, units (commits or TPC-B transactions), wal
run() {
    local stage="$1" out before_wal before_rows after_rows
    local args=(-h "$pg_host" -p "$pg_port" -c "$CLIENTS" -j "$THREADS" -T "$DURATION" -M prepared -n)
    checkpoint
    before_wal="$(lsn)"
    case "$stage" in
        tpcb) out="$(pgbench "${args[@]}" "$tpcb_db" 2>&1)" ;;
        batch16) before_rows="$(purchases)"; out="$(pgbench "${args[@]}" -D members="$MEMBERS" -f "$here/sql/checkout_commit_batch16.pgbench" "$ledger_db" 2>&1)" ;;
        batch1) before_rows="$(purchases)"; out="$(pgbench "${args[@]}" -D members="$MEMBERS" -f "$here/sql/checkout_commit_batch1.pgbench" "$ledger_db" 2>&1)" ;;
        # pos_commit marks each member's tier bound unknown (the lean commit then checks exactly once), so it
        # gets members of its own: the second MEMBERS seeded.
        old1) before_rows="$(purchases)"; out="$(pgbench "${args[@]}" -D members="$MEMBERS" -f "$here/sql/pos_commit1.pgbench" "$ledger_db" 2>&1)" ;;
    esac
    read -r wal wal_records wal_fpi <<<"$(wal_since "$before_wal")"
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
    printf '%-10s %10s %6s %10s %12s %11s %10s %10s %7s\n' stage "calls/s" "batch" "commits/s" "x TPC-B tps" "WAL B/unit" "records" "FPI" "failed"
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
        rec_per="$(awk -v w="${wal_records:-}" -v u="$units" 'BEGIN { if (w == "") print "-"; else printf "%.0f", (u > 0 ? w / u : 0) }')"
        fpi_per="$(awk -v w="${wal_fpi:-}" -v u="$units" 'BEGIN { if (w == "") print "-"; else printf "%.0f", (u > 0 ? w / u : 0) }')"
        failed=$((transactions * batch - units))
        if [ "$stage" = tpcb ]; then
            tpcb_tps="$per_s"
            tpcb_wal="$wal_per"
            tpcb_rec="$rec_per"
            ratio="1.00"
            failed=0
        elif [ -n "$tpcb_tps" ]; then
            ratio="$(awk -v a="$per_s" -v b="$tpcb_tps" 'BEGIN { printf "%.2f", a / b }')"
        else
            ratio="-"
        fi
        printf '%-10s %10s %6s %10s %12s %11s %10s %10s %7s\n' "$stage" "$(fmt "$calls_per_s" 1)" "$batch" "$(fmt "$per_s" 0)" "$ratio" "$wal_per" "$rec_per" "$fpi_per" "$failed"
        if [ "$stage" != tpcb ] && [ -n "$tpcb_wal" ] && [ "$tpcb_wal" != 0 ]; then
            printf '%-10s %s\n' "" "WAL per commit $(awk -v a="$wal_per" -v b="$tpcb_wal" 'BEGIN { printf "%.2f", a / b }') x TPC-B's per transaction ($tpcb_wal B); records without full-page images $(awk -v a="$rec_per" -v b="${tpcb_rec:-}" 'BEGIN { if (a == "-" || b == "" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }') x"
        fi
    done
done
echo
echo "ledger invariants after the runs (violations; all 0 when sound):"
psql "$ledger_url" -X -q -P footer=off -f "$here/sql/ledger_invariants.sql"
echo "purchases in the ledger database: $(purchases)"

# Backend CPU per unit, one client, asynchronous commit: what each stage costs PostgreSQL itself, which a busy
# machine disturbs far less than throughput (read from /proc/<backend pid>/stat; needs the server on this machine).
if [ "${CPU_SECONDS:-5}" != 0 ] && [ -r /proc/self/stat ]; then
    echo
    echo "backend CPU per unit (1 client, synchronous_commit off, ${CPU_SECONDS:-5} s each)"
    for stage in $STAGES; do
        case "$stage" in
            tpcb) db="$tpcb_db"; what=(-b tpcb-like); batch=1 ;;
            batch16) db="$ledger_db"; what=(-f "$here/sql/checkout_commit_batch16.pgbench"); batch=16 ;;
            batch1) db="$ledger_db"; what=(-f "$here/sql/checkout_commit_batch1.pgbench"); batch=1 ;;
            old1) db="$ledger_db"; what=(-f "$here/sql/pos_commit1.pgbench"); batch=1 ;;
        esac
        PGOPTIONS="-c synchronous_commit=off" PGAPPNAME="lean-cpu-$$" pgbench -h "$pg_host" -p "$pg_port" -c 1 -T "${CPU_SECONDS:-5}" -M prepared -n \
            -D members="$MEMBERS" "${what[@]}" "$db" > "/tmp/lean-cpu-$$.out" 2>&1 &
        bench=$!
        sleep 0.5
        backend="$(psql "$admin" -X -qAt -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'lean-cpu-$$' LIMIT 1")"
        ticks=0
        while kill -0 "$bench" 2>/dev/null; do
            now="$(awk '{ print $14 + $15 }' "/proc/$backend/stat" 2>/dev/null || true)"
            [ -n "$now" ] && ticks="$now"
            sleep 0.1
        done
        wait "$bench" || true
        calls="$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "/tmp/lean-cpu-$$.out")"
        awk -v s="$stage" -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="${calls:-0}" -v b="$batch" \
            'BEGIN { if (n > 0) printf "%-10s %8.3f ms per call, %7.3f ms per unit\n", s, t * 1000 / hz / n, t * 1000 / hz / n / b }'
    done
    rm -f "/tmp/lean-cpu-$$.out"
fi

echo
echo "units: commits/s counts purchases committed (pos_checkouts rows); for tpcb, transactions. WAL B/unit = all WAL"
echo "bytes per unit, split into records and full-page images (pg_walinspect: $walinspect). 'failed' = items answered"
echo "with an error (e.g. insufficient balance after repeated redemptions by one member)."
