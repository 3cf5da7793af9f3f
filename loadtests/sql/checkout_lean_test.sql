-- Tests of migration 0013 (checkout_commit_batch, checkout_hold, checkout_cancel, checkout_refund). Run on a fresh
-- database with all migrations applied (loadtests/sql/checkout-lean-test.sh does that); stops at the first
-- failure (ON_ERROR_STOP) with the failing check's name.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

CREATE FUNCTION pg_temp.check(p_ok boolean, p_name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_ok IS NOT TRUE THEN
        RAISE EXCEPTION 'FAILED: %', p_name;
    END IF;
END $$;

-- A realistic compact explanation (~100 bytes): rule codes and numbers.
CREATE FUNCTION pg_temp.expl() RETURNS jsonb LANGUAGE sql AS $$
    SELECT '{"r":"base","bp":100,"t":"base","c":[7],"m":15000,"l":[["1",2,3990,39],["2",1,1250,12]],"rd":"floor"}'::jsonb
$$;

-- One commit through the batch function (a batch of one).
CREATE FUNCTION pg_temp.commit1(
    p_terminal text, p_txn text, p_member bigint, p_award bigint, p_redeem bigint DEFAULT 0, p_hold bigint DEFAULT NULL,
    p_spend bigint DEFAULT 10000, p_available_at timestamptz DEFAULT now() - interval '1 second',
    p_expires_at timestamptz DEFAULT now() + interval '365 days', p_tier text DEFAULT NULL,
    p_hash bytea DEFAULT NULL, p_unit text DEFAULT 'points'
) RETURNS checkout_result LANGUAGE sql AS $$
    SELECT * FROM checkout_commit_batch(
        ARRAY['pos:' || p_terminal], ARRAY['commit:' || p_txn],
        ARRAY[coalesce(p_hash, sha256(convert_to(p_terminal || '/' || p_txn || '/' || p_member || '/' || p_redeem || '/' || coalesce(p_hold, 0), 'UTF8')))],
        ARRAY[p_terminal], ARRAY[p_txn], ARRAY[p_member], ARRAY[p_tier], ARRAY[p_unit], ARRAY[p_award],
        ARRAY[p_available_at], ARRAY[p_expires_at], ARRAY[now()], ARRAY['r1'], ARRAY[pg_temp.expl()], ARRAY[p_spend],
        ARRAY['[{"line_id":"1","quantity":2,"paid_minor":3990,"award":39},{"line_id":"2","quantity":1,"paid_minor":1250,"award":12}]'::jsonb],
        ARRAY[p_spend], ARRAY[p_hold], ARRAY[p_redeem])
$$;

CREATE FUNCTION pg_temp.hold(p_terminal text, p_txn text, p_member bigint, p_amount bigint) RETURNS checkout_result
LANGUAGE sql AS $$
    SELECT * FROM checkout_hold('pos:' || p_terminal, 'hold:' || p_txn, '\x01'::bytea, p_terminal, p_txn, p_member,
                                p_amount, now() + interval '5 minutes')
$$;

CREATE FUNCTION pg_temp.sqlstate_of(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
BEGIN
    EXECUTE p_sql;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
    RETURN v_state;
END $$;

CREATE FUNCTION pg_temp.bal(p_member bigint, p_bucket text, p_unit text DEFAULT 'points') RETURNS bigint
LANGUAGE sql AS $$
    SELECT balance FROM accounts WHERE member_id = p_member AND bucket = p_bucket AND unit = p_unit
$$;

-- Ledger invariants: every entry sums to zero per unit; cached balances equal the sums of postings; no member
-- balance below zero; open lots equal available + held (available lots) and pending (pending lots); active holds
-- equal held; reversal totals match.
CREATE FUNCTION pg_temp.check_invariants(p_name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_temp.check(NOT EXISTS (
        SELECT 1 FROM postings p JOIN accounts a USING (account_id) GROUP BY p.entry_id, a.unit HAVING sum(p.amount) <> 0),
        p_name || ': entries sum to zero per unit');
    PERFORM pg_temp.check(NOT EXISTS (
        SELECT 1 FROM accounts a LEFT JOIN postings p USING (account_id) WHERE a.member_id IS NOT NULL
        GROUP BY a.account_id, a.balance HAVING a.balance <> coalesce(sum(p.amount), 0)),
        p_name || ': member balances equal their postings');
    PERFORM pg_temp.check(NOT EXISTS (SELECT 1 FROM accounts WHERE member_id IS NOT NULL AND balance < 0),
        p_name || ': no negative member balance');
    PERFORM pg_temp.check(NOT EXISTS (
        SELECT 1 FROM accounts a
        WHERE a.member_id IS NOT NULL AND a.bucket = 'available'
          AND a.balance + (SELECT h.balance FROM accounts h WHERE h.member_id = a.member_id AND h.unit = a.unit AND h.bucket = 'held')
              <> coalesce((SELECT sum(remaining_amount) FROM lots l
                           WHERE l.member_id = a.member_id AND l.unit = a.unit AND l.state = 'available'), 0)),
        p_name || ': available lots equal available + held');
    PERFORM pg_temp.check(NOT EXISTS (
        SELECT 1 FROM accounts a
        WHERE a.member_id IS NOT NULL AND a.bucket = 'pending'
          AND a.balance <> coalesce((SELECT sum(remaining_amount) FROM lots l
                                     WHERE l.member_id = a.member_id AND l.unit = a.unit AND l.state = 'pending'), 0)),
        p_name || ': pending lots equal pending');
    PERFORM pg_temp.check(NOT EXISTS (
        SELECT 1 FROM accounts a
        WHERE a.member_id IS NOT NULL AND a.bucket = 'held'
          AND a.balance <> coalesce((SELECT sum(amount) FROM holds h
                                     WHERE h.member_id = a.member_id AND h.unit = a.unit AND h.state = 'active'), 0)),
        p_name || ': active holds equal held');
    PERFORM pg_temp.check(NOT EXISTS (
        SELECT 1 FROM journal_entries o
        WHERE o.kind IN ('accrual', 'redemption')
          AND o.reversed_amount <> coalesce((SELECT sum(r.amount) FROM journal_entries r WHERE r.reverses_entry_id = o.entry_id), 0)),
        p_name || ': reversal totals match');
    PERFORM pg_temp.check(NOT EXISTS (
        SELECT 1 FROM lot_consumptions c JOIN journal_entries e USING (entry_id)
        GROUP BY c.entry_id, e.amount, e.kind HAVING e.kind = 'redemption' AND sum(c.amount) <> e.amount),
        p_name || ': redemptions are covered by their lot consumptions');
END $$;

-- Fixture: three tiers, active members 1-6, a blocked member 7.
INSERT INTO tiers (code, name, rank, qualification_spend_minor, qualification_window_days)
VALUES ('silver', 'Silver', 1, 50000, 365), ('gold', 'Gold', 2, 200000, 180);
INSERT INTO members (card_number, tier_id) SELECT 'CARD-' || g, 1 FROM generate_series(1, 7) g;
UPDATE members SET status = 'blocked' WHERE member_id = 7;

-- 1. Accrual: available at once, and pending until available_at.
DO $$
DECLARE r checkout_result;
BEGIN
    r := pg_temp.commit1('t1', 'a1', 1, 500);
    PERFORM pg_temp.check(r.sqlstate IS NULL AND r.points_available = 500 AND r.points_pending = 0, 'accrual available');
    PERFORM pg_temp.check((r.response ->> 'awarded')::bigint = 500 AND (r.response ->> 'replayed')::boolean = false
                          AND jsonb_array_length(r.response -> 'lines') = 2 AND r.ledger_version = 1
                          AND r.tier_code = 'base' AND r.card_number = 'CARD-1', 'accrual response and cache fields');
    r := pg_temp.commit1('t1', 'a2', 1, 70, p_available_at => now() + interval '30 days');
    PERFORM pg_temp.check(r.points_available = 500 AND r.points_pending = 70, 'accrual pending');
    PERFORM pg_temp.check((SELECT state FROM lots WHERE entry_id = (r.response ->> 'accrual_entry_id')::bigint) = 'pending', 'pending lot');
    PERFORM pg_temp.check((SELECT explanation FROM journal_entries WHERE entry_id = (r.response ->> 'accrual_entry_id')::bigint) = pg_temp.expl(),
                          'explanation stored as given');
    r := pg_temp.commit1('t1', 'cb1', 2, 250, p_unit => 'cashback_minor');
    PERFORM pg_temp.check(r.cashback_available = 250 AND r.points_available = 0 AND r.response ->> 'unit' = 'cashback_minor', 'cashback accrual');
END $$;
SELECT pg_temp.check_invariants('after accruals');

-- 2. Replay and conflict.
DO $$
DECLARE
    r checkout_result;
    v_entries bigint := (SELECT count(*) FROM journal_entries);
    v_version bigint := (SELECT ledger_version FROM members WHERE member_id = 1);
BEGIN
    r := pg_temp.commit1('t1', 'a1', 1, 999);  -- same request (the hash covers what the till sent, not the award)
    PERFORM pg_temp.check(r.sqlstate IS NULL AND (r.response ->> 'replayed')::boolean AND (r.response ->> 'awarded')::bigint = 500
                          AND jsonb_array_length(r.response -> 'lines') = 2, 'replay answers the stored response');
    PERFORM pg_temp.check((SELECT count(*) FROM journal_entries) = v_entries
                          AND (SELECT ledger_version FROM members WHERE member_id = 1) = v_version, 'replay writes nothing');
    PERFORM pg_temp.check(r.ledger_version = v_version AND r.points_available = 500, 'replay carries the member as it is now');
    -- The replay answers exactly the first response (rebuilt from the stored balances and the purchase record).
    r := pg_temp.commit1('t1', 'rp1', 1, 0, p_redeem => 20, p_spend => 0);
    PERFORM pg_temp.check((pg_temp.commit1('t1', 'rp1', 1, 0, p_redeem => 20, p_spend => 0)).response - 'replayed'
                          = r.response - 'replayed', 'replayed response equals the first');
    PERFORM pg_temp.check(octet_length((SELECT response::text FROM idempotency_keys WHERE scope = 'pos:t1' AND key = 'commit:rp1')) < 80,
                          'compact stored response');
    r := pg_temp.commit1('t1', 'a1', 1, 500, p_hash => '\xdead'::bytea);
    PERFORM pg_temp.check(r.sqlstate = 'LY010' AND r.message = 'idempotency_conflict' AND r.response IS NULL, 'conflict LY010');
    r := pg_temp.commit1('t2', 'a1', 1, 5);  -- the same id on another terminal is another purchase
    PERFORM pg_temp.check(r.sqlstate IS NULL AND NOT (r.response ->> 'replayed')::boolean, 'keys are per terminal');
END $$;

-- 3. Error codes of commit.
DO $$
DECLARE r checkout_result;
BEGIN
    r := pg_temp.commit1('t1', 'e1', 1, -1);
    PERFORM pg_temp.check(r.sqlstate = 'LY011', 'LY011 negative award');
    r := pg_temp.commit1('t1', 'e2', 999999, 10);
    PERFORM pg_temp.check(r.sqlstate = 'LY002' AND (r.detail::jsonb ->> 'member_id')::bigint = 999999, 'LY002 unknown member');
    r := pg_temp.commit1('t1', 'e3', 7, 10);
    PERFORM pg_temp.check(r.sqlstate = 'LY003' AND r.detail::jsonb ->> 'status' = 'blocked', 'LY003 blocked member');
    r := pg_temp.commit1('t1', 'e4', 1, 10, p_tier => 'gold');
    PERFORM pg_temp.check(r.sqlstate = 'LY014' AND r.detail::jsonb ->> 'now' = 'base', 'LY014 tier changed');
    r := pg_temp.commit1('t1', 'e5', 1, 10, p_tier => 'base');
    PERFORM pg_temp.check(r.sqlstate IS NULL, 'priced tier that still holds');
    r := pg_temp.commit1('t1', 'e6', 1, 10, p_available_at => now(), p_expires_at => now() - interval '1 day');
    PERFORM pg_temp.check(r.sqlstate = 'LY012', 'LY012 expiry before availability');
    r := pg_temp.commit1('t1', 'e7', 3, 0, p_redeem => 10);
    PERFORM pg_temp.check(r.sqlstate = 'LY001' AND r.detail::jsonb ->> 'bucket' = 'available'
                          AND (r.detail::jsonb ->> 'requested')::bigint = 10 AND (r.detail::jsonb ->> 'available')::bigint = 0,
                          'LY001 insufficient balance');
    r := pg_temp.commit1('t1', 'e8', 1, 10, p_hold => 424242);
    PERFORM pg_temp.check(r.sqlstate = 'LY004', 'LY004 unknown hold');
    -- Failed commits left nothing: no key, no purchase record, no entry for them.
    PERFORM pg_temp.check(NOT EXISTS (SELECT 1 FROM idempotency_keys WHERE key IN ('commit:e1', 'commit:e2', 'commit:e3', 'commit:e4', 'commit:e6', 'commit:e7', 'commit:e8')),
                          'failed commits store no key');
    PERFORM pg_temp.check(NOT EXISTS (SELECT 1 FROM pos_checkouts WHERE pos_transaction_id IN ('e1', 'e2', 'e3', 'e4', 'e6', 'e7', 'e8')),
                          'failed commits store no purchase');
END $$;
SELECT pg_temp.check_invariants('after errors');

-- 4. Redemption: lots consumed soonest expiry first (never-expiring last), redemption before award, redemption-only.
DO $$
DECLARE
    r checkout_result;
    v_far bigint;
    v_near bigint;
    v_never bigint;
    v_entry bigint;
BEGIN
    r := pg_temp.commit1('t1', 'l1', 4, 100, p_expires_at => now() + interval '300 days');
    v_far := (SELECT lot_id FROM lots WHERE entry_id = (r.response ->> 'accrual_entry_id')::bigint);
    r := pg_temp.commit1('t1', 'l2', 4, 100, p_expires_at => NULL);
    v_never := (SELECT lot_id FROM lots WHERE entry_id = (r.response ->> 'accrual_entry_id')::bigint);
    r := pg_temp.commit1('t1', 'l3', 4, 100, p_expires_at => now() + interval '10 days');
    v_near := (SELECT lot_id FROM lots WHERE entry_id = (r.response ->> 'accrual_entry_id')::bigint);
    -- Redemption only (no award): 150 takes the near lot whole and 50 of the far one.
    r := pg_temp.commit1('t1', 'l4', 4, 0, p_redeem => 150, p_spend => 0);
    v_entry := (r.response ->> 'redemption_entry_id')::bigint;
    PERFORM pg_temp.check(r.sqlstate IS NULL AND r.points_available = 150 AND (r.response ->> 'accrual_entry_id')::bigint = 0,
                          'redemption-only commit');
    PERFORM pg_temp.check((SELECT array_agg(ARRAY[lot_id, amount] ORDER BY seq) FROM lot_consumptions WHERE entry_id = v_entry)
                          = ARRAY[ARRAY[v_near, 100], ARRAY[v_far, 50]], 'lots consumed soonest expiry first');
    PERFORM pg_temp.check((SELECT remaining_amount FROM lots WHERE lot_id = v_far) = 50
                          AND (SELECT remaining_amount FROM lots WHERE lot_id = v_never) = 100, 'lot remainders');
    -- Redeem with an award that is available at once: the award must not pay for the redemption.
    r := pg_temp.commit1('t1', 'l5', 4, 500, p_redeem => 151);
    PERFORM pg_temp.check(r.sqlstate = 'LY001', 'the purchase''s own points never pay for its redemption');
    r := pg_temp.commit1('t1', 'l6', 4, 40, p_redeem => 150);
    v_entry := (r.response ->> 'redemption_entry_id')::bigint;
    PERFORM pg_temp.check(r.sqlstate IS NULL AND r.points_available = 40 AND (r.response ->> 'redeemed')::bigint = 150
                          AND (r.response ->> 'awarded')::bigint = 40, 'redeem and award in one commit');
    PERFORM pg_temp.check((SELECT array_agg(ARRAY[lot_id, amount] ORDER BY seq) FROM lot_consumptions WHERE entry_id = v_entry)
                          = ARRAY[ARRAY[v_far, 50], ARRAY[v_never, 100]], 'never-expiring lot last');
    PERFORM pg_temp.check((SELECT count(*) FROM journal_entries WHERE entry_id IN (v_entry, (r.response ->> 'accrual_entry_id')::bigint)) = 2
                          AND v_entry < (r.response ->> 'accrual_entry_id')::bigint, 'one entry per business event, redemption first');
END $$;
SELECT pg_temp.check_invariants('after redemptions');

-- 5. Holds: bound to terminal and transaction; redeem from a hold (the rest released); release without redemption.
DO $$
DECLARE
    r checkout_result;
    v_hold bigint;
BEGIN
    r := pg_temp.commit1('t1', 'h0', 5, 1000);
    r := pg_temp.hold('t1', 'h1', 5, 300);
    v_hold := (r.response ->> 'hold_id')::bigint;
    PERFORM pg_temp.check(r.sqlstate IS NULL AND r.points_available = 700 AND r.points_held = 300
                          AND (r.response ->> 'expires_at_ms')::bigint > 0, 'hold');
    PERFORM pg_temp.check((SELECT terminal_id = 't1' AND pos_transaction_id = 'h1' FROM holds WHERE hold_id = v_hold), 'hold bound to its terminal and transaction');
    PERFORM pg_temp.check((SELECT hold_id FROM journal_entries WHERE entry_id = (r.response ->> 'entry_id')::bigint) = v_hold, 'hold entry names the hold');
    r := pg_temp.hold('t1', 'h1', 5, 300);
    PERFORM pg_temp.check((r.response ->> 'replayed')::boolean AND (r.response ->> 'hold_id')::bigint = v_hold, 'hold replay');
    PERFORM pg_temp.check(pg_temp.sqlstate_of($q$SELECT checkout_hold('pos:t1', 'hold:h1', '\x02', 't1', 'h1', 5, 300, now() + interval '1 minute')$q$) = 'LY010', 'hold LY010');
    PERFORM pg_temp.check(pg_temp.sqlstate_of($q$SELECT checkout_hold('pos:t1', 'hold:hx', '\x01', 't1', 'hx', 5, 0, now() + interval '1 minute')$q$) = 'LY011', 'hold LY011');
    PERFORM pg_temp.check(pg_temp.sqlstate_of($q$SELECT checkout_hold('pos:t1', 'hold:hx', '\x01', 't1', 'hx', 5, 100000, now() + interval '1 minute')$q$) = 'LY001', 'hold LY001');
    PERFORM pg_temp.check(pg_temp.sqlstate_of($q$SELECT checkout_hold('pos:t1', 'hold:hx', '\x01', 't1', 'hx', 7, 1, now() + interval '1 minute')$q$) = 'LY003', 'hold LY003');
    PERFORM pg_temp.check(pg_temp.sqlstate_of($q$SELECT checkout_hold('pos:t1', 'hold:hx', '\x01', 't1', 'hx', 5, 1, now() - interval '1 minute')$q$) = 'LY012', 'hold LY012');
    -- Another terminal, another transaction, another member: LY013.
    r := pg_temp.commit1('t2', 'h1', 5, 10, p_redeem => 100, p_hold => v_hold);
    PERFORM pg_temp.check(r.sqlstate = 'LY013', 'hold from another terminal refused');
    r := pg_temp.commit1('t1', 'h1-other', 5, 10, p_redeem => 100, p_hold => v_hold);
    PERFORM pg_temp.check(r.sqlstate = 'LY013', 'hold of another transaction refused');
    r := pg_temp.commit1('t1', 'h1', 6, 10, p_redeem => 100, p_hold => v_hold);
    PERFORM pg_temp.check(r.sqlstate = 'LY013', 'hold of another member refused');
    r := pg_temp.commit1('t1', 'h1', 5, 10, p_redeem => 301, p_hold => v_hold);
    PERFORM pg_temp.check(r.sqlstate = 'LY006', 'LY006 hold exceeded');
    -- Redeem 200 of the 300 held: held 0, available 700 + 100 back, + the award.
    r := pg_temp.commit1('t1', 'h1', 5, 10, p_redeem => 200, p_hold => v_hold);
    PERFORM pg_temp.check(r.sqlstate IS NULL AND r.points_held = 0 AND r.points_available = 810
                          AND (r.response ->> 'redeemed')::bigint = 200, 'redeem from a hold, rest released');
    PERFORM pg_temp.check((SELECT state FROM holds WHERE hold_id = v_hold) = 'committed', 'hold committed');
    PERFORM pg_temp.check((SELECT hold_id FROM journal_entries WHERE entry_id = (r.response ->> 'redemption_entry_id')::bigint) = v_hold,
                          'redemption entry names the hold');
    -- A hold named without redemption is released by the commit.
    r := pg_temp.hold('t1', 'h2', 5, 50);
    v_hold := (r.response ->> 'hold_id')::bigint;
    r := pg_temp.commit1('t1', 'h2', 5, 10, p_hold => v_hold);
    PERFORM pg_temp.check(r.sqlstate IS NULL AND r.points_held = 0 AND r.points_available = 820
                          AND (SELECT state FROM holds WHERE hold_id = v_hold) = 'released'
                          AND (r.response ->> 'redemption_entry_id')::bigint = 0, 'unused hold released by the commit');
    -- Redeem the whole hold.
    r := pg_temp.hold('t1', 'h3', 5, 30);
    v_hold := (r.response ->> 'hold_id')::bigint;
    r := pg_temp.commit1('t1', 'h3', 5, 0, p_redeem => 30, p_hold => v_hold, p_spend => 0);
    PERFORM pg_temp.check(r.sqlstate IS NULL AND r.points_held = 0 AND r.points_available = 790, 'whole hold redeemed');
    -- A cancelled hold cannot be committed: LY005.
    r := pg_temp.hold('t1', 'h4', 5, 30);
    v_hold := (r.response ->> 'hold_id')::bigint;
    r := checkout_cancel('pos:t1', 'cancel:h4', '\x01', 't1', 'h4', 't1');
    PERFORM pg_temp.check(r.response ->> 'cancelled' = 'hold' AND r.points_held = 0 AND r.points_available = 790, 'cancel releases the hold');
    r := checkout_cancel('pos:t1', 'cancel:h4', '\x01', 't1', 'h4', 't1');
    PERFORM pg_temp.check((r.response ->> 'replayed')::boolean AND r.response ->> 'cancelled' = 'hold', 'cancel replay');
    r := pg_temp.commit1('t1', 'h4', 5, 10, p_redeem => 10, p_hold => v_hold);
    PERFORM pg_temp.check(r.sqlstate = 'LY005', 'LY005 hold not active');
    PERFORM pg_temp.check(pg_temp.sqlstate_of($q$SELECT checkout_cancel('pos:t1', 'cancel:nothing', '\x01', 't1', 'nothing', 't1')$q$) = 'LY016', 'cancel LY016');
END $$;
SELECT pg_temp.check_invariants('after holds');

-- 6. Tier upgrade on the purchase that crosses the threshold (silver at 50,000 over 365 days), reported once.
DO $$
DECLARE r checkout_result;
BEGIN
    r := pg_temp.commit1('t1', 'u1', 6, 100, p_spend => 30000);
    PERFORM pg_temp.check(r.tier_code = 'base' AND r.response -> 'tier_change' = 'null'::jsonb, 'below the threshold');
    -- (an upper bound: items that failed after the member update may have added theirs too)
    PERFORM pg_temp.check((SELECT tier_spend_bound_minor FROM members WHERE member_id = 6) >= 30000, 'spend bound kept');
    r := pg_temp.commit1('t1', 'u2', 6, 100, p_spend => 25000);
    PERFORM pg_temp.check(r.tier_code = 'silver' AND r.tier_name = 'Silver' AND r.response -> 'tier_change' ->> 'from' = 'base'
                          AND r.response -> 'tier_change' ->> 'to' = 'silver', 'upgrade on the crossing purchase');
    PERFORM pg_temp.check((SELECT reason FROM tier_changes WHERE member_id = 6) = 'upgrade: spend 55000 over 365 days reached 50000',
                          'tier change recorded as before');
    r := pg_temp.commit1('t1', 'u2', 6, 100, p_spend => 25000);
    PERFORM pg_temp.check((r.response ->> 'replayed')::boolean AND r.response -> 'tier_change' ->> 'to' = 'silver',
                          'a replay answers the tier change it made');
    r := pg_temp.commit1('t1', 'u3', 6, 100, p_spend => 1000, p_tier => 'silver');
    PERFORM pg_temp.check(r.sqlstate IS NULL AND r.response -> 'tier_change' = 'null'::jsonb, 'no second upgrade');
    -- Spend older than the window does not count: a member whose 60,000 were spent 400 days ago stays base.
    INSERT INTO journal_entries (kind, member_id, unit, amount, actor, occurred_at, spend_minor)
    VALUES ('accrual', 3, 'points', 0, 'test', now() - interval '400 days', 60000);
    UPDATE members SET tier_spend_anchor = NULL WHERE member_id = 3;  -- as the old path leaves it
    r := pg_temp.commit1('t1', 'u4', 3, 10, p_spend => 100);
    PERFORM pg_temp.check(r.tier_code = 'base', 'spend outside the rolling window does not count');
    PERFORM pg_temp.check((SELECT tier_spend_anchor IS NOT NULL AND tier_spend_bound_minor = 100 FROM members WHERE member_id = 3),
                          'exact check resets the bound to the window');
    -- The older path (ledger_accrue with spend) marks the bound unknown; the next lean purchase checks exactly.
    PERFORM ledger_accrue('test', 'old-1', '\x00', 2, 'points', 10, now(), NULL, now(), 'test', NULL, NULL, 49950);
    PERFORM pg_temp.check((SELECT tier_spend_anchor FROM members WHERE member_id = 2) IS NULL, 'old path marks the bound unknown');
    r := pg_temp.commit1('t1', 'u5', 2, 10, p_spend => 100);
    PERFORM pg_temp.check(r.tier_code = 'silver', 'upgrade counts spend booked by the older path');
END $$;
SELECT pg_temp.check_invariants('after tiers');

-- 7. Batches: member order, each item alone, the same key twice in one batch.
DO $$
DECLARE
    v_rows checkout_result[];
    v_entries bigint := (SELECT count(*) FROM journal_entries);
BEGIN
    SELECT array_agg(r ORDER BY r.position) INTO v_rows FROM checkout_commit_batch(
        ARRAY['pos:t3', 'pos:t3', 'pos:t3', 'pos:t3'], ARRAY['commit:b1', 'commit:b2', 'commit:b3', 'commit:b1'],
        ARRAY['\x01', '\x02', '\x03', '\x01']::bytea[], ARRAY['t3', 't3', 't3', 't3'], ARRAY['b1', 'b2', 'b3', 'b1'],
        ARRAY[6, 3, 1, 6]::bigint[], ARRAY[NULL, NULL, NULL, NULL]::text[], ARRAY['points', 'points', 'points', 'points'],
        ARRAY[10, 10, 10, 10]::bigint[], ARRAY[now(), now(), now(), now()], ARRAY[NULL, NULL, NULL, NULL]::timestamptz[],
        ARRAY[now(), now(), now(), now()], ARRAY['r1', 'r1', 'r1', 'r1'], ARRAY[pg_temp.expl(), pg_temp.expl(), pg_temp.expl(), pg_temp.expl()],
        ARRAY[100, 100, 100, 100]::bigint[], ARRAY['[]', '[]', '[]', '[]']::jsonb[], ARRAY[100, 100, 100, 100]::bigint[],
        ARRAY[NULL, NULL, NULL, NULL]::bigint[], ARRAY[0, 1000000, 0, 0]::bigint[]) AS r;
    PERFORM pg_temp.check(cardinality(v_rows) = 4 AND v_rows[1].position = 1 AND v_rows[4].position = 4, 'one row per item, in item order');
    PERFORM pg_temp.check(v_rows[1].sqlstate IS NULL AND v_rows[3].sqlstate IS NULL, 'good items commit');
    PERFORM pg_temp.check(v_rows[2].sqlstate = 'LY001', 'a failing item fails alone');
    PERFORM pg_temp.check((v_rows[4].response ->> 'replayed')::boolean
                          AND v_rows[4].response -> 'accrual_entry_id' = v_rows[1].response -> 'accrual_entry_id',
                          'the same key twice in a batch: the second is a replay');
    PERFORM pg_temp.check((SELECT count(*) FROM journal_entries) = v_entries + 2, 'only the good items wrote entries');
    PERFORM pg_temp.check((SELECT count(*) FROM checkout_commit_batch('{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')) = 0,
                          'empty batch');
    PERFORM pg_temp.check(pg_temp.sqlstate_of($q$SELECT * FROM checkout_commit_batch('{a}', '{b}', '{}', '{}', '{}', '{1}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')$q$) = 'LY011',
                          'arrays of different lengths refused');
END $$;
SELECT pg_temp.check_invariants('after batches');

-- 7b. The set-based pass itself (checkout_commit_batch falls back to one item at a time when it raises, which
-- would hide a fault): it must answer a mixed batch without raising.
DO $$
DECLARE
    v_rows checkout_result[];
BEGIN
    v_rows := checkout_commit_fast(
        ARRAY['pos:t4', 'pos:t4', 'pos:t4'], ARRAY['commit:s1', 'commit:s2', 'commit:s3'], ARRAY['\x01', '\x02', '\x03']::bytea[],
        ARRAY['t4', 't4', 't4'], ARRAY['s1', 's2', 's3'], ARRAY[6, 3, 1]::bigint[], ARRAY[NULL, NULL, 'gold']::text[],
        ARRAY['points', 'points', 'points'], ARRAY[10, 10, 10]::bigint[], ARRAY[now(), now(), now()],
        ARRAY[NULL, NULL, NULL]::timestamptz[], ARRAY[now(), now(), now()], ARRAY['r1', 'r1', 'r1'],
        ARRAY[pg_temp.expl(), pg_temp.expl(), pg_temp.expl()], ARRAY[100, 100, 100]::bigint[], ARRAY['[]', '[]', '[]']::jsonb[],
        ARRAY[100, 100, 100]::bigint[], ARRAY[NULL, NULL, NULL]::bigint[], ARRAY[5, 1000000, 0]::bigint[], ARRAY[1, 2, 3]);
    PERFORM pg_temp.check(cardinality(v_rows) = 3, 'set-based pass answers every item');
    PERFORM pg_temp.check((SELECT sqlstate IS NULL AND (response ->> 'redeemed')::bigint = 5 FROM unnest(v_rows) WHERE position = 1),
                          'set-based pass: redeem and award');
    PERFORM pg_temp.check((SELECT sqlstate = 'LY001' FROM unnest(v_rows) WHERE position = 2), 'set-based pass: LY001');
    PERFORM pg_temp.check((SELECT sqlstate = 'LY014' FROM unnest(v_rows) WHERE position = 3), 'set-based pass: LY014');
END $$;
SELECT pg_temp.check_invariants('after the set-based pass');

-- 8. Refund and cancel of a commit.
DO $$
DECLARE
    r checkout_result;
    v_accrual bigint;
BEGIN
    r := pg_temp.commit1('t1', 'f0', 1, 1000);           -- member 1 gets points to redeem
    r := pg_temp.commit1('t1', 'f1', 1, 200, p_redeem => 300, p_spend => 5000, p_available_at => now() + interval '30 days');
    v_accrual := (r.response ->> 'accrual_entry_id')::bigint;
    -- Return part: 50 of the (pending) award back, 100 redeemed points restored, 2,000 refunded.
    r := checkout_refund('pos:t1', 'refund:f1a', '\x01', 't1', 'f1', 0, '{"1":1}', 2000, 50, 100, now(), 't1', '{"refund_id":"f1a"}', false);
    PERFORM pg_temp.check((r.response ->> 'award_reversed')::bigint = 50 AND (r.response ->> 'points_restored')::bigint = 100
                          AND (r.response ->> 'award_unrecovered')::bigint = 0, 'partial refund');
    PERFORM pg_temp.check((SELECT remaining_amount FROM lots WHERE entry_id = v_accrual) = 150, 'taken back from its own pending lot');
    PERFORM pg_temp.check((SELECT refund_version FROM pos_checkouts WHERE pos_transaction_id = 'f1' AND terminal_id = 't1') = 1, 'refund version');
    r := checkout_refund('pos:t1', 'refund:f1a', '\x01', 't1', 'f1', 0, '{"1":1}', 2000, 50, 100, now(), 't1', '{"refund_id":"f1a"}', false);
    PERFORM pg_temp.check((r.response ->> 'replayed')::boolean, 'refund replay');
    PERFORM pg_temp.check(pg_temp.sqlstate_of($q$SELECT checkout_refund('pos:t1', 'refund:f1b', '\x01', 't1', 'f1', 0, '{}', 1, 1, 0, now(), 't1', '{}', false)$q$) = 'LY015', 'refund LY015');
    PERFORM pg_temp.check(pg_temp.sqlstate_of($q$SELECT checkout_refund('pos:t1', 'refund:f1b', '\x01', 't1', 'f1', 1, '{}', 999999, 1, 0, now(), 't1', '{}', false)$q$) = 'LY018', 'refund LY018');
    PERFORM pg_temp.check(pg_temp.sqlstate_of($q$SELECT checkout_refund('pos:t1', 'refund:f1b', '\x01', 't1', 'nope', 1, '{}', 1, 1, 0, now(), 't1', '{}', false)$q$) = 'LY016', 'refund LY016');
    -- Cancel voids the rest.
    r := checkout_cancel('pos:t1', 'cancel:f1', '\x01', 't1', 'f1', 't1');
    PERFORM pg_temp.check(r.response ->> 'cancelled' = 'commit' AND (r.response ->> 'award_reversed')::bigint = 150
                          AND (r.response ->> 'points_restored')::bigint = 200, 'cancel voids the commit');
    PERFORM pg_temp.check((SELECT voided FROM pos_checkouts WHERE pos_transaction_id = 'f1' AND terminal_id = 't1'), 'voided');
    PERFORM pg_temp.check(pg_temp.sqlstate_of($q$SELECT checkout_refund('pos:t1', 'refund:f1c', '\x01', 't1', 'f1', 2, '{}', 1, 1, 0, now(), 't1', '{}', false)$q$) = 'LY017', 'refund LY017');
    -- An award already spent cannot be taken back: recorded as unrecovered.
    r := pg_temp.commit1('t1', 'f2', 4, 100);
    r := pg_temp.commit1('t1', 'f3', 4, 0, p_redeem => (SELECT balance FROM accounts WHERE member_id = 4 AND bucket = 'available' AND unit = 'points'), p_spend => 0);
    r := checkout_cancel('pos:t1', 'cancel:f2', '\x01', 't1', 'f2', 't1');
    PERFORM pg_temp.check((r.response ->> 'award_reversed')::bigint = 100 AND r.points_available = 0
                          AND (SELECT unrecovered_amount FROM journal_entries WHERE reverses_entry_id =
                                 (SELECT accrual_entry_id FROM pos_checkouts WHERE terminal_id = 't1' AND pos_transaction_id = 'f2')) = 100,
                          'spent award recorded as unrecovered');
END $$;
SELECT pg_temp.check_invariants('after refunds');

-- 9. The lean commit against pos_commit on the same random sequence: members 101-140 go through pos_* (the old
-- path), members 201-240 through checkout_* (the same operations); outcomes, balances, lots and tiers must match.
INSERT INTO members (card_number, tier_id) SELECT 'OLD-' || g, 1 FROM generate_series(1, 40) g;
INSERT INTO members (card_number, tier_id) SELECT 'NEW-' || g, 1 FROM generate_series(1, 40) g;
CREATE TEMP TABLE pair AS
SELECT o.member_id AS old_member, n.member_id AS new_member
FROM (SELECT member_id, row_number() OVER (ORDER BY member_id) AS k FROM members WHERE card_number LIKE 'OLD-%') o
JOIN (SELECT member_id, row_number() OVER (ORDER BY member_id) AS k FROM members WHERE card_number LIKE 'NEW-%') n USING (k);
CREATE TEMP TABLE outcomes (step integer, old_state text, new_state text);

DO $$
DECLARE
    v_step integer;
    v_pair record;
    v_op float8;
    v_award bigint;
    v_redeem bigint;
    v_spend bigint;
    v_available_at timestamptz;
    v_expires timestamptz;
    v_hold_amount bigint;
    v_old_hold bigint;
    v_new_hold bigint;
    v_old jsonb;
    v_old_state text;
    v_new checkout_result;
    v_new_state text;
BEGIN
    PERFORM setseed(0.42);
    FOR v_step IN 1..1500 LOOP
        SELECT * INTO v_pair FROM pair ORDER BY random() LIMIT 1;
        v_op := random();
        v_award := (random() * 300)::bigint;
        v_redeem := CASE WHEN random() < 0.35 THEN (random() * 400)::bigint ELSE 0 END;
        v_spend := (random() * 9000)::bigint;
        v_available_at := CASE WHEN random() < 0.5 THEN now() - interval '1 second' ELSE now() + interval '30 days' END;
        v_expires := CASE (random() * 3)::int WHEN 0 THEN NULL ELSE now() + make_interval(days => 40 + (random() * 300)::int) END;
        v_old_hold := NULL;
        v_new_hold := NULL;
        IF v_op < 0.25 THEN
            -- A hold first (it may fail alike on both sides), then the commit naming it.
            v_hold_amount := 1 + (random() * 300)::bigint;
            v_old_state := pg_temp.sqlstate_of(format('SELECT pos_hold(%L, %L, %L, %s, %s, now() + interval ''5 minutes'', %L)',
                'pos:t9', 'hold:o' || v_step, '\x01', v_pair.old_member, v_hold_amount, 't9'));
            BEGIN
                v_new := checkout_hold('pos:t9', 'hold:n' || v_step, '\x01', 't9', 'n' || v_step, v_pair.new_member,
                                       v_hold_amount, now() + interval '5 minutes');
                v_new_state := NULL;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_new_state = RETURNED_SQLSTATE;
            END;
            INSERT INTO outcomes VALUES (v_step * 10, v_old_state, v_new_state);
            IF v_old_state IS NULL THEN
                v_old_hold := (SELECT (response ->> 'hold_id')::bigint FROM idempotency_keys WHERE scope = 'pos:t9' AND key = 'hold:o' || v_step);
            END IF;
            IF v_new_state IS NULL THEN
                v_new_hold := (v_new.response ->> 'hold_id')::bigint;
            END IF;
            IF v_old_hold IS NULL OR v_new_hold IS NULL THEN
                CONTINUE;
            END IF;
            v_redeem := least(v_redeem, v_hold_amount + (random() * 20)::bigint);
        END IF;
        BEGIN
            v_old := pos_commit('pos:t9', 'commit:o' || v_step, '\x01', 't9', 'o' || v_step, v_pair.old_member, NULL,
                                'points', v_award, v_available_at, v_expires, now(), 'r1', pg_temp.expl(), v_spend, '[]',
                                v_spend, v_old_hold, v_redeem);
            v_old_state := NULL;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_old_state = RETURNED_SQLSTATE;
        END;
        -- Odd steps through the set-based pass itself (called directly, so that a fault in it is not hidden by the
        -- fallback), even steps through checkout_commit_batch (a batch of one goes one at a time).
        IF v_step % 2 = 1 THEN
            SELECT * INTO v_new FROM unnest(checkout_commit_fast(
                ARRAY['pos:t9'], ARRAY['commit:n' || v_step], ARRAY['\x01'::bytea], ARRAY['t9'], ARRAY['n' || v_step],
                ARRAY[v_pair.new_member], ARRAY[NULL::text], ARRAY['points'], ARRAY[v_award], ARRAY[v_available_at],
                ARRAY[v_expires], ARRAY[now()], ARRAY['r1'], ARRAY[pg_temp.expl()], ARRAY[v_spend], ARRAY['[]'::jsonb],
                ARRAY[v_spend], ARRAY[v_new_hold], ARRAY[v_redeem], ARRAY[1]));
        ELSE
            SELECT * INTO v_new FROM checkout_commit_batch(
                ARRAY['pos:t9'], ARRAY['commit:n' || v_step], ARRAY['\x01'::bytea], ARRAY['t9'], ARRAY['n' || v_step],
                ARRAY[v_pair.new_member], ARRAY[NULL::text], ARRAY['points'], ARRAY[v_award], ARRAY[v_available_at],
                ARRAY[v_expires], ARRAY[now()], ARRAY['r1'], ARRAY[pg_temp.expl()], ARRAY[v_spend], ARRAY['[]'::jsonb],
                ARRAY[v_spend], ARRAY[v_new_hold], ARRAY[v_redeem]);
        END IF;
        INSERT INTO outcomes VALUES (v_step * 10 + 1, v_old_state, v_new.sqlstate);
        IF v_old_state IS NULL AND v_new.sqlstate IS NULL
           AND (v_old -> 'points' IS DISTINCT FROM v_new.response -> 'points'
                OR (v_old -> 'tier_change' ->> 'to') IS DISTINCT FROM (v_new.response -> 'tier_change' ->> 'to')) THEN
            RAISE EXCEPTION 'FAILED: step % answers differ: old % new %', v_step, v_old, v_new.response;
        END IF;
        -- Now and then a cancel of the last commit or hold.
        IF random() < 0.05 THEN
            v_old_state := pg_temp.sqlstate_of(format('SELECT pos_cancel(%L, %L, %L, %L, %L, %L)',
                'pos:t9', 'cancel:o' || v_step, '\x01', 't9', 'o' || v_step, 't9'));
            v_new_state := pg_temp.sqlstate_of(format('SELECT checkout_cancel(%L, %L, %L, %L, %L, %L)',
                'pos:t9', 'cancel:n' || v_step, '\x01', 't9', 'n' || v_step, 't9'));
            INSERT INTO outcomes VALUES (v_step * 10 + 2, v_old_state, v_new_state);
        END IF;
    END LOOP;
END $$;

SELECT pg_temp.check(NOT EXISTS (SELECT 1 FROM outcomes WHERE old_state IS DISTINCT FROM new_state),
                     'old and lean functions succeed and fail alike: ' ||
                     coalesce((SELECT string_agg(step || ':' || coalesce(old_state, 'ok') || '/' || coalesce(new_state, 'ok'), ' ')
                               FROM (SELECT * FROM outcomes WHERE old_state IS DISTINCT FROM new_state LIMIT 10) x), ''));
SELECT pg_temp.check(NOT EXISTS (
    SELECT 1 FROM pair p
    WHERE (SELECT array_agg(balance ORDER BY bucket, unit) FROM accounts WHERE member_id = p.old_member)
          IS DISTINCT FROM (SELECT array_agg(balance ORDER BY bucket, unit) FROM accounts WHERE member_id = p.new_member)
       OR (SELECT tier_id FROM members WHERE member_id = p.old_member) <> (SELECT tier_id FROM members WHERE member_id = p.new_member)
       OR (SELECT array_agg(remaining_amount ORDER BY lot_id) FROM lots WHERE member_id = p.old_member)
          IS DISTINCT FROM (SELECT array_agg(remaining_amount ORDER BY lot_id) FROM lots WHERE member_id = p.new_member)
       OR (SELECT array_agg(kind || ':' || amount ORDER BY entry_id) FROM journal_entries WHERE member_id = p.old_member)
          IS DISTINCT FROM (SELECT array_agg(kind || ':' || amount ORDER BY entry_id) FROM journal_entries WHERE member_id = p.new_member)),
    'old and lean functions leave the same balances, lots, entries and tiers');
SELECT count(*) AS compared_operations, count(*) FILTER (WHERE new_state IS NULL) AS succeeded,
       string_agg(DISTINCT new_state, ',') AS refusals
FROM outcomes;
SELECT count(*) FILTER (WHERE to_tier_id > from_tier_id) AS upgrades_in_comparison FROM tier_changes
WHERE member_id IN (SELECT new_member FROM pair);
SELECT pg_temp.check_invariants('after the comparison');

SELECT 'all checkout_lean tests passed' AS result;
