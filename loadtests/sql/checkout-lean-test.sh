#!/usr/bin/env bash
# Runs the tests of migration 0013 on a fresh database: checkout_lean_test.sql (each operation, each error code,
# ledger invariants, the lean functions against the pos_* functions on the same random sequence), then concurrent
# duplicates (a second request with the same key while the first is still open waits for it and gets its stored
# answer). Creates and drops its own database; the server is LOYALTY_DATABASE_URL's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${LOYALTY_DATABASE_URL:?set LOYALTY_DATABASE_URL}"
export PATH="/usr/lib/postgresql/15/bin:$PATH"
db="lean_test_$$"
admin="$LOYALTY_DATABASE_URL"
url="$(printf '%s' "$admin" | sed -E "s#^(postgres(ql)?://[^/]+/)[^?]*#\1$db#")"
psql "$admin" -X -q -c "CREATE DATABASE $db"
trap 'psql "$admin" -X -q -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"' EXIT
"$here/apply-migrations.sh" "$url"

psql "$url" -X -q -v ON_ERROR_STOP=1 -f "$here/checkout_lean_test.sql" | grep -E 'passed|compared|^ +[0-9]'
violations="$(psql "$url" -X -qAt -F ' ' -f "$here/ledger_invariants.sql")"
[ "$violations" = "0 0 0 0 0 0 0" ] || { echo "FAILED: ledger invariants (violations: $violations)"; exit 1; }

commit_sql() { # key hash member
    cat <<SQL
SELECT coalesce(sqlstate, 'ok') || ' replayed=' || coalesce(response ->> 'replayed', '-') || ' entry=' || coalesce(response ->> 'accrual_entry_id', '-')
FROM checkout_commit_batch(ARRAY['pos:c1'], ARRAY['commit:$1'], ARRAY['$2'::bytea], ARRAY['c1'], ARRAY['$1'], ARRAY[$3::bigint],
    ARRAY[NULL::text], ARRAY['points'], ARRAY[10::bigint], ARRAY[now()], ARRAY[NULL::timestamptz], ARRAY[now()], ARRAY['r1'],
    ARRAY['{}'::jsonb], ARRAY[100::bigint], ARRAY['[]'::jsonb], ARRAY[100::bigint], ARRAY[NULL::bigint], ARRAY[0::bigint]);
SQL
}
psql "$url" -X -q -c "INSERT INTO members (card_number, tier_id) SELECT 'DUP-' || g, 1 FROM generate_series(1, 2) g"
member=$(psql "$url" -X -qAt -c "SELECT min(member_id) FROM members WHERE card_number LIKE 'DUP-%'")
other=$(psql "$url" -X -qAt -c "SELECT max(member_id) FROM members WHERE card_number LIKE 'DUP-%'")
check() { if [ "$2" != "$3" ]; then echo "FAILED: $1: got '$2', expected '$3'"; exit 1; fi; }

# Same key, same request, while the first is open: waits, then the first's answer with replayed=true.
{ echo "BEGIN;"; commit_sql d1 '\x01' "$member"; echo "SELECT pg_sleep(1.5); COMMIT;"; } | psql "$url" -X -qAt > /tmp/$db.first &
sleep 0.5
second=$(commit_sql d1 '\x01' "$member" | psql "$url" -X -qAt)
wait
first=$(head -1 /tmp/$db.first)
check "concurrent duplicate answered with the first's response" "$second" "${first/replayed=false/replayed=true}"
check "one purchase for the duplicate" "$(psql "$url" -X -qAt -c "SELECT count(*) FROM pos_checkouts WHERE terminal_id = 'c1' AND pos_transaction_id = 'd1'")" 1

# Same key, another request (another member, so no member lock is shared), while the first is open: LY010.
{ echo "BEGIN;"; commit_sql d2 '\x01' "$member"; echo "SELECT pg_sleep(1.5); COMMIT;"; } | psql "$url" -X -qAt > /tmp/$db.first &
sleep 0.5
second=$(commit_sql d2 '\x02' "$other" | psql "$url" -X -qAt)
wait
check "concurrent conflicting request refused" "$second" "LY010 replayed=- entry=-"

# Same key and request for a hold while the first is open: one hold, the second answer a replay of it.
psql "$url" -X -q -c "SELECT checkout_commit_batch(ARRAY['pos:c1'], ARRAY['commit:d3'], ARRAY['\x01'::bytea], ARRAY['c1'], ARRAY['d3'], ARRAY[$member::bigint], ARRAY[NULL::text], ARRAY['points'], ARRAY[500::bigint], ARRAY[now()], ARRAY[NULL::timestamptz], ARRAY[now()], ARRAY['r1'], ARRAY['{}'::jsonb], ARRAY[0::bigint], ARRAY['[]'::jsonb], ARRAY[0::bigint], ARRAY[NULL::bigint], ARRAY[0::bigint])" >/dev/null
hold_sql="SELECT (response ->> 'hold_id') || ' replayed=' || (response ->> 'replayed') FROM checkout_hold('pos:c1', 'hold:d4', '\x01', 'c1', 'd4', $member, 100, now() + interval '5 minutes')"
{ echo "BEGIN;"; echo "$hold_sql;"; echo "SELECT pg_sleep(1.5); COMMIT;"; } | psql "$url" -X -qAt > /tmp/$db.first &
sleep 0.5
second=$(psql "$url" -X -qAt -c "$hold_sql")
wait
first=$(head -1 /tmp/$db.first)
check "concurrent duplicate hold" "$second" "${first/replayed=false/replayed=true}"
check "one hold" "$(psql "$url" -X -qAt -c "SELECT count(*) FROM holds WHERE pos_transaction_id = 'd4'")" 1
rm -f /tmp/$db.first
echo "concurrent duplicate tests passed"

# Concurrent batches of 16 over 50 hot members (8 clients, members repeated within and across batches): no
# deadlock and no fallback of the set-based pass, and the ledger invariants hold afterwards.
pgbench_log="/tmp/$db.pgbench"
PGOPTIONS="-c client_min_messages=debug1" pgbench -c 8 -j 2 -T 6 -M prepared -n -D members=50 \
    -f "$here/checkout_commit_batch16.pgbench" "$url" > "$pgbench_log" 2>&1 || { cat "$pgbench_log"; exit 1; }
grep -q "number of failed transactions: 0 " "$pgbench_log" || { echo "FAILED: pgbench transactions failed"; cat "$pgbench_log"; exit 1; }
check "no set-based pass rolled back under hot members" "$(grep -c 'set-based pass rolled back' "$pgbench_log" || true)" 0
check "no deadlock" "$(grep -c '40P01' "$pgbench_log" || true)" 0
violations="$(psql "$url" -X -qAt -F ' ' -f "$here/ledger_invariants.sql")"
check "ledger invariants after hot concurrent batches" "$violations" "0 0 0 0 0 0 0"
echo "hot concurrent batches: $(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$pgbench_log") calls, no deadlock, invariants hold"
rm -f "$pgbench_log"
