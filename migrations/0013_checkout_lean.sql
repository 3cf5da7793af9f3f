-- The till's writes, written for the hot path: checkout_commit_batch, checkout_hold, checkout_cancel and
-- checkout_refund. Same semantics and error codes as the pos_* functions of 0006 (which stay, unchanged), but each
-- operation writes every row once:
--   * the idempotency key is read with a plain SELECT first and inserted once, with its final response, at the
--     end. A concurrent duplicate of a commit runs until that INSERT, waits there on the unique index for the
--     first, and is then answered with the first one's stored response (or refused with LY010 when the hash
--     differs); hold, cancel and refund make a duplicate wait up front on an advisory lock of the key;
--   * the member row is locked and updated once (ledger version and the tier-spend bound together); only a tier
--     upgrade, or the rare exact spend check, updates it a second time;
--   * one journal entry per business event, all postings and all member balance updates in one statement, whose
--     RETURNING gives the balances for the answer (no second read, no sum over postings);
--   * a commit stores under its key only what its purchase record (pos_checkouts) does not keep: the balances
--     and the tier change (~60 bytes); a replay puts the rest back from the purchase record.
--   * a commit batch is set-based: a handful of statements for the whole batch (one member update, one check, one
--     write statement, one key insert) and one subtransaction, instead of a handful of statements and a
--     subtransaction per commit; items are taken one at a time only when that pass cannot be used.
-- Typed arguments (no JSON around them), so the server can send them as prepared-statement parameters.
-- Holds are bound to the terminal and transaction that took them (columns of 0011): a commit naming a hold taken
-- by another terminal or under another transaction id is refused with LY013 hold_mismatch.

-- Tier upgrades without scanning a member's history on every purchase. tier_spend_bound_minor is an upper bound
-- of the member's net spend over any tier window W whose start lies after tier_spend_anchor (that is, when
-- anchor <= now() - W): it is the sum of the positive spend of every entry recorded since the anchor was set (net
-- spend in a window <= positive spend in it <= that sum). A purchase adds its spend to the bound in the same
-- member update that moves the ledger version; the exact spend query only runs when the bound reaches a higher
-- tier's threshold, or the anchor is unknown or too recent for a tier's window. Each exact check sets the anchor
-- to now() - (longest window) and the bound to the positive spend since then. Existing members start unknown
-- (NULL: the first purchase checks exactly); members created from now on start at -infinity with 0.
ALTER TABLE members
    ADD COLUMN tier_spend_anchor timestamptz,
    ADD COLUMN tier_spend_bound_minor bigint NOT NULL DEFAULT 0;
ALTER TABLE members ALTER COLUMN tier_spend_anchor SET DEFAULT '-infinity';

-- The older purchase path (ledger_accrue, and pos_commit through it) does not keep the bound: after it records
-- spend, the bound is marked unknown so the next lean purchase checks exactly.
CREATE OR REPLACE FUNCTION tier_upgrade_on_purchase(p_member bigint, p_actor text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_current tiers%ROWTYPE;
    v_best tiers%ROWTYPE;
    v_spend bigint;
BEGIN
    UPDATE members SET tier_spend_anchor = NULL WHERE member_id = p_member AND tier_spend_anchor IS NOT NULL;
    SELECT t.* INTO STRICT v_current FROM tiers t JOIN members m ON m.tier_id = t.tier_id WHERE m.member_id = p_member;
    SELECT t.* INTO v_best FROM tiers t
    WHERE t.rank > v_current.rank
      AND member_spend_minor(p_member, t.qualification_window_days, now()) >= t.qualification_spend_minor
    ORDER BY t.rank DESC LIMIT 1;
    IF v_best.tier_id IS NULL THEN
        RETURN NULL;
    END IF;
    v_spend := member_spend_minor(p_member, v_best.qualification_window_days, now());
    RETURN tier_record_change(p_member, v_current.tier_id, v_best.tier_id,
        format('upgrade: spend %s over %s days reached %s', v_spend, v_best.qualification_window_days,
               v_best.qualification_spend_minor), v_spend, p_actor);
END $$;

-- One answer of a till write: the error (sqlstate, message, JSON detail as text) or the response, and the member
-- as the cache keeps it (null on errors). The response is the JSON the pos_* functions answered, without 'member'.
CREATE TYPE checkout_result AS (
    "position"          integer,
    sqlstate            text,
    message             text,
    detail              text,
    response            jsonb,
    member_id           bigint,
    ledger_version      bigint,
    tier_code           text,
    tier_name           text,
    status              text,
    card_number         text,
    phone               text,
    points_available    bigint,
    points_pending      bigint,
    points_held         bigint,
    cashback_available  bigint,
    cashback_pending    bigint,
    cashback_held       bigint
);

-- The member's current state as a result row (replays; they write nothing).
CREATE FUNCTION checkout_snapshot(p_position integer, p_member bigint, p_response jsonb) RETURNS checkout_result
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v checkout_result;
BEGIN
    SELECT p_position, NULL, NULL, NULL, p_response, m.member_id, m.ledger_version, t.code, t.name, m.status,
           m.card_number, m.phone,
           coalesce(max(a.balance) FILTER (WHERE a.unit = 'points' AND a.bucket = 'available'), 0),
           coalesce(max(a.balance) FILTER (WHERE a.unit = 'points' AND a.bucket = 'pending'), 0),
           coalesce(max(a.balance) FILTER (WHERE a.unit = 'points' AND a.bucket = 'held'), 0),
           coalesce(max(a.balance) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'available'), 0),
           coalesce(max(a.balance) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'pending'), 0),
           coalesce(max(a.balance) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'held'), 0)
    INTO v
    FROM members m
    JOIN tiers t ON t.tier_id = m.tier_id
    LEFT JOIN accounts a ON a.member_id = m.member_id
    WHERE m.member_id = p_member
    GROUP BY m.member_id, t.code, t.name;
    IF NOT FOUND THEN
        v := ROW(p_position, NULL, NULL, NULL, p_response, p_member, NULL, NULL, NULL, NULL, NULL, NULL,
                 NULL, NULL, NULL, NULL, NULL, NULL)::checkout_result;
    END IF;
    RETURN v;
END $$;

-- Posts an operation's amounts and answers the member's six balances after it:
-- ARRAY[points available, pending, held, cashback available, pending, held]. One statement: member accounts are
-- updated once each (the sum of their postings; the overdraft guard checks the balance against the sum of the
-- negative postings, so an award never pays for a redemption of the same call), postings go in as one insert
-- (system accounts resolved by bucket and unit), and the balances come from the update's RETURNING and the
-- untouched accounts. Amounts of 0 must not be passed. Raises LY001 when a member bucket would go below zero.
CREATE FUNCTION checkout_post(
    p_member bigint, p_entries bigint[], p_buckets text[], p_units text[], p_amounts bigint[]
) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    v_updated integer;
    v_expected integer;
    v_balances bigint[];
    v_bucket text;
    v_unit text;
    v_need bigint;
    v_balance bigint;
BEGIN
    WITH p AS (
        SELECT * FROM unnest(p_entries, p_buckets, p_units, p_amounts) AS p(entry_id, bucket, unit, amount)
    ), d AS (
        SELECT bucket, unit, sum(amount) AS delta, coalesce(sum(amount) FILTER (WHERE amount < 0), 0) AS need
        FROM p WHERE bucket IN ('available', 'pending', 'held')
        GROUP BY bucket, unit
    ), upd AS (
        UPDATE accounts a SET balance = a.balance + d.delta, version = a.version + 1
        FROM d
        WHERE a.member_id = p_member AND a.bucket = d.bucket AND a.unit = d.unit AND a.balance + d.need >= 0
        RETURNING a.account_id, a.bucket, a.unit, a.balance
    ), ins AS (
        INSERT INTO postings (entry_id, account_id, amount)
        SELECT p.entry_id, coalesce(u.account_id, s.account_id), p.amount
        FROM p
        LEFT JOIN upd u ON u.bucket = p.bucket AND u.unit = p.unit
        LEFT JOIN accounts s ON p.bucket NOT IN ('available', 'pending', 'held')
                             AND s.member_id IS NULL AND s.campaign_id IS NULL AND s.bucket = p.bucket AND s.unit = p.unit
        WHERE coalesce(u.account_id, s.account_id) IS NOT NULL
    )
    SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM d),
           ARRAY[coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'points' AND a.bucket = 'available'), 0),
                 coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'points' AND a.bucket = 'pending'), 0),
                 coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'points' AND a.bucket = 'held'), 0),
                 coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'available'), 0),
                 coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'pending'), 0),
                 coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'held'), 0)]
    INTO v_updated, v_expected, v_balances
    FROM accounts a LEFT JOIN upd u ON u.account_id = a.account_id
    WHERE a.member_id = p_member;
    IF v_updated < v_expected THEN
        SELECT n.bucket, n.unit, n.need, a.balance INTO v_bucket, v_unit, v_need, v_balance
        FROM (SELECT bucket, unit, coalesce(sum(amount) FILTER (WHERE amount < 0), 0) AS need
              FROM unnest(p_buckets, p_units, p_amounts) AS p(bucket, unit, amount)
              WHERE bucket IN ('available', 'pending', 'held') GROUP BY bucket, unit) n
        LEFT JOIN accounts a ON a.member_id = p_member AND a.bucket = n.bucket AND a.unit = n.unit
        WHERE a.balance IS NULL OR a.balance + n.need < 0
        LIMIT 1;
        PERFORM ledger_fail('LY001', 'insufficient_balance', jsonb_build_object(
            'member_id', p_member, 'bucket', v_bucket, 'unit', v_unit,
            'requested', -v_need, 'available', coalesce(v_balance, 0)));
    END IF;
    RETURN v_balances;
END $$;

-- Consumes p_amount of the member's available lots, soonest expiry first (never-expiring last), recording each
-- piece in lot_consumptions after p_seq: one statement. The caller holds the member lock (every operation that
-- touches lots takes it first) and has already moved the balance, so the lots must cover the amount.
CREATE FUNCTION checkout_consume_lots(p_entry bigint, p_member bigint, p_unit text, p_amount bigint, p_seq integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_taken bigint;
BEGIN
    WITH open AS (
        SELECT lot_id, remaining_amount,
               sum(remaining_amount) OVER (ORDER BY expires_at ASC NULLS LAST, lot_id) - remaining_amount AS before
        FROM lots
        WHERE member_id = p_member AND unit = p_unit AND state = 'available' AND remaining_amount > 0
    ), take AS (
        SELECT lot_id, least(remaining_amount, p_amount - before) AS amount, row_number() OVER (ORDER BY before) AS seq
        FROM open WHERE before < p_amount
    ), upd AS (
        UPDATE lots l SET remaining_amount = l.remaining_amount - t.amount FROM take t WHERE l.lot_id = t.lot_id
    ), ins AS (
        INSERT INTO lot_consumptions (entry_id, seq, lot_id, amount)
        SELECT p_entry, p_seq + seq, lot_id, amount FROM take
    )
    SELECT coalesce(sum(amount), 0) INTO v_taken FROM take;
    IF v_taken < p_amount THEN
        PERFORM ledger_fail('LY099', 'ledger_invariant', jsonb_build_object(
            'member_id', p_member, 'unit', p_unit, 'reason', 'lots do not cover the available balance',
            'missing', p_amount - v_taken));
    END IF;
    RETURN v_taken;
END $$;

CREATE FUNCTION checkout_error(p_position integer, p_state text, p_message text, p_detail text) RETURNS checkout_result
LANGUAGE sql IMMUTABLE AS $$
    SELECT ROW(p_position, p_state, p_message, p_detail, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL, NULL, NULL)::checkout_result
$$;

-- What a commit stores under its key: only what the purchase record (pos_checkouts, written in the same
-- transaction) does not keep: the balances after it and the tier change. About 60 bytes instead of about 300
-- written again per commit; checkout_commit_replay puts the rest back from the purchase record.
CREATE FUNCTION checkout_commit_stored(p_response jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('points', p_response -> 'points')
           || CASE WHEN jsonb_typeof(p_response -> 'tier_change') = 'object'
                   THEN jsonb_build_object('tier_change', p_response -> 'tier_change') ELSE '{}'::jsonb END
$$;

-- The answer to a commit whose key is already stored: the stored response with replayed = true and the member as
-- it is now, or LY010 when the request differs. A response stored by checkout_commit_stored is completed from the
-- purchase record (entry ids, amounts, unit, rules version, lines); one stored whole by pos_commit is used as it is.
CREATE FUNCTION checkout_commit_replay(
    p_position integer, p_scope text, p_key text, p_hash bytea, p_stored_hash bytea, p_stored jsonb,
    p_terminal text, p_txn text, p_member bigint
) RETURNS checkout_result LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_checkout pos_checkouts%ROWTYPE;
    v_response jsonb;
BEGIN
    IF p_stored_hash IS DISTINCT FROM p_hash THEN
        RETURN checkout_error(p_position, 'LY010', 'idempotency_conflict',
                              jsonb_build_object('scope', p_scope, 'key', p_key)::text);
    END IF;
    SELECT * INTO v_checkout FROM pos_checkouts WHERE terminal_id = p_terminal AND pos_transaction_id = p_txn;
    IF p_stored ? 'awarded' THEN
        v_response := p_stored || jsonb_build_object('lines', coalesce(p_stored -> 'lines', v_checkout.lines));
    ELSE
        v_response := jsonb_build_object(
            'accrual_entry_id', coalesce(v_checkout.accrual_entry_id, 0),
            'redemption_entry_id', coalesce(v_checkout.redemption_entry_id, 0),
            'awarded', v_checkout.awarded, 'redeemed', v_checkout.redeemed, 'unit', v_checkout.unit,
            'rules_version', v_checkout.rules_version, 'tier_change', p_stored -> 'tier_change',
            'points', p_stored -> 'points', 'lines', v_checkout.lines);
    END IF;
    RETURN checkout_snapshot(p_position, coalesce(v_checkout.member_id, p_member),
                             v_response || jsonb_build_object('replayed', true));
END $$;

-- The items p_positions of a batch, one at a time (checkout_commit_batch's fallback: items whose member or key
-- occurs twice in the batch, and every item when the set-based pass failed). Items in member order, each in its
-- own subtransaction: a failing item rolls back alone and comes back as its error. One result row per position.
CREATE FUNCTION checkout_commit_items(
    p_scope text[], p_key text[], p_hash bytea[], p_terminal text[], p_txn text[], p_member bigint[],
    p_tier_code text[], p_unit text[], p_award bigint[], p_available_at timestamptz[], p_expires_at timestamptz[],
    p_occurred_at timestamptz[], p_rules_version text[], p_explanation jsonb[], p_spend_minor bigint[],
    p_lines jsonb[], p_paid_total_minor bigint[], p_hold bigint[], p_redeem bigint[], p_positions integer[]
) RETURNS SETOF checkout_result LANGUAGE plpgsql AS $$
DECLARE
    v_out checkout_result;
    v_i integer;
    v_member bigint;
    v_award bigint;
    v_redeem bigint;
    v_spend bigint;
    v_paid bigint;
    v_hold_id bigint;
    v_unit text;
    v_terminal text;
    v_txn text;
    v_occurred timestamptz;
    v_stored_hash bytea;
    v_stored jsonb;
    v_version bigint;
    v_status text;
    v_tier_id bigint;
    v_tier_code text;
    v_tier_name text;
    v_tier_rank integer;
    v_card text;
    v_phone text;
    v_anchor timestamptz;
    v_bound bigint;
    v_hold holds%ROWTYPE;
    v_redemption bigint;
    v_release bigint;
    v_accrual bigint;
    v_lot_state text;
    v_pe bigint[];
    v_pb text[];
    v_pu text[];
    v_pa bigint[];
    v_bal bigint[];
    v_tier_change jsonb;
    v_best tiers%ROWTYPE;
    v_window_max integer;
    v_window_spend bigint;
    v_reason text;
    v_response jsonb;
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    FOR v_i IN SELECT i FROM unnest(p_positions) AS i ORDER BY p_member[i], i LOOP
        v_member := p_member[v_i];
        v_terminal := p_terminal[v_i];
        v_txn := p_txn[v_i];
        -- A stored key: the replay or the conflict, without writing anything.
        IF p_key[v_i] IS NOT NULL THEN
            SELECT request_hash, response INTO v_stored_hash, v_stored
            FROM idempotency_keys WHERE scope = p_scope[v_i] AND key = p_key[v_i];
            IF FOUND THEN
                v_out := checkout_commit_replay(v_i, p_scope[v_i], p_key[v_i], p_hash[v_i], v_stored_hash, v_stored,
                                                     v_terminal, v_txn, v_member);
                RETURN NEXT v_out;
                CONTINUE;
            END IF;
        END IF;
        BEGIN
            v_award := coalesce(p_award[v_i], 0);
            v_redeem := coalesce(p_redeem[v_i], 0);
            v_spend := coalesce(p_spend_minor[v_i], 0);
            v_paid := coalesce(p_paid_total_minor[v_i], 0);
            v_unit := p_unit[v_i];
            v_hold_id := p_hold[v_i];
            v_occurred := coalesce(p_occurred_at[v_i], now());
            IF v_award < 0 OR v_redeem < 0 OR v_spend < 0 OR v_paid < 0 THEN
                PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object(
                    'award', v_award, 'redeem', v_redeem, 'spend_minor', v_spend));
            END IF;

            -- The member: locked, its ledger version moved and the purchase's spend added to the tier bound, in
            -- one update (the spend only counts with an award, as before: it is recorded on the accrual entry).
            UPDATE members m
            SET ledger_version = m.ledger_version + 1,
                tier_spend_bound_minor = m.tier_spend_bound_minor + CASE WHEN v_award > 0 THEN v_spend ELSE 0 END
            FROM tiers t
            WHERE m.member_id = v_member AND t.tier_id = m.tier_id
            RETURNING m.ledger_version, m.status, m.tier_id, t.code, t.name, t.rank, m.card_number, m.phone,
                      m.tier_spend_anchor, m.tier_spend_bound_minor
            INTO v_version, v_status, v_tier_id, v_tier_code, v_tier_name, v_tier_rank, v_card, v_phone,
                 v_anchor, v_bound;
            IF NOT FOUND THEN
                PERFORM ledger_fail('LY002', 'unknown_member', jsonb_build_object('member_id', v_member));
            END IF;
            IF v_status <> 'active' THEN
                PERFORM ledger_fail('LY003', 'member_not_active', jsonb_build_object('member_id', v_member, 'status', v_status));
            END IF;
            IF p_tier_code[v_i] IS NOT NULL AND v_tier_code <> p_tier_code[v_i] THEN
                PERFORM ledger_fail('LY014', 'tier_changed', jsonb_build_object(
                    'member_id', v_member, 'priced_at', p_tier_code[v_i], 'now', v_tier_code));
            END IF;

            -- The hold: this member's, taken by this terminal under this transaction id, still active, enough.
            -- Every change of a hold happens under its member's lock, so the plain read is stable.
            v_hold := NULL;
            IF v_hold_id IS NOT NULL THEN
                SELECT * INTO v_hold FROM holds WHERE hold_id = v_hold_id;
                IF NOT FOUND THEN
                    PERFORM ledger_fail('LY004', 'unknown_hold', jsonb_build_object('hold_id', v_hold_id));
                END IF;
                -- Holds taken before 0011 carry no terminal: bound by member only until they expire.
                IF v_hold.member_id <> v_member OR v_hold.unit <> 'points'
                   OR (v_hold.terminal_id IS NOT NULL
                       AND (v_hold.terminal_id <> v_terminal OR v_hold.pos_transaction_id IS DISTINCT FROM v_txn)) THEN
                    PERFORM ledger_fail('LY013', 'hold_mismatch', jsonb_build_object('hold_id', v_hold_id));
                END IF;
                IF v_hold.state <> 'active' THEN
                    PERFORM ledger_fail('LY005', 'hold_not_active', jsonb_build_object('hold_id', v_hold_id, 'state', v_hold.state));
                END IF;
                IF v_redeem > v_hold.amount THEN
                    PERFORM ledger_fail('LY006', 'hold_exceeded', jsonb_build_object(
                        'hold_id', v_hold_id, 'requested', v_redeem, 'held', v_hold.amount));
                END IF;
            END IF;

            -- The entries: redemption (or the release of an unused hold) first, then the accrual; one insert.
            v_redemption := NULL;
            v_release := NULL;
            v_accrual := NULL;
            IF v_redeem > 0 OR v_hold_id IS NOT NULL OR v_award > 0 THEN
                WITH e AS (
                    INSERT INTO journal_entries (kind, member_id, unit, amount, actor, rules_version, explanation,
                                                 occurred_at, hold_id, spend_minor)
                    SELECT v.kind, v_member, v.unit, v.amount, v_terminal, v.rules_version, v.explanation, v.occurred_at,
                           v.hold_id, v.spend
                    FROM (VALUES
                        (1, CASE WHEN v_redeem > 0 THEN 'redemption' WHEN v_hold_id IS NOT NULL THEN 'release' END,
                         'points', CASE WHEN v_redeem > 0 THEN v_redeem ELSE v_hold.amount END, NULL::text,
                         CASE WHEN v_redeem > 0 THEN jsonb_build_object('pos_transaction_id', v_txn) ELSE '{}'::jsonb END,
                         CASE WHEN v_redeem > 0 THEN v_occurred ELSE now() END, v_hold_id, 0::bigint),
                        (2, CASE WHEN v_award > 0 THEN 'accrual' END, v_unit, v_award, p_rules_version[v_i],
                         coalesce(p_explanation[v_i], '{}'::jsonb), v_occurred, NULL::bigint, v_spend)
                    ) AS v(ord, kind, unit, amount, rules_version, explanation, occurred_at, hold_id, spend)
                    WHERE v.kind IS NOT NULL
                    ORDER BY v.ord
                    RETURNING kind, entry_id
                )
                SELECT max(entry_id) FILTER (WHERE kind = 'redemption'), max(entry_id) FILTER (WHERE kind = 'release'),
                       max(entry_id) FILTER (WHERE kind = 'accrual')
                INTO v_redemption, v_release, v_accrual
                FROM e;
            END IF;

            -- Postings and balances, one statement.
            v_lot_state := CASE WHEN p_available_at[v_i] > now() THEN 'pending' ELSE 'available' END;
            IF v_redemption IS NOT NULL AND v_hold_id IS NOT NULL AND v_hold.amount > v_redeem THEN
                v_pe := ARRAY[v_redemption, v_redemption, v_redemption];
                v_pb := ARRAY['held', 'available', 'redeemed'];
                v_pu := ARRAY['points', 'points', 'points'];
                v_pa := ARRAY[-v_hold.amount, v_hold.amount - v_redeem, v_redeem];
            ELSIF v_redemption IS NOT NULL AND v_hold_id IS NOT NULL THEN
                v_pe := ARRAY[v_redemption, v_redemption];
                v_pb := ARRAY['held', 'redeemed'];
                v_pu := ARRAY['points', 'points'];
                v_pa := ARRAY[-v_hold.amount, v_redeem];
            ELSIF v_redemption IS NOT NULL THEN
                v_pe := ARRAY[v_redemption, v_redemption];
                v_pb := ARRAY['available', 'redeemed'];
                v_pu := ARRAY['points', 'points'];
                v_pa := ARRAY[-v_redeem, v_redeem];
            ELSIF v_release IS NOT NULL THEN
                v_pe := ARRAY[v_release, v_release];
                v_pb := ARRAY['held', 'available'];
                v_pu := ARRAY['points', 'points'];
                v_pa := ARRAY[-v_hold.amount, v_hold.amount];
            ELSE
                v_pe := '{}';
                v_pb := '{}';
                v_pu := '{}';
                v_pa := '{}';
            END IF;
            IF v_accrual IS NOT NULL THEN
                v_pe := v_pe || ARRAY[v_accrual, v_accrual];
                v_pb := v_pb || ARRAY['issued', v_lot_state];
                v_pu := v_pu || ARRAY[v_unit, v_unit];
                v_pa := v_pa || ARRAY[-v_award, v_award];
            END IF;
            v_bal := checkout_post(v_member, v_pe, v_pb, v_pu, v_pa);
            -- After the redemption's balance check, as before (the accrual came after the redemption).
            IF v_award > 0 AND p_expires_at[v_i] IS NOT NULL AND p_expires_at[v_i] <= p_available_at[v_i] THEN
                PERFORM ledger_fail('LY012', 'invalid_dates', jsonb_build_object(
                    'available_at', p_available_at[v_i], 'expires_at', p_expires_at[v_i]));
            END IF;
            IF v_hold_id IS NOT NULL THEN
                UPDATE holds SET state = CASE WHEN v_redeem > 0 THEN 'committed' ELSE 'released' END
                WHERE hold_id = v_hold_id;
            END IF;
            -- The redemption consumes existing lots before the purchase's own lot exists.
            IF v_redemption IS NOT NULL THEN
                PERFORM checkout_consume_lots(v_redemption, v_member, 'points', v_redeem, 0);
            END IF;
            IF v_accrual IS NOT NULL THEN
                INSERT INTO lots (member_id, entry_id, unit, original_amount, remaining_amount, state, available_at, expires_at)
                VALUES (v_member, v_accrual, v_unit, v_award, v_award, v_lot_state, p_available_at[v_i], p_expires_at[v_i]);
            END IF;

            -- The purchase that crosses a tier threshold upgrades the member, in this transaction. The exact spend
            -- query only runs when the bound says a higher tier may be reached (see the top of this file).
            v_tier_change := NULL;
            IF v_accrual IS NOT NULL AND v_spend > 0 AND EXISTS (
                SELECT 1 FROM tiers t
                WHERE t.rank > v_tier_rank
                  AND (v_anchor IS NULL OR v_anchor > now() - make_interval(days => t.qualification_window_days)
                       OR v_bound >= t.qualification_spend_minor)) THEN
                v_best := NULL;
                SELECT t.* INTO v_best FROM tiers t
                WHERE t.rank > v_tier_rank
                  AND member_spend_minor(v_member, t.qualification_window_days, now()) >= t.qualification_spend_minor
                ORDER BY t.rank DESC LIMIT 1;
                SELECT max(qualification_window_days) INTO v_window_max FROM tiers;
                SELECT coalesce(sum(spend_minor) FILTER (WHERE spend_minor > 0), 0) INTO v_bound
                FROM journal_entries
                WHERE member_id = v_member AND spend_minor <> 0
                  AND occurred_at > now() - make_interval(days => v_window_max);
                IF v_best.tier_id IS NULL THEN
                    UPDATE members SET tier_spend_anchor = now() - make_interval(days => v_window_max),
                                       tier_spend_bound_minor = v_bound
                    WHERE member_id = v_member;
                ELSE
                    v_window_spend := member_spend_minor(v_member, v_best.qualification_window_days, now());
                    v_reason := format('upgrade: spend %s over %s days reached %s', v_window_spend,
                                       v_best.qualification_window_days, v_best.qualification_spend_minor);
                    UPDATE members SET tier_id = v_best.tier_id, tier_changed_at = now(), updated_at = now(),
                                       tier_spend_anchor = now() - make_interval(days => v_window_max),
                                       tier_spend_bound_minor = v_bound
                    WHERE member_id = v_member;
                    INSERT INTO tier_changes (member_id, from_tier_id, to_tier_id, reason, spend_minor, actor)
                    VALUES (v_member, v_tier_id, v_best.tier_id, v_reason, v_window_spend, v_terminal);
                    v_tier_change := jsonb_build_object('from', v_tier_code, 'to', v_best.code, 'reason', v_reason);
                    v_tier_code := v_best.code;
                    v_tier_name := v_best.name;
                END IF;
            END IF;

            INSERT INTO pos_checkouts (terminal_id, pos_transaction_id, member_id, unit, accrual_entry_id,
                                       redemption_entry_id, awarded, redeemed, paid_total_minor, lines, rules_version,
                                       purchased_at)
            VALUES (v_terminal, v_txn, v_member, v_unit, v_accrual, v_redemption, v_award, v_redeem, v_paid,
                    p_lines[v_i], p_rules_version[v_i], v_occurred);
            v_response := jsonb_build_object(
                'accrual_entry_id', coalesce(v_accrual, 0), 'redemption_entry_id', coalesce(v_redemption, 0),
                'awarded', v_award, 'redeemed', v_redeem, 'unit', v_unit, 'rules_version', p_rules_version[v_i],
                'tier_change', v_tier_change,
                'points', jsonb_build_object('available', v_bal[1], 'pending', v_bal[2], 'held', v_bal[3]),
                'replayed', false);
            IF p_key[v_i] IS NOT NULL THEN
                INSERT INTO idempotency_keys (scope, key, request_hash, response)
                VALUES (p_scope[v_i], p_key[v_i], p_hash[v_i], checkout_commit_stored(v_response));
            END IF;
            v_out := ROW(v_i, NULL, NULL, NULL, v_response || jsonb_build_object('lines', p_lines[v_i]),
                              v_member, v_version, v_tier_code, v_tier_name, v_status, v_card, v_phone,
                              v_bal[1], v_bal[2], v_bal[3], v_bal[4], v_bal[5], v_bal[6])::checkout_result;
        EXCEPTION
            WHEN unique_violation THEN
                -- A concurrent request with the same key committed first (this one waited for it on the unique
                -- index): its stored answer, now visible, is this one's answer.
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
                SELECT request_hash, response INTO v_stored_hash, v_stored
                FROM idempotency_keys WHERE scope = p_scope[v_i] AND key = p_key[v_i];
                IF FOUND THEN
                    v_out := checkout_commit_replay(v_i, p_scope[v_i], p_key[v_i], p_hash[v_i], v_stored_hash,
                                                         v_stored, v_terminal, v_txn, v_member);
                ELSE
                    v_out := checkout_error(v_i, v_state, v_message, v_detail);
                END IF;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
                v_out := checkout_error(v_i, v_state, v_message, v_detail);
        END;
        RETURN NEXT v_out;
    END LOOP;
END $$;

-- An item of a commit batch as the set-based pass carries it: the request, then what the member update and the
-- checks found (error null = the item is written).
CREATE TYPE checkout_item AS (
    pos            integer,
    scope          text,
    key            text,
    hash           bytea,
    terminal       text,
    txn            text,
    member         bigint,
    priced_tier    text,
    unit           text,
    award          bigint,
    available_at   timestamptz,
    expires_at     timestamptz,
    occurred_at    timestamptz,
    rules_version  text,
    explanation    jsonb,
    spend          bigint,
    lines          jsonb,
    paid           bigint,
    hold           bigint,
    redeem         bigint,
    hold_amount    bigint,
    lot_state      text,
    version        bigint,
    status         text,
    tier_id        bigint,
    tier_code      text,
    tier_name      text,
    tier_rank      integer,
    card           text,
    phone          text,
    anchor         timestamptz,
    bound          bigint,
    error          text,
    error_message  text,
    error_detail   text
);

-- What the write statement answers per written item.
CREATE TYPE checkout_written AS (
    pos               integer,
    redemption_entry  bigint,
    accrual_entry     bigint,
    balances          bigint[],
    taken             bigint
);

-- The set-based pass of checkout_commit_batch over items p_positions, whose members and keys are distinct: the
-- same semantics as checkout_commit_items, but a handful of statements for the whole batch instead of a handful
-- per item (each statement has a fixed cost: executor start, the table's CHECK constraints prepared again,
-- foreign-key triggers), and no subtransaction per item:
--   1. one UPDATE of the batch's members (lock in member order, ledger version, tier-spend bound);
--   2. one SELECT that checks every item (amounts, member, tier, hold, balance) with a snapshot taken after the
--      locks; an item that fails is answered with its error and writes nothing further;
--   3. one statement that writes everything of the passing items: entries, postings, member balances (answering
--      the new balances), hold states, lot consumptions, new lots, purchase records;
--   4. the exact tier check, only for members whose bound says a higher tier may be reached;
--   5. one INSERT of the keys with their final responses.
-- Anything unexpected (a key inserted meanwhile by a concurrent duplicate, a lost race on a balance, a deadlock)
-- raises, and the caller rolls this pass back and runs the items one at a time.
CREATE FUNCTION checkout_commit_fast(
    p_scope text[], p_key text[], p_hash bytea[], p_terminal text[], p_txn text[], p_member bigint[],
    p_tier_code text[], p_unit text[], p_award bigint[], p_available_at timestamptz[], p_expires_at timestamptz[],
    p_occurred_at timestamptz[], p_rules_version text[], p_explanation jsonb[], p_spend_minor bigint[],
    p_lines jsonb[], p_paid_total_minor bigint[], p_hold bigint[], p_redeem bigint[], p_positions integer[],
    p_also_lock bigint[] DEFAULT '{}'
) RETURNS checkout_result[] LANGUAGE plpgsql AS $$
DECLARE
    v_items checkout_item[];
    v_members bigint[];
    v_written checkout_written[];
    v_updated integer;
    v_expected integer;
    v_short integer;
    v_item checkout_item;
    v_done checkout_written;
    v_changes jsonb := '{}'::jsonb;
    v_best tiers%ROWTYPE;
    v_window_max integer;
    v_window_spend bigint;
    v_bound bigint;
    v_reason text;
    v_results checkout_result[];
BEGIN
    SELECT array_agg(ROW(i, p_scope[i], p_key[i], p_hash[i], p_terminal[i], p_txn[i], p_member[i], p_tier_code[i],
                         p_unit[i], coalesce(p_award[i], 0), p_available_at[i], p_expires_at[i],
                         coalesce(p_occurred_at[i], now()), p_rules_version[i], coalesce(p_explanation[i], '{}'::jsonb),
                         coalesce(p_spend_minor[i], 0), p_lines[i], coalesce(p_paid_total_minor[i], 0), p_hold[i],
                         coalesce(p_redeem[i], 0), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                         NULL, NULL, NULL, NULL)::checkout_item ORDER BY p_member[i]),
           array_agg(p_member[i] ORDER BY p_member[i]) FILTER (WHERE p_member[i] IS NOT NULL)
    INTO v_items, v_members
    FROM unnest(p_positions) AS i;

    -- 1. The members: locked (the index scan over the sorted ids takes them in member order), version moved, each
    --    purchase's spend added to the tier bound (only with an award, as the spend is recorded on the accrual).
    --    p_also_lock (the members of the batch's items that go one at a time afterwards) are locked in the same
    --    pass, so that a batch takes all its members in one ascending order and two batches cannot deadlock.
    --    One table and the primary-key index only (sequential and bitmap scans are off for this function), so
    --    the rows are locked in ascending id order whatever the table's size or layout.
    WITH u AS (
        UPDATE members m
        SET ledger_version = m.ledger_version + 1,
            tier_spend_bound_minor = m.tier_spend_bound_minor
                + coalesce((SELECT sum(greatest(i.spend, 0)) FROM unnest(v_items) i
                            WHERE i.member = m.member_id AND i.award > 0), 0)
        WHERE m.member_id = ANY (v_members || coalesce(p_also_lock, '{}'))
        RETURNING m.member_id, m.ledger_version, m.status, m.tier_id, m.card_number, m.phone,
                  m.tier_spend_anchor, m.tier_spend_bound_minor
    ),
    -- 2. The checks, in the order of pos_commit (errors on the first failing one).
    c AS (
        SELECT i.*, u.member_id AS found, u.ledger_version AS u_version, u.status AS u_status, u.tier_id AS u_tier_id,
               t.code AS u_code, t.name AS u_name, t.rank AS u_rank, u.card_number AS u_card, u.phone AS u_phone,
               u.tier_spend_anchor AS u_anchor, u.tier_spend_bound_minor AS u_bound,
               h.member_id AS h_member, h.unit AS h_unit, h.state AS h_state, h.amount AS h_amount,
               h.terminal_id AS h_terminal, h.pos_transaction_id AS h_txn, h.hold_id AS h_id
        FROM unnest(v_items) i
        LEFT JOIN u ON u.member_id = i.member
        LEFT JOIN tiers t ON t.tier_id = u.tier_id
        LEFT JOIN holds h ON h.hold_id = i.hold
    )
    SELECT array_agg(ROW(c.pos, c.scope, c.key, c.hash, c.terminal, c.txn, c.member, c.priced_tier, c.unit, c.award,
                         c.available_at, c.expires_at, c.occurred_at, c.rules_version, c.explanation, c.spend, c.lines,
                         c.paid, c.hold, c.redeem, c.h_amount,
                         CASE WHEN c.available_at > now() THEN 'pending' ELSE 'available' END,
                         c.u_version, c.u_status, c.u_tier_id, c.u_code, c.u_name, c.u_rank, c.u_card, c.u_phone,
                         c.u_anchor, c.u_bound, NULL, NULL, NULL)::checkout_item ORDER BY c.member)
    INTO v_items
    FROM c;

    -- The checks that need the members locked (holds, balances) read in this statement's snapshot, taken after
    -- the locks; the member checks come first, so their order is pos_commit's.
    SELECT array_agg(ROW(i.pos, i.scope, i.key, i.hash, i.terminal, i.txn, i.member, i.priced_tier, i.unit, i.award,
                         i.available_at, i.expires_at, i.occurred_at, i.rules_version, i.explanation, i.spend, i.lines,
                         i.paid, i.hold, i.redeem, h.amount, i.lot_state, i.version, i.status, i.tier_id, i.tier_code,
                         i.tier_name, i.tier_rank, i.card, i.phone, i.anchor, i.bound, e.code,
                         CASE e.code WHEN 'LY011' THEN 'invalid_amount' WHEN 'LY002' THEN 'unknown_member'
                             WHEN 'LY003' THEN 'member_not_active' WHEN 'LY014' THEN 'tier_changed'
                             WHEN 'LY004' THEN 'unknown_hold' WHEN 'LY013' THEN 'hold_mismatch'
                             WHEN 'LY005' THEN 'hold_not_active' WHEN 'LY006' THEN 'hold_exceeded'
                             WHEN 'LY001' THEN 'insufficient_balance' WHEN 'LY012' THEN 'invalid_dates' END,
                         (CASE e.code
                             WHEN 'LY011' THEN jsonb_build_object('award', i.award, 'redeem', i.redeem, 'spend_minor', i.spend)
                             WHEN 'LY002' THEN jsonb_build_object('member_id', i.member)
                             WHEN 'LY003' THEN jsonb_build_object('member_id', i.member, 'status', i.status)
                             WHEN 'LY014' THEN jsonb_build_object('member_id', i.member, 'priced_at', i.priced_tier, 'now', i.tier_code)
                             WHEN 'LY004' THEN jsonb_build_object('hold_id', i.hold)
                             WHEN 'LY013' THEN jsonb_build_object('hold_id', i.hold)
                             WHEN 'LY005' THEN jsonb_build_object('hold_id', i.hold, 'state', h.state)
                             WHEN 'LY006' THEN jsonb_build_object('hold_id', i.hold, 'requested', i.redeem, 'held', h.amount)
                             WHEN 'LY001' THEN jsonb_build_object('member_id', i.member, 'bucket', 'available', 'unit', 'points',
                                                                  'requested', i.redeem, 'available', a.balance)
                             WHEN 'LY012' THEN jsonb_build_object('available_at', i.available_at, 'expires_at', i.expires_at)
                          END)::text)::checkout_item ORDER BY i.member)
    INTO v_items
    FROM unnest(v_items) i
    LEFT JOIN holds h ON h.hold_id = i.hold
    LEFT JOIN accounts a ON i.redeem > 0 AND i.hold IS NULL
                        AND a.member_id = i.member AND a.bucket = 'available' AND a.unit = 'points'
    CROSS JOIN LATERAL (SELECT CASE
        WHEN i.award < 0 OR i.redeem < 0 OR i.spend < 0 OR i.paid < 0 THEN 'LY011'
        WHEN i.version IS NULL THEN 'LY002'
        WHEN i.status <> 'active' THEN 'LY003'
        WHEN i.priced_tier IS NOT NULL AND i.tier_code <> i.priced_tier THEN 'LY014'
        WHEN i.hold IS NOT NULL AND h.hold_id IS NULL THEN 'LY004'
        WHEN i.hold IS NOT NULL AND (h.member_id <> i.member OR h.unit <> 'points'
                                     OR (h.terminal_id IS NOT NULL
                                         AND (h.terminal_id <> i.terminal OR h.pos_transaction_id IS DISTINCT FROM i.txn))) THEN 'LY013'
        WHEN i.hold IS NOT NULL AND h.state <> 'active' THEN 'LY005'
        WHEN i.hold IS NOT NULL AND i.redeem > h.amount THEN 'LY006'
        WHEN i.redeem > 0 AND i.hold IS NULL AND a.balance < i.redeem THEN 'LY001'
        WHEN i.award > 0 AND i.expires_at IS NOT NULL AND i.expires_at <= i.available_at THEN 'LY012'
        END AS code) e;

    -- 3. Everything the passing items write, in one statement.
    WITH w AS (
        SELECT * FROM unnest(v_items) WHERE error IS NULL
    ), ev AS (
        SELECT w.member, w.terminal, v.*
        FROM w CROSS JOIN LATERAL (VALUES
            (1, CASE WHEN w.redeem > 0 THEN 'redemption' WHEN w.hold IS NOT NULL THEN 'release' END, 'points',
             CASE WHEN w.redeem > 0 THEN w.redeem ELSE w.hold_amount END, NULL::text,
             CASE WHEN w.redeem > 0 THEN jsonb_build_object('pos_transaction_id', w.txn) ELSE '{}'::jsonb END,
             CASE WHEN w.redeem > 0 THEN w.occurred_at ELSE now() END, w.hold, 0::bigint),
            (2, CASE WHEN w.award > 0 THEN 'accrual' END, w.unit, w.award, w.rules_version, w.explanation,
             w.occurred_at, NULL::bigint, w.spend)
        ) AS v(ord, kind, unit, amount, rules_version, explanation, occurred_at, hold_id, spend)
        WHERE v.kind IS NOT NULL
    ), e AS (
        INSERT INTO journal_entries (kind, member_id, unit, amount, actor, rules_version, explanation, occurred_at,
                                     hold_id, spend_minor)
        SELECT kind, member, unit, amount, terminal, rules_version, explanation, occurred_at, hold_id, spend
        FROM ev ORDER BY member, ord
        RETURNING entry_id, member_id, kind
    ), x AS (
        SELECT w.*, r.entry_id AS red_entry, a.entry_id AS acc_entry
        FROM w
        LEFT JOIN e r ON r.member_id = w.member AND r.kind <> 'accrual'
        LEFT JOIN e a ON a.member_id = w.member AND a.kind = 'accrual'
    ), p AS (
        SELECT member, red_entry AS entry_id, 'held' AS bucket, 'points' AS unit, -hold_amount AS amount
        FROM x WHERE hold IS NOT NULL
        UNION ALL
        SELECT member, red_entry, 'available', 'points', CASE WHEN hold IS NOT NULL THEN hold_amount - redeem ELSE -redeem END
        FROM x WHERE red_entry IS NOT NULL AND (hold IS NULL OR hold_amount <> redeem)
        UNION ALL
        SELECT member, red_entry, 'redeemed', 'points', redeem FROM x WHERE redeem > 0
        UNION ALL
        SELECT member, acc_entry, 'issued', unit, -award FROM x WHERE acc_entry IS NOT NULL
        UNION ALL
        SELECT member, acc_entry, lot_state, unit, award FROM x WHERE acc_entry IS NOT NULL
    ), d AS (
        SELECT member, bucket, unit, sum(amount) AS delta, coalesce(sum(amount) FILTER (WHERE amount < 0), 0) AS need
        FROM p WHERE bucket IN ('available', 'pending', 'held')
        GROUP BY member, bucket, unit
    ), upd AS (
        UPDATE accounts a SET balance = a.balance + d.delta, version = a.version + 1
        FROM d
        WHERE a.member_id = d.member AND a.bucket = d.bucket AND a.unit = d.unit AND a.balance + d.need >= 0
        RETURNING a.account_id, a.member_id, a.bucket, a.unit, a.balance
    ), sys AS (
        SELECT account_id, bucket, unit FROM accounts
        WHERE member_id IS NULL AND campaign_id IS NULL AND bucket IN ('issued', 'redeemed')
    ), posted AS (
        INSERT INTO postings (entry_id, account_id, amount)
        SELECT p.entry_id, coalesce(u.account_id, s.account_id), p.amount
        FROM p
        LEFT JOIN upd u ON u.member_id = p.member AND u.bucket = p.bucket AND u.unit = p.unit
        LEFT JOIN sys s ON s.bucket = p.bucket AND s.unit = p.unit
        WHERE coalesce(u.account_id, s.account_id) IS NOT NULL
    ), held AS (
        UPDATE holds h SET state = CASE WHEN x.redeem > 0 THEN 'committed' ELSE 'released' END
        FROM x WHERE h.hold_id = x.hold
    ), open AS (
        -- Redemptions consume the lots there were before this statement (its new lots are not seen here).
        SELECT l.lot_id, l.member_id, l.remaining_amount, x.redeem, x.red_entry,
               sum(l.remaining_amount) OVER (PARTITION BY l.member_id ORDER BY l.expires_at ASC NULLS LAST, l.lot_id)
                   - l.remaining_amount AS before
        FROM x JOIN lots l ON l.member_id = x.member AND l.unit = 'points' AND l.state = 'available' AND l.remaining_amount > 0
        WHERE x.redeem > 0
    ), take AS (
        SELECT lot_id, member_id, red_entry, least(remaining_amount, redeem - before) AS amount,
               row_number() OVER (PARTITION BY member_id ORDER BY before) AS seq
        FROM open WHERE before < redeem
    ), consumed AS (
        UPDATE lots l SET remaining_amount = l.remaining_amount - t.amount FROM take t WHERE l.lot_id = t.lot_id
    ), consumptions AS (
        INSERT INTO lot_consumptions (entry_id, seq, lot_id, amount) SELECT red_entry, seq, lot_id, amount FROM take
    ), new_lots AS (
        INSERT INTO lots (member_id, entry_id, unit, original_amount, remaining_amount, state, available_at, expires_at)
        SELECT member, acc_entry, unit, award, award, lot_state, available_at, expires_at FROM x WHERE acc_entry IS NOT NULL
    ), purchases AS (
        INSERT INTO pos_checkouts (terminal_id, pos_transaction_id, member_id, unit, accrual_entry_id,
                                   redemption_entry_id, awarded, redeemed, paid_total_minor, lines, rules_version,
                                   purchased_at)
        SELECT terminal, txn, member, unit, acc_entry, CASE WHEN redeem > 0 THEN red_entry END, award, redeem, paid,
               lines, rules_version, occurred_at
        FROM x
    )
    SELECT array_agg(ROW(x.pos, CASE WHEN x.redeem > 0 THEN x.red_entry END, x.acc_entry, b.balances,
                         (SELECT coalesce(sum(t.amount), 0) FROM take t WHERE t.member_id = x.member))::checkout_written
                     ORDER BY x.member),
           (SELECT count(*) FROM upd), (SELECT count(*) FROM d),
           count(*) FILTER (WHERE x.redeem > 0 AND (SELECT coalesce(sum(t.amount), 0) FROM take t WHERE t.member_id = x.member) <> x.redeem)
    INTO v_written, v_updated, v_expected, v_short
    FROM x
    CROSS JOIN LATERAL (
        SELECT ARRAY[
            coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'points' AND a.bucket = 'available'), 0),
            coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'points' AND a.bucket = 'pending'), 0),
            coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'points' AND a.bucket = 'held'), 0),
            coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'available'), 0),
            coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'pending'), 0),
            coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'held'), 0)]
            AS balances
        FROM accounts a LEFT JOIN upd u ON u.account_id = a.account_id
        WHERE a.member_id = x.member
    ) b;
    IF v_updated IS DISTINCT FROM v_expected OR v_short > 0 THEN
        -- A balance or the lots did not cover what the checks saw: let the items run one at a time.
        PERFORM ledger_fail('LY099', 'ledger_invariant', jsonb_build_object(
            'reason', 'set-based commit pass found a balance or lots short', 'updated', v_updated,
            'expected', v_expected, 'short', v_short));
    END IF;

    -- 4. Tier upgrades: the exact spend query only where the bound says a higher tier may be reached.
    FOR v_item IN
        SELECT i.* FROM unnest(v_items) i
        WHERE i.error IS NULL AND i.award > 0 AND i.spend > 0
          AND EXISTS (SELECT 1 FROM tiers t
                      WHERE t.rank > i.tier_rank
                        AND (i.anchor IS NULL OR i.anchor > now() - make_interval(days => t.qualification_window_days)
                             OR i.bound >= t.qualification_spend_minor))
    LOOP
        v_best := NULL;
        SELECT t.* INTO v_best FROM tiers t
        WHERE t.rank > v_item.tier_rank
          AND member_spend_minor(v_item.member, t.qualification_window_days, now()) >= t.qualification_spend_minor
        ORDER BY t.rank DESC LIMIT 1;
        SELECT max(qualification_window_days) INTO v_window_max FROM tiers;
        SELECT coalesce(sum(spend_minor) FILTER (WHERE spend_minor > 0), 0) INTO v_bound
        FROM journal_entries
        WHERE member_id = v_item.member AND spend_minor <> 0 AND occurred_at > now() - make_interval(days => v_window_max);
        IF v_best.tier_id IS NULL THEN
            UPDATE members SET tier_spend_anchor = now() - make_interval(days => v_window_max), tier_spend_bound_minor = v_bound
            WHERE member_id = v_item.member;
        ELSE
            v_window_spend := member_spend_minor(v_item.member, v_best.qualification_window_days, now());
            v_reason := format('upgrade: spend %s over %s days reached %s', v_window_spend,
                               v_best.qualification_window_days, v_best.qualification_spend_minor);
            UPDATE members SET tier_id = v_best.tier_id, tier_changed_at = now(), updated_at = now(),
                               tier_spend_anchor = now() - make_interval(days => v_window_max),
                               tier_spend_bound_minor = v_bound
            WHERE member_id = v_item.member;
            INSERT INTO tier_changes (member_id, from_tier_id, to_tier_id, reason, spend_minor, actor)
            VALUES (v_item.member, v_item.tier_id, v_best.tier_id, v_reason, v_window_spend, v_item.terminal);
            v_changes := v_changes || jsonb_build_object(v_item.pos::text, jsonb_build_object(
                'change', jsonb_build_object('from', v_item.tier_code, 'to', v_best.code, 'reason', v_reason),
                'code', v_best.code, 'name', v_best.name));
        END IF;
    END LOOP;

    -- 5. The keys with their final responses (in the stored form of checkout_commit_stored), and the answers.
    WITH r AS (
        SELECT i.*, wr.balances,
               jsonb_build_object(
                   'accrual_entry_id', coalesce(wr.accrual_entry, 0), 'redemption_entry_id', coalesce(wr.redemption_entry, 0),
                   'awarded', i.award, 'redeemed', i.redeem, 'unit', i.unit, 'rules_version', i.rules_version,
                   'tier_change', v_changes -> i.pos::text -> 'change',
                   'points', jsonb_build_object('available', wr.balances[1], 'pending', wr.balances[2], 'held', wr.balances[3]),
                   'replayed', false) AS response
        FROM unnest(v_items) i JOIN unnest(v_written) wr ON wr.pos = i.pos
    ), k AS (
        INSERT INTO idempotency_keys (scope, key, request_hash, response)
        SELECT scope, key, hash, checkout_commit_stored(response) FROM r WHERE key IS NOT NULL
    )
    SELECT array_agg(ROW(r.pos, NULL, NULL, NULL, r.response || jsonb_build_object('lines', r.lines), r.member, r.version,
                         coalesce(v_changes -> r.pos::text ->> 'code', r.tier_code),
                         coalesce(v_changes -> r.pos::text ->> 'name', r.tier_name), r.status, r.card, r.phone,
                         r.balances[1], r.balances[2], r.balances[3], r.balances[4], r.balances[5], r.balances[6])::checkout_result)
    INTO v_results
    FROM r;
    RETURN coalesce(v_results, '{}') || coalesce((
        SELECT array_agg(checkout_error(i.pos, i.error, i.error_message, i.error_detail))
        FROM unnest(v_items) i WHERE i.error IS NOT NULL), '{}');
END $$;

-- Commits of many tills in one call and one transaction (what pos_commit_batch does, with typed arrays: element
-- i of every array is item i). One result row per item, in item order, "position" = i; at most 64 items.
-- Per item: redeem (from the hold, whose unused rest goes back to available, or from available points; lots
-- consumed soonest expiry first) before awarding; a hold named without redemption is released; the award is a
-- lot, pending until available_at; the purchase that crosses a tier threshold upgrades the member (tier_change);
-- a pos_checkouts row; the response stored under the key. An item that fails writes nothing and comes back as its
-- error; the others commit.
-- Items whose key is already stored are answered from it (replay, or LY010). The rest go through the set-based
-- pass (checkout_commit_fast) in one subtransaction; items whose member or key occurs twice in the batch, and all
-- items when that pass raised, go one at a time (checkout_commit_items, a subtransaction each). Members are locked
-- in member order, so two batches sharing members cannot deadlock.
CREATE FUNCTION checkout_commit_batch(
    p_scope text[], p_key text[], p_hash bytea[], p_terminal text[], p_txn text[], p_member bigint[],
    p_tier_code text[], p_unit text[], p_award bigint[], p_available_at timestamptz[], p_expires_at timestamptz[],
    p_occurred_at timestamptz[], p_rules_version text[], p_explanation jsonb[], p_spend_minor bigint[],
    p_lines jsonb[], p_paid_total_minor bigint[], p_hold bigint[], p_redeem bigint[]
) RETURNS SETOF checkout_result LANGUAGE plpgsql AS $$
DECLARE
    v_n integer := coalesce(cardinality(p_member), 0);
    v_out checkout_result[];
    v_row checkout_result;
    v_stored record;
    v_stored_positions integer[];
    v_twice boolean;
    v_fast integer[];
    v_slow integer[];
BEGIN
    IF v_n > 64 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object('batch_size', v_n));
    END IF;
    IF v_n = 0 THEN
        RETURN;
    END IF;
    IF coalesce(cardinality(p_scope), 0) <> v_n OR coalesce(cardinality(p_key), 0) <> v_n
       OR coalesce(cardinality(p_hash), 0) <> v_n OR coalesce(cardinality(p_terminal), 0) <> v_n
       OR coalesce(cardinality(p_txn), 0) <> v_n OR coalesce(cardinality(p_tier_code), 0) <> v_n
       OR coalesce(cardinality(p_unit), 0) <> v_n OR coalesce(cardinality(p_award), 0) <> v_n
       OR coalesce(cardinality(p_available_at), 0) <> v_n OR coalesce(cardinality(p_expires_at), 0) <> v_n
       OR coalesce(cardinality(p_occurred_at), 0) <> v_n OR coalesce(cardinality(p_rules_version), 0) <> v_n
       OR coalesce(cardinality(p_explanation), 0) <> v_n OR coalesce(cardinality(p_spend_minor), 0) <> v_n
       OR coalesce(cardinality(p_lines), 0) <> v_n OR coalesce(cardinality(p_paid_total_minor), 0) <> v_n
       OR coalesce(cardinality(p_hold), 0) <> v_n OR coalesce(cardinality(p_redeem), 0) <> v_n THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object('reason', 'argument arrays differ in length'));
    END IF;
    IF v_n = 1 THEN
        -- A batch of one costs least through the one-at-a-time path (the set-based statements' fixed cost is
        -- only worth it from two commits on).
        RETURN QUERY SELECT * FROM checkout_commit_items(p_scope, p_key, p_hash, p_terminal, p_txn, p_member,
            p_tier_code, p_unit, p_award, p_available_at, p_expires_at, p_occurred_at, p_rules_version, p_explanation,
            p_spend_minor, p_lines, p_paid_total_minor, p_hold, p_redeem, ARRAY[1]);
        RETURN;
    END IF;
    v_out := array_fill(NULL::checkout_result, ARRAY[v_n]);
    -- Stored keys (answered from the key: the replay or the conflict, writing nothing), and whether a member or a
    -- key occurs twice among the others: one read.
    SELECT coalesce(array_agg(i.pos::integer) FILTER (WHERE k.key IS NOT NULL), '{}'),
           coalesce(array_agg(i.pos::integer) FILTER (WHERE k.key IS NULL), '{}'),
           count(DISTINCT i.member) FILTER (WHERE k.key IS NULL) < count(*) FILTER (WHERE k.key IS NULL)
           OR count(*) FILTER (WHERE k.key IS NULL AND i.member IS NULL) > 0
           OR count(DISTINCT (i.scope, i.key)) FILTER (WHERE k.key IS NULL AND i.key IS NOT NULL)
              < count(*) FILTER (WHERE k.key IS NULL AND i.key IS NOT NULL)
    INTO v_stored_positions, v_fast, v_twice
    FROM unnest(p_scope, p_key, p_member) WITH ORDINALITY AS i(scope, key, member, pos)
    LEFT JOIN idempotency_keys k ON k.scope = i.scope AND k.key = i.key;
    IF cardinality(v_stored_positions) > 0 THEN
        FOR v_stored IN
            SELECT i.pos, k.request_hash, k.response
            FROM unnest(v_stored_positions) AS i(pos)
            JOIN idempotency_keys k ON k.scope = p_scope[i.pos] AND k.key = p_key[i.pos]
        LOOP
            v_out[v_stored.pos] := checkout_commit_replay(v_stored.pos, p_scope[v_stored.pos], p_key[v_stored.pos],
                p_hash[v_stored.pos], v_stored.request_hash, v_stored.response, p_terminal[v_stored.pos],
                p_txn[v_stored.pos], p_member[v_stored.pos]);
        END LOOP;
    END IF;
    v_slow := '{}';
    IF v_twice THEN
        -- Items whose member or key occurs twice go one at a time, after the others.
        SELECT coalesce(array_agg(pos) FILTER (WHERE NOT twice), '{}'), coalesce(array_agg(pos) FILTER (WHERE twice), '{}')
        INTO v_fast, v_slow
        FROM (SELECT i.pos,
                     count(*) OVER (PARTITION BY p_member[i.pos]) > 1 OR p_member[i.pos] IS NULL
                     OR (p_key[i.pos] IS NOT NULL AND count(*) OVER (PARTITION BY p_scope[i.pos], p_key[i.pos]) > 1) AS twice
              FROM unnest(v_fast) AS i(pos)) AS open_items;
    END IF;
    IF cardinality(v_fast) > 0 THEN
        BEGIN
            FOR v_row IN
                SELECT * FROM unnest(checkout_commit_fast(p_scope, p_key, p_hash, p_terminal, p_txn, p_member,
                    p_tier_code, p_unit, p_award, p_available_at, p_expires_at, p_occurred_at, p_rules_version,
                    p_explanation, p_spend_minor, p_lines, p_paid_total_minor, p_hold, p_redeem, v_fast,
                    ARRAY(SELECT p_member[i] FROM unnest(v_slow) AS i WHERE p_member[i] IS NOT NULL)))
            LOOP
                v_out[v_row.position] := v_row;
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            -- Rolled back whole: every item again, one at a time (each then gets its own answer or error).
            RAISE DEBUG 'checkout_commit_batch: set-based pass rolled back (% %), items one at a time', SQLSTATE, SQLERRM;
            v_slow := v_slow || v_fast;
            FOREACH v_n IN ARRAY v_fast LOOP
                v_out[v_n] := NULL;
            END LOOP;
        END;
    END IF;
    IF cardinality(v_slow) > 0 THEN
        FOR v_row IN
            SELECT * FROM checkout_commit_items(p_scope, p_key, p_hash, p_terminal, p_txn, p_member, p_tier_code,
                p_unit, p_award, p_available_at, p_expires_at, p_occurred_at, p_rules_version, p_explanation,
                p_spend_minor, p_lines, p_paid_total_minor, p_hold, p_redeem, v_slow)
        LOOP
            v_out[v_row.position] := v_row;
        END LOOP;
    END IF;
    RETURN QUERY SELECT * FROM unnest(v_out);
END $$;

-- The single-operation writes below (hold, cancel, refund) are one transaction each and raise their errors like
-- the pos_* functions. A concurrent duplicate is made to wait for the first with a transaction-scoped advisory
-- lock on the key (memory only, nothing written); it then finds the stored key with the plain SELECT.
CREATE FUNCTION checkout_key_lock(p_scope text, p_key text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(p_scope || chr(31) || p_key, 12));
    END IF;
END $$;

-- The stored response of a key (NULL when there is none); LY010 when the key was used for another request.
CREATE FUNCTION checkout_stored(p_scope text, p_key text, p_hash bytea) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_hash bytea;
    v_response jsonb;
BEGIN
    IF p_key IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT request_hash, response INTO v_hash, v_response FROM idempotency_keys WHERE scope = p_scope AND key = p_key;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF v_hash IS DISTINCT FROM p_hash THEN
        PERFORM ledger_fail('LY010', 'idempotency_conflict', jsonb_build_object('scope', p_scope, 'key', p_key));
    END IF;
    RETURN v_response || jsonb_build_object('replayed', true);
END $$;

-- Hold: reserve available points for a checkout, bound to this terminal and transaction id. The response is the
-- one pos_hold answered (entry_id, member_id, unit, ledger_version, balances, hold_id, amount, expires_at,
-- expires_at_ms, replayed). The hold and its entry name each other, so both go in one statement (the entry id is
-- taken from its sequence first): no second update of the entry.
CREATE FUNCTION checkout_hold(
    p_scope text, p_key text, p_hash bytea, p_terminal text, p_txn text, p_member bigint, p_amount bigint,
    p_expires_at timestamptz
) RETURNS checkout_result LANGUAGE plpgsql AS $$
DECLARE
    v_stored jsonb;
    v_version bigint;
    v_status text;
    v_tier_code text;
    v_tier_name text;
    v_card text;
    v_phone text;
    v_entry bigint;
    v_hold bigint;
    v_bal bigint[];
    v_response jsonb;
BEGIN
    PERFORM checkout_key_lock(p_scope, p_key);
    v_stored := checkout_stored(p_scope, p_key, p_hash);
    IF v_stored IS NOT NULL THEN
        -- A hold stored by the older path (before 0013) has no expires_at_ms in its answer: add it from the hold.
        IF NOT v_stored ? 'expires_at_ms' THEN
            v_stored := v_stored || jsonb_build_object('expires_at_ms',
                (SELECT (extract(epoch FROM expires_at) * 1000)::bigint FROM holds WHERE hold_id = (v_stored ->> 'hold_id')::bigint));
        END IF;
        RETURN checkout_snapshot(1, p_member, v_stored);
    END IF;
    IF p_amount IS NULL OR p_amount <= 0 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object('amount', p_amount));
    END IF;
    IF p_expires_at <= now() THEN
        PERFORM ledger_fail('LY012', 'invalid_dates', jsonb_build_object('expires_at', p_expires_at));
    END IF;
    UPDATE members m SET ledger_version = m.ledger_version + 1
    FROM tiers t
    WHERE m.member_id = p_member AND t.tier_id = m.tier_id
    RETURNING m.ledger_version, m.status, t.code, t.name, m.card_number, m.phone
    INTO v_version, v_status, v_tier_code, v_tier_name, v_card, v_phone;
    IF NOT FOUND THEN
        PERFORM ledger_fail('LY002', 'unknown_member', jsonb_build_object('member_id', p_member));
    END IF;
    IF v_status <> 'active' THEN
        PERFORM ledger_fail('LY003', 'member_not_active', jsonb_build_object('member_id', p_member, 'status', v_status));
    END IF;
    v_entry := nextval('journal_entries_entry_id_seq'::regclass);
    WITH h AS (
        INSERT INTO holds (member_id, unit, amount, entry_id, expires_at, terminal_id, pos_transaction_id)
        VALUES (p_member, 'points', p_amount, v_entry, p_expires_at, p_terminal, p_txn)
        RETURNING hold_id
    )
    INSERT INTO journal_entries (entry_id, kind, member_id, unit, amount, actor, explanation, occurred_at, hold_id)
    OVERRIDING SYSTEM VALUE
    SELECT v_entry, 'hold', p_member, 'points', p_amount, p_terminal, '{}'::jsonb, now(), h.hold_id FROM h
    RETURNING hold_id INTO v_hold;
    v_bal := checkout_post(p_member, ARRAY[v_entry, v_entry], ARRAY['available', 'held'], ARRAY['points', 'points'],
                           ARRAY[-p_amount, p_amount]);
    v_response := jsonb_build_object(
        'entry_id', v_entry, 'member_id', p_member, 'unit', 'points', 'ledger_version', v_version,
        'balances', jsonb_build_object('available', v_bal[1], 'pending', v_bal[2], 'held', v_bal[3]),
        'hold_id', v_hold, 'amount', p_amount, 'expires_at', p_expires_at,
        'expires_at_ms', (extract(epoch FROM p_expires_at) * 1000)::bigint, 'replayed', false);
    IF p_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (scope, key, request_hash, entry_id, response)
        VALUES (p_scope, p_key, p_hash, v_entry, v_response);
    END IF;
    RETURN ROW(1, NULL, NULL, NULL, v_response, p_member, v_version, v_tier_code, v_tier_name, v_status, v_card,
               v_phone, v_bal[1], v_bal[2], v_bal[3], v_bal[4], v_bal[5], v_bal[6])::checkout_result;
END $$;

-- Reverses part of an accrual (a return) or of a redemption (points paid back), as ledger_reverse does, for a
-- caller that already holds the member lock and writes the key itself. Accrual: from its own lot first (only
-- what is not held), then other available lots, the rest recorded as unrecovered. Redemption: restored into the
-- lots it consumed, last consumed first. The entry is written once, with its unrecovered amount.
CREATE FUNCTION checkout_reverse(
    p_member bigint, p_original bigint, p_amount bigint, p_occurred_at timestamptz, p_actor text,
    p_explanation jsonb, p_refunded_spend_minor bigint,
    OUT entry_id bigint, OUT recovered bigint, OUT unrecovered bigint, OUT balances bigint[]
) LANGUAGE plpgsql AS $$
DECLARE
    v_original journal_entries%ROWTYPE;
    v_lot_id bigint;
    v_lot_state text;
    v_lot_remaining bigint := 0;
    v_available bigint;
    v_own bigint := 0;
    v_other bigint := 0;
    v_restored bigint;
    v_pb text[];
    v_pa bigint[];
BEGIN
    IF p_amount IS NULL OR p_amount <= 0 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object('amount', p_amount));
    END IF;
    SELECT * INTO v_original FROM journal_entries e WHERE e.entry_id = p_original;
    IF NOT FOUND OR v_original.member_id <> p_member THEN
        PERFORM ledger_fail('LY007', 'unknown_entry', jsonb_build_object('entry_id', p_original));
    END IF;
    IF v_original.kind NOT IN ('accrual', 'redemption') THEN
        PERFORM ledger_fail('LY008', 'not_reversible', jsonb_build_object('entry_id', p_original, 'kind', v_original.kind));
    END IF;
    IF v_original.reversed_amount + p_amount > v_original.amount THEN
        PERFORM ledger_fail('LY009', 'reversal_exceeds_remaining', jsonb_build_object(
            'entry_id', p_original, 'requested', p_amount,
            'remaining', v_original.amount - v_original.reversed_amount));
    END IF;
    IF p_refunded_spend_minor < 0 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object('refunded_spend_minor', p_refunded_spend_minor));
    END IF;
    IF v_original.kind = 'accrual' THEN
        -- The accrual's own lot, through the open-lots index (a lot with nothing left gives nothing back).
        SELECT l.lot_id, l.state, l.remaining_amount INTO v_lot_id, v_lot_state, v_lot_remaining
        FROM lots l
        WHERE l.member_id = p_member AND l.unit = v_original.unit AND l.remaining_amount > 0 AND l.entry_id = p_original;
        v_lot_remaining := coalesce(v_lot_remaining, 0);
        SELECT a.balance INTO v_available FROM accounts a
        WHERE a.member_id = p_member AND a.bucket = 'available' AND a.unit = v_original.unit;
        -- Points of an available lot may be held by a checkout in progress: never take those.
        v_own := CASE WHEN v_lot_state = 'pending' THEN least(p_amount, v_lot_remaining)
                      WHEN v_lot_state = 'available' THEN least(p_amount, v_lot_remaining, v_available)
                      ELSE 0 END;
        IF v_lot_state = 'available' THEN
            v_available := v_available - v_own;
        END IF;
        v_other := least(p_amount - v_own, v_available);
    END IF;
    INSERT INTO journal_entries (kind, member_id, unit, amount, actor, reverses_entry_id, explanation, occurred_at,
                                 spend_minor, unrecovered_amount)
    VALUES ('reversal', p_member, v_original.unit, p_amount, p_actor, p_original, coalesce(p_explanation, '{}'::jsonb),
            coalesce(p_occurred_at, now()), -coalesce(p_refunded_spend_minor, 0),
            CASE WHEN v_original.kind = 'accrual' THEN p_amount - v_own - v_other ELSE 0 END)
    RETURNING journal_entries.entry_id INTO entry_id;
    UPDATE journal_entries e SET reversed_amount = e.reversed_amount + p_amount WHERE e.entry_id = p_original;
    IF v_original.kind = 'accrual' THEN
        IF v_own > 0 THEN
            UPDATE lots l SET remaining_amount = l.remaining_amount - v_own,
                              state = CASE WHEN l.remaining_amount - v_own = 0 THEN 'reversed' ELSE l.state END
            WHERE l.lot_id = v_lot_id;
        END IF;
        IF v_other > 0 THEN
            PERFORM checkout_consume_lots(entry_id, p_member, v_original.unit, v_other, 0);
        END IF;
        v_pb := '{}';
        v_pa := '{}';
        IF v_lot_state = 'pending' AND v_own > 0 THEN
            v_pb := v_pb || 'pending'::text;
            v_pa := v_pa || -v_own;
            IF v_other > 0 THEN
                v_pb := v_pb || 'available'::text;
                v_pa := v_pa || -v_other;
            END IF;
        ELSIF v_own + v_other > 0 THEN
            v_pb := v_pb || 'available'::text;
            v_pa := v_pa || -(v_own + v_other);
        END IF;
        IF v_own + v_other > 0 THEN
            v_pb := v_pb || 'issued'::text;
            v_pa := v_pa || (v_own + v_other);
        END IF;
        recovered := v_own + v_other;
        unrecovered := p_amount - v_own - v_other;
    ELSE
        WITH c AS (
            SELECT lc.seq, lc.lot_id, lc.amount - lc.restored_amount AS restorable,
                   sum(lc.amount - lc.restored_amount) OVER (ORDER BY lc.seq DESC) - (lc.amount - lc.restored_amount) AS before
            FROM lot_consumptions lc
            WHERE lc.entry_id = p_original AND lc.amount > lc.restored_amount
        ), t AS (
            SELECT seq, lot_id, least(restorable, p_amount - before) AS take FROM c WHERE before < p_amount
        ), u1 AS (
            UPDATE lot_consumptions lc SET restored_amount = lc.restored_amount + t.take
            FROM t WHERE lc.entry_id = p_original AND lc.seq = t.seq
        ), u2 AS (
            UPDATE lots l SET remaining_amount = l.remaining_amount + s.take, state = 'available'
            FROM (SELECT lot_id, sum(take) AS take FROM t GROUP BY lot_id) s WHERE l.lot_id = s.lot_id
        )
        SELECT coalesce(sum(take), 0) INTO v_restored FROM t;
        IF v_restored < p_amount THEN
            PERFORM ledger_fail('LY099', 'ledger_invariant', jsonb_build_object(
                'entry_id', p_original, 'reason', 'consumptions do not cover the redemption', 'missing', p_amount - v_restored));
        END IF;
        v_pb := ARRAY['redeemed', 'available'];
        v_pa := ARRAY[-p_amount, p_amount];
        recovered := p_amount;
        unrecovered := 0;
    END IF;
    balances := checkout_post(p_member, array_fill(entry_id, ARRAY[cardinality(v_pb)]), v_pb,
                              array_fill(v_original.unit, ARRAY[cardinality(v_pb)]), v_pa);
END $$;

-- A refund (or, p_void, the void of a cancel) of the purchase p_txn of terminal p_terminal, as pos_refund does,
-- without the key: member lock, checks, the reversals, the purchase record. Answers the result row whose response
-- is pos_refund's (award_reversed, points_restored, unit, refunded_minor, award_unrecovered, points, replayed).
CREATE FUNCTION checkout_refund_apply(
    p_terminal text, p_txn text, p_member bigint, p_expected_version integer, p_returned jsonb,
    p_refunded_minor bigint, p_reverse bigint, p_restore bigint, p_occurred_at timestamptz, p_actor text,
    p_explanation jsonb, p_void boolean
) RETURNS checkout_result LANGUAGE plpgsql AS $$
DECLARE
    v_checkout pos_checkouts%ROWTYPE;
    v_version bigint;
    v_status text;
    v_tier_code text;
    v_tier_name text;
    v_card text;
    v_phone text;
    v_reverse bigint := p_reverse;
    v_restore bigint := p_restore;
    v_refunded bigint := p_refunded_minor;
    v_returned jsonb := p_returned;
    v_spend bigint;
    v_unrecovered bigint := 0;
    v_rev record;
    v_bal bigint[];
    v_response jsonb;
BEGIN
    UPDATE members m SET ledger_version = m.ledger_version + 1
    FROM tiers t
    WHERE m.member_id = p_member AND t.tier_id = m.tier_id
    RETURNING m.ledger_version, m.status, t.code, t.name, m.card_number, m.phone
    INTO v_version, v_status, v_tier_code, v_tier_name, v_card, v_phone;
    IF NOT FOUND THEN
        PERFORM ledger_fail('LY002', 'unknown_member', jsonb_build_object('member_id', p_member));
    END IF;
    -- Every change of the purchase record happens under its member's lock.
    SELECT * INTO STRICT v_checkout FROM pos_checkouts WHERE terminal_id = p_terminal AND pos_transaction_id = p_txn;
    IF v_checkout.voided THEN
        PERFORM ledger_fail('LY017', 'transaction_voided', jsonb_build_object(
            'terminal_id', p_terminal, 'pos_transaction_id', p_txn));
    END IF;
    IF p_void THEN
        SELECT coalesce(sum(amount - reversed_amount) FILTER (WHERE entry_id = v_checkout.accrual_entry_id), 0),
               coalesce(sum(amount - reversed_amount) FILTER (WHERE entry_id = v_checkout.redemption_entry_id), 0)
        INTO v_reverse, v_restore
        FROM journal_entries WHERE entry_id IN (v_checkout.accrual_entry_id, v_checkout.redemption_entry_id);
        v_refunded := v_checkout.paid_total_minor - v_checkout.refunded_minor;
        SELECT coalesce(jsonb_object_agg(l ->> 'line_id', (l ->> 'quantity')::bigint), '{}'::jsonb) INTO v_returned
        FROM jsonb_array_elements(v_checkout.lines) AS l;
    ELSIF v_checkout.refund_version <> p_expected_version THEN
        PERFORM ledger_fail('LY015', 'refund_conflict', jsonb_build_object(
            'pos_transaction_id', p_txn, 'expected', p_expected_version, 'actual', v_checkout.refund_version));
    END IF;
    IF v_reverse < 0 OR v_restore < 0 OR v_refunded < 0 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object(
            'reverse', v_reverse, 'restore', v_restore, 'refunded_minor', v_refunded));
    END IF;
    IF v_checkout.refunded_minor + v_refunded > v_checkout.paid_total_minor THEN
        PERFORM ledger_fail('LY018', 'refund_exceeds_purchase', jsonb_build_object(
            'pos_transaction_id', p_txn, 'paid_total_minor', v_checkout.paid_total_minor,
            'refunded_before', v_checkout.refunded_minor, 'refunding', v_refunded));
    END IF;
    -- The refunded money lowers qualifying spend once, on the first reversal written.
    v_spend := v_refunded;
    IF v_reverse > 0 THEN
        SELECT * INTO v_rev FROM checkout_reverse(p_member, v_checkout.accrual_entry_id, v_reverse, p_occurred_at,
                                                  p_actor, p_explanation, v_spend);
        v_unrecovered := v_rev.unrecovered;
        v_bal := v_rev.balances;
        v_spend := 0;
    END IF;
    IF v_restore > 0 THEN
        SELECT * INTO v_rev FROM checkout_reverse(p_member, v_checkout.redemption_entry_id, v_restore, p_occurred_at,
                                                  p_actor, p_explanation, v_spend);
        v_bal := v_rev.balances;
    END IF;
    UPDATE pos_checkouts
    SET returned = v_returned, refunded_minor = refunded_minor + v_refunded, refund_version = refund_version + 1,
        voided = p_void
    WHERE terminal_id = p_terminal AND pos_transaction_id = p_txn;
    IF v_bal IS NULL THEN
        v_bal := checkout_post(p_member, '{}', '{}', '{}', '{}');
    END IF;
    v_response := jsonb_build_object(
        'award_reversed', v_reverse, 'points_restored', v_restore, 'unit', v_checkout.unit,
        'refunded_minor', v_refunded, 'award_unrecovered', v_unrecovered,
        'points', jsonb_build_object('available', v_bal[1], 'pending', v_bal[2], 'held', v_bal[3]), 'replayed', false);
    RETURN ROW(1, NULL, NULL, NULL, v_response, p_member, v_version, v_tier_code, v_tier_name, v_status, v_card,
               v_phone, v_bal[1], v_bal[2], v_bal[3], v_bal[4], v_bal[5], v_bal[6])::checkout_result;
END $$;

-- Refund: pos_refund's arguments and response; p_terminal and p_txn name the purchase, p_scope/p_key the refund.
CREATE FUNCTION checkout_refund(
    p_scope text, p_key text, p_hash bytea, p_terminal text, p_txn text, p_expected_version integer,
    p_returned jsonb, p_refunded_minor bigint, p_reverse bigint, p_restore bigint, p_occurred_at timestamptz,
    p_actor text, p_explanation jsonb, p_void boolean
) RETURNS checkout_result LANGUAGE plpgsql AS $$
DECLARE
    v_member bigint;
    v_stored jsonb;
    v_result checkout_result;
BEGIN
    PERFORM checkout_key_lock(p_scope, p_key);
    SELECT member_id INTO v_member FROM pos_checkouts WHERE terminal_id = p_terminal AND pos_transaction_id = p_txn;
    v_stored := checkout_stored(p_scope, p_key, p_hash);
    IF v_stored IS NOT NULL THEN
        RETURN checkout_snapshot(1, v_member, v_stored);
    END IF;
    IF v_member IS NULL THEN
        PERFORM ledger_fail('LY016', 'unknown_transaction', jsonb_build_object(
            'terminal_id', p_terminal, 'pos_transaction_id', p_txn));
    END IF;
    v_result := checkout_refund_apply(p_terminal, p_txn, v_member, p_expected_version, p_returned, p_refunded_minor,
                                      p_reverse, p_restore, p_occurred_at, p_actor, p_explanation, p_void);
    IF p_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (scope, key, request_hash, response) VALUES (p_scope, p_key, p_hash, v_result.response);
    END IF;
    RETURN v_result;
END $$;

-- Cancel: void the purchase committed under p_txn on this terminal, or else release the hold taken under it (found
-- through the hold's key, 'hold:' || p_txn in the same scope). pos_cancel's response.
CREATE FUNCTION checkout_cancel(
    p_scope text, p_key text, p_hash bytea, p_terminal text, p_txn text, p_actor text
) RETURNS checkout_result LANGUAGE plpgsql AS $$
DECLARE
    v_stored jsonb;
    v_member bigint;
    v_hold holds%ROWTYPE;
    v_hold_id bigint;
    v_result checkout_result;
    v_version bigint;
    v_status text;
    v_tier_code text;
    v_tier_name text;
    v_card text;
    v_phone text;
    v_entry bigint;
    v_bal bigint[];
    v_response jsonb;
BEGIN
    PERFORM checkout_key_lock(p_scope, p_key);
    v_stored := checkout_stored(p_scope, p_key, p_hash);
    IF v_stored IS NOT NULL THEN
        RETURN checkout_snapshot(1, (v_stored ->> 'member_id')::bigint, v_stored);
    END IF;
    SELECT member_id INTO v_member FROM pos_checkouts WHERE terminal_id = p_terminal AND pos_transaction_id = p_txn;
    IF FOUND THEN
        v_result := checkout_refund_apply(p_terminal, p_txn, v_member, 0, NULL, 0, 0, 0, now(), p_actor,
                                          jsonb_build_object('void', p_txn), true);
        v_response := jsonb_build_object('cancelled', 'commit', 'member_id', v_member,
            'award_reversed', v_result.response -> 'award_reversed',
            'points_restored', v_result.response -> 'points_restored',
            'points', v_result.response -> 'points', 'replayed', false);
        v_result.response := v_response;
    ELSE
        SELECT (response ->> 'hold_id')::bigint INTO v_hold_id
        FROM idempotency_keys WHERE scope = p_scope AND key = 'hold:' || p_txn;
        SELECT * INTO v_hold FROM holds WHERE hold_id = v_hold_id;
        IF NOT FOUND THEN
            PERFORM ledger_fail('LY016', 'unknown_transaction', jsonb_build_object(
                'terminal_id', p_terminal, 'pos_transaction_id', p_txn));
        END IF;
        v_member := v_hold.member_id;
        UPDATE members m SET ledger_version = m.ledger_version + 1
        FROM tiers t
        WHERE m.member_id = v_member AND t.tier_id = m.tier_id
        RETURNING m.ledger_version, m.status, t.code, t.name, m.card_number, m.phone
        INTO v_version, v_status, v_tier_code, v_tier_name, v_card, v_phone;
        -- Read again under the member lock: the hold may have been committed or expired meanwhile.
        SELECT * INTO v_hold FROM holds WHERE hold_id = v_hold_id;
        IF v_hold.state <> 'active' THEN
            PERFORM ledger_fail('LY005', 'hold_not_active', jsonb_build_object('hold_id', v_hold_id, 'state', v_hold.state));
        END IF;
        INSERT INTO journal_entries (kind, member_id, unit, amount, actor, explanation, occurred_at, hold_id)
        VALUES ('release', v_member, v_hold.unit, v_hold.amount, p_actor, '{}'::jsonb, now(), v_hold_id)
        RETURNING entry_id INTO v_entry;
        v_bal := checkout_post(v_member, ARRAY[v_entry, v_entry], ARRAY['held', 'available'],
                               ARRAY[v_hold.unit, v_hold.unit], ARRAY[-v_hold.amount, v_hold.amount]);
        UPDATE holds SET state = 'released' WHERE hold_id = v_hold_id;
        v_response := jsonb_build_object('cancelled', 'hold', 'member_id', v_member, 'award_reversed', 0,
            'points_restored', 0,
            'points', jsonb_build_object('available', v_bal[1], 'pending', v_bal[2], 'held', v_bal[3]),
            'replayed', false);
        v_result := ROW(1, NULL, NULL, NULL, v_response, v_member, v_version, v_tier_code, v_tier_name, v_status,
                        v_card, v_phone, v_bal[1], v_bal[2], v_bal[3], v_bal[4], v_bal[5], v_bal[6])::checkout_result;
    END IF;
    IF p_key IS NOT NULL THEN
        INSERT INTO idempotency_keys (scope, key, request_hash, response) VALUES (p_scope, p_key, p_hash, v_response);
    END IF;
    RETURN v_result;
END $$;

-- Generic plans for these functions' statements: their shapes never change, and a custom plan per call (what the
-- plan cache keeps choosing for statements with array parameters) spent about a third of a commit's CPU on
-- planning the write statement again.
ALTER FUNCTION checkout_commit_batch(text[], text[], bytea[], text[], text[], bigint[], text[], text[], bigint[],
    timestamptz[], timestamptz[], timestamptz[], text[], jsonb[], bigint[], jsonb[], bigint[], bigint[], bigint[])
    SET plan_cache_mode = force_generic_plan SET jit = off;
-- The set-based pass locks a batch's members with one UPDATE over the primary key; only an index scan takes them
-- in ascending id order (a sequential or bitmap scan would take them in table order, and two batches could
-- deadlock). Nothing else in it wants a sequential scan: every table is reached by key. JIT stays off: the cost
-- that disabling sequential scans gives any statement still planned with one (tiers, a few rows) is far above
-- jit_above_cost, and compiling such a statement took 40-130 ms per call, every call.
ALTER FUNCTION checkout_commit_fast(text[], text[], bytea[], text[], text[], bigint[], text[], text[], bigint[],
    timestamptz[], timestamptz[], timestamptz[], text[], jsonb[], bigint[], jsonb[], bigint[], bigint[], bigint[],
    integer[], bigint[])
    SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off;
ALTER FUNCTION checkout_hold(text, text, bytea, text, text, bigint, bigint, timestamptz)
    SET plan_cache_mode = force_generic_plan SET jit = off;
ALTER FUNCTION checkout_cancel(text, text, bytea, text, text, text) SET plan_cache_mode = force_generic_plan SET jit = off;
ALTER FUNCTION checkout_refund(text, text, bytea, text, text, integer, jsonb, bigint, bigint, bigint, timestamptz, text,
    jsonb, boolean) SET plan_cache_mode = force_generic_plan SET jit = off;
