-- The ledger's operations. Each: claim the idempotency key (or return the stored response), lock the member,
-- write the entry, its postings and lots, store the response under the key. One call, one transaction.

-- Accrue: a new lot, pending until p_available_at (the end of the return window) or available at once.
CREATE FUNCTION ledger_accrue(
    p_scope text, p_key text, p_hash bytea, p_member bigint, p_unit text, p_amount bigint,
    p_available_at timestamptz, p_expires_at timestamptz, p_occurred_at timestamptz, p_actor text,
    p_rules_version text, p_explanation jsonb, p_spend_minor bigint DEFAULT 0
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_replay jsonb := ledger_claim_key(p_scope, p_key, p_hash);
    v_version bigint;
    v_entry bigint;
    v_lot bigint;
    v_state text;
    v_tier jsonb;
    v_response jsonb;
BEGIN
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    PERFORM ledger_check_amount(p_amount);
    IF p_expires_at IS NOT NULL AND p_expires_at <= p_available_at THEN
        PERFORM ledger_fail('LY012', 'invalid_dates', jsonb_build_object(
            'available_at', p_available_at, 'expires_at', p_expires_at));
    END IF;
    IF p_spend_minor < 0 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object('spend_minor', p_spend_minor));
    END IF;
    v_version := ledger_lock_member(p_member, true);
    v_state := CASE WHEN p_available_at > now() THEN 'pending' ELSE 'available' END;
    v_entry := ledger_new_entry('accrual', p_member, p_unit, p_amount, p_actor, NULL, NULL, p_rules_version,
                                p_explanation, p_occurred_at, NULL, p_spend_minor);
    INSERT INTO lots (member_id, entry_id, unit, original_amount, remaining_amount, state, available_at, expires_at)
    VALUES (p_member, v_entry, p_unit, p_amount, p_amount, v_state, p_available_at, p_expires_at)
    RETURNING lot_id INTO v_lot;
    PERFORM ledger_post(v_entry, NULL, 'issued', p_unit, -p_amount);
    PERFORM ledger_post(v_entry, p_member, v_state, p_unit, p_amount);
    IF p_spend_minor > 0 THEN
        -- The purchase that crosses a tier threshold upgrades the member in the same transaction.
        v_tier := tier_upgrade_on_purchase(p_member, p_actor);
    END IF;
    v_response := ledger_response(v_entry, p_member, p_unit, v_version,
        jsonb_build_object('lot_id', v_lot, 'amount', p_amount, 'state', v_state, 'tier_change', v_tier));
    PERFORM ledger_store_key(p_scope, p_key, v_entry, v_response);
    RETURN v_response;
END $$;

-- Hold: reserve available points during checkout. Lots are untouched until the hold is redeemed.
CREATE FUNCTION ledger_hold(
    p_scope text, p_key text, p_hash bytea, p_member bigint, p_unit text, p_amount bigint,
    p_expires_at timestamptz, p_actor text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_replay jsonb := ledger_claim_key(p_scope, p_key, p_hash);
    v_version bigint;
    v_entry bigint;
    v_hold bigint;
    v_response jsonb;
BEGIN
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    PERFORM ledger_check_amount(p_amount);
    IF p_expires_at <= now() THEN
        PERFORM ledger_fail('LY012', 'invalid_dates', jsonb_build_object('expires_at', p_expires_at));
    END IF;
    v_version := ledger_lock_member(p_member, true);
    v_entry := ledger_new_entry('hold', p_member, p_unit, p_amount, p_actor, NULL, NULL, NULL, NULL, NULL);
    PERFORM ledger_post(v_entry, p_member, 'available', p_unit, -p_amount);
    PERFORM ledger_post(v_entry, p_member, 'held', p_unit, p_amount);
    INSERT INTO holds (member_id, unit, amount, entry_id, expires_at)
    VALUES (p_member, p_unit, p_amount, v_entry, p_expires_at)
    RETURNING hold_id INTO v_hold;
    -- The hold row needs the entry first (entry_id is NOT NULL there), so its id comes back in this update.
    UPDATE journal_entries SET hold_id = v_hold WHERE entry_id = v_entry;
    v_response := ledger_response(v_entry, p_member, p_unit, v_version,
        jsonb_build_object('hold_id', v_hold, 'amount', p_amount, 'expires_at', p_expires_at));
    PERFORM ledger_store_key(p_scope, p_key, v_entry, v_response);
    RETURN v_response;
END $$;

-- Release: give held points back (cancel at the till, or p_final_state 'expired' from the hold-expiry job).
CREATE FUNCTION ledger_release(
    p_scope text, p_key text, p_hash bytea, p_hold bigint, p_actor text, p_final_state text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_replay jsonb := ledger_claim_key(p_scope, p_key, p_hash);
    v_member bigint;
    v_hold holds%ROWTYPE;
    v_version bigint;
    v_entry bigint;
    v_response jsonb;
BEGIN
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    SELECT member_id INTO v_member FROM holds WHERE hold_id = p_hold;
    IF NOT FOUND THEN
        PERFORM ledger_fail('LY004', 'unknown_hold', jsonb_build_object('hold_id', p_hold));
    END IF;
    v_version := ledger_lock_member(v_member, false);
    SELECT * INTO v_hold FROM holds WHERE hold_id = p_hold FOR UPDATE;
    IF v_hold.state <> 'active' THEN
        PERFORM ledger_fail('LY005', 'hold_not_active', jsonb_build_object('hold_id', p_hold, 'state', v_hold.state));
    END IF;
    v_entry := ledger_new_entry('release', v_member, v_hold.unit, v_hold.amount, p_actor, NULL, NULL, NULL, NULL, NULL,
                                p_hold);
    PERFORM ledger_post(v_entry, v_member, 'held', v_hold.unit, -v_hold.amount);
    PERFORM ledger_post(v_entry, v_member, 'available', v_hold.unit, v_hold.amount);
    UPDATE holds SET state = coalesce(p_final_state, 'released') WHERE hold_id = p_hold;
    v_response := ledger_response(v_entry, v_member, v_hold.unit, v_version,
        jsonb_build_object('hold_id', p_hold, 'amount', v_hold.amount));
    PERFORM ledger_store_key(p_scope, p_key, v_entry, v_response);
    RETURN v_response;
END $$;

-- Redeem: spend points, from a hold (the unused rest of the hold goes back to available) or from available.
-- Lots are consumed soonest-expiring first.
CREATE FUNCTION ledger_redeem(
    p_scope text, p_key text, p_hash bytea, p_member bigint, p_unit text, p_amount bigint, p_hold bigint,
    p_occurred_at timestamptz, p_actor text, p_explanation jsonb
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_replay jsonb := ledger_claim_key(p_scope, p_key, p_hash);
    v_hold holds%ROWTYPE;
    v_version bigint;
    v_entry bigint;
    v_consumed jsonb;
    v_response jsonb;
BEGIN
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    PERFORM ledger_check_amount(p_amount);
    v_version := ledger_lock_member(p_member, true);
    v_entry := ledger_new_entry('redemption', p_member, p_unit, p_amount, p_actor, NULL, NULL, NULL,
                                p_explanation, p_occurred_at, p_hold);
    IF p_hold IS NOT NULL THEN
        SELECT * INTO v_hold FROM holds WHERE hold_id = p_hold FOR UPDATE;
        IF NOT FOUND THEN
            PERFORM ledger_fail('LY004', 'unknown_hold', jsonb_build_object('hold_id', p_hold));
        END IF;
        IF v_hold.member_id <> p_member OR v_hold.unit <> p_unit THEN
            PERFORM ledger_fail('LY013', 'hold_mismatch', jsonb_build_object(
                'hold_id', p_hold, 'hold_member_id', v_hold.member_id, 'hold_unit', v_hold.unit));
        END IF;
        IF v_hold.state <> 'active' THEN
            PERFORM ledger_fail('LY005', 'hold_not_active', jsonb_build_object('hold_id', p_hold, 'state', v_hold.state));
        END IF;
        IF p_amount > v_hold.amount THEN
            PERFORM ledger_fail('LY006', 'hold_exceeded', jsonb_build_object(
                'hold_id', p_hold, 'requested', p_amount, 'held', v_hold.amount));
        END IF;
        PERFORM ledger_post(v_entry, p_member, 'held', p_unit, -v_hold.amount);
        PERFORM ledger_post(v_entry, p_member, 'available', p_unit, v_hold.amount - p_amount);
        UPDATE holds SET state = 'committed' WHERE hold_id = p_hold;
    ELSE
        PERFORM ledger_post(v_entry, p_member, 'available', p_unit, -p_amount);
    END IF;
    PERFORM ledger_post(v_entry, NULL, 'redeemed', p_unit, p_amount);
    v_consumed := ledger_consume_lots(v_entry, p_member, p_unit, p_amount);
    v_response := ledger_response(v_entry, p_member, p_unit, v_version,
        jsonb_build_object('amount', p_amount, 'hold_id', p_hold, 'consumed', v_consumed));
    PERFORM ledger_store_key(p_scope, p_key, v_entry, v_response);
    RETURN v_response;
END $$;

-- Reverse part or all of an accrual (a return) or a redemption (points paid back on a refund).
-- Accrual: taken back from its own lot first, then from other available lots; what was already spent cannot be
-- taken back and is recorded as unrecovered. Redemption: restored into the very lots it consumed, last first,
-- with their original expiry dates.
CREATE FUNCTION ledger_reverse(
    p_scope text, p_key text, p_hash bytea, p_original bigint, p_amount bigint, p_occurred_at timestamptz,
    p_actor text, p_explanation jsonb, p_refunded_spend_minor bigint DEFAULT 0
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_replay jsonb := ledger_claim_key(p_scope, p_key, p_hash);
    v_member bigint;
    v_original journal_entries%ROWTYPE;
    v_version bigint;
    v_entry bigint;
    v_lot lots%ROWTYPE;
    v_own bigint := 0;
    v_other bigint := 0;
    v_available bigint;
    v_left bigint;
    v_take bigint;
    v_piece record;
    v_response jsonb;
BEGIN
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    PERFORM ledger_check_amount(p_amount);
    SELECT member_id INTO v_member FROM journal_entries WHERE entry_id = p_original;
    IF NOT FOUND THEN
        PERFORM ledger_fail('LY007', 'unknown_entry', jsonb_build_object('entry_id', p_original));
    END IF;
    v_version := ledger_lock_member(v_member, false);
    SELECT * INTO v_original FROM journal_entries WHERE entry_id = p_original FOR UPDATE;
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
    v_entry := ledger_new_entry('reversal', v_member, v_original.unit, p_amount, p_actor, NULL, p_original, NULL,
                                p_explanation, p_occurred_at, NULL, -p_refunded_spend_minor);
    UPDATE journal_entries SET reversed_amount = reversed_amount + p_amount WHERE entry_id = p_original;

    IF v_original.kind = 'accrual' THEN
        SELECT * INTO STRICT v_lot FROM lots WHERE entry_id = p_original FOR UPDATE;
        SELECT balance INTO v_available FROM accounts
        WHERE member_id = v_member AND bucket = 'available' AND unit = v_original.unit;
        -- Points of an available lot may be held by a checkout in progress: never take those.
        v_own := CASE WHEN v_lot.state = 'pending' THEN least(p_amount, v_lot.remaining_amount)
                      WHEN v_lot.state = 'available' THEN least(p_amount, v_lot.remaining_amount, v_available)
                      ELSE 0 END;
        IF v_lot.state = 'available' THEN
            v_available := v_available - v_own;
        END IF;
        IF v_own > 0 THEN
            UPDATE lots SET remaining_amount = remaining_amount - v_own,
                            state = CASE WHEN remaining_amount - v_own = 0 THEN 'reversed' ELSE state END
            WHERE lot_id = v_lot.lot_id;
        END IF;
        v_left := p_amount - v_own;
        IF v_left > 0 THEN
            v_other := least(v_left, v_available);
            IF v_other > 0 THEN
                PERFORM ledger_consume_lots(v_entry, v_member, v_original.unit, v_other);
            END IF;
        END IF;
        -- One posting per bucket (postings are keyed by entry and account).
        IF v_lot.state = 'pending' THEN
            PERFORM ledger_post(v_entry, v_member, 'pending', v_original.unit, -v_own);
            PERFORM ledger_post(v_entry, v_member, 'available', v_original.unit, -v_other);
        ELSE
            PERFORM ledger_post(v_entry, v_member, 'available', v_original.unit, -(v_own + v_other));
        END IF;
        PERFORM ledger_post(v_entry, NULL, 'issued', v_original.unit, v_own + v_other);
        UPDATE journal_entries SET unrecovered_amount = p_amount - v_own - v_other WHERE entry_id = v_entry;
    ELSE
        v_left := p_amount;
        FOR v_piece IN
            SELECT seq, lot_id, amount - restored_amount AS restorable FROM lot_consumptions
            WHERE entry_id = p_original AND amount > restored_amount
            ORDER BY seq DESC
            FOR UPDATE
        LOOP
            EXIT WHEN v_left = 0;
            v_take := least(v_left, v_piece.restorable);
            UPDATE lot_consumptions SET restored_amount = restored_amount + v_take
            WHERE entry_id = p_original AND seq = v_piece.seq;
            UPDATE lots SET remaining_amount = remaining_amount + v_take, state = 'available'
            WHERE lot_id = v_piece.lot_id;
            v_left := v_left - v_take;
        END LOOP;
        IF v_left > 0 THEN
            PERFORM ledger_fail('LY099', 'ledger_invariant', jsonb_build_object(
                'entry_id', p_original, 'reason', 'consumptions do not cover the redemption', 'missing', v_left));
        END IF;
        PERFORM ledger_post(v_entry, NULL, 'redeemed', v_original.unit, -p_amount);
        PERFORM ledger_post(v_entry, v_member, 'available', v_original.unit, p_amount);
    END IF;

    v_response := ledger_response(v_entry, v_member, v_original.unit, v_version, jsonb_build_object(
        'reverses_entry_id', p_original, 'amount', p_amount, 'recovered', v_own + v_other,
        'unrecovered', p_amount - v_own - v_other,
        'original_remaining', v_original.amount - v_original.reversed_amount - p_amount));
    PERFORM ledger_store_key(p_scope, p_key, v_entry, v_response);
    RETURN v_response;
END $$;

-- Manual adjustment by support or an admin, with a reason. Positive: a new available lot. Negative: taken
-- from available lots like a redemption.
CREATE FUNCTION ledger_adjust(
    p_scope text, p_key text, p_hash bytea, p_member bigint, p_unit text, p_delta bigint, p_reason text,
    p_actor text, p_expires_at timestamptz
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_replay jsonb := ledger_claim_key(p_scope, p_key, p_hash);
    v_version bigint;
    v_entry bigint;
    v_lot bigint;
    v_consumed jsonb := '[]'::jsonb;
    v_response jsonb;
BEGIN
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    IF p_delta IS NULL OR p_delta = 0 OR p_delta = -9223372036854775808 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object('amount', p_delta));
    END IF;
    IF p_reason IS NULL OR length(trim(p_reason)) = 0 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object('reason', 'an adjustment needs a reason'));
    END IF;
    IF p_expires_at IS NOT NULL AND p_expires_at <= now() THEN
        PERFORM ledger_fail('LY012', 'invalid_dates', jsonb_build_object('expires_at', p_expires_at));
    END IF;
    v_version := ledger_lock_member(p_member, false);
    v_entry := ledger_new_entry('adjustment', p_member, p_unit, abs(p_delta), p_actor, p_reason, NULL, NULL, NULL, NULL);
    IF p_delta > 0 THEN
        INSERT INTO lots (member_id, entry_id, unit, original_amount, remaining_amount, state, available_at, expires_at)
        VALUES (p_member, v_entry, p_unit, p_delta, p_delta, 'available', now(), p_expires_at)
        RETURNING lot_id INTO v_lot;
        PERFORM ledger_post(v_entry, NULL, 'adjustment', p_unit, -p_delta);
        PERFORM ledger_post(v_entry, p_member, 'available', p_unit, p_delta);
    ELSE
        PERFORM ledger_post(v_entry, p_member, 'available', p_unit, p_delta);
        PERFORM ledger_post(v_entry, NULL, 'adjustment', p_unit, -p_delta);
        v_consumed := ledger_consume_lots(v_entry, p_member, p_unit, -p_delta);
    END IF;
    v_response := ledger_response(v_entry, p_member, p_unit, v_version,
        jsonb_build_object('delta', p_delta, 'lot_id', v_lot, 'consumed', v_consumed));
    PERFORM ledger_store_key(p_scope, p_key, v_entry, v_response);
    RETURN v_response;
END $$;

-- Jobs. Each takes at most p_batch members, locks each with SKIP LOCKED (a member busy at a till is done on the
-- next run), so two servers can run them at once without waiting on each other or doing anything twice.

-- Pending lots whose return window has ended become available.
CREATE FUNCTION ledger_activate_due(p_batch integer) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_member bigint;
    v_lot record;
    v_entry bigint;
    v_members integer := 0;
    v_lots integer := 0;
    v_amount bigint := 0;
BEGIN
    FOR v_member IN
        SELECT m.member_id FROM members m
        WHERE m.member_id IN (SELECT DISTINCT member_id FROM lots WHERE state = 'pending' AND available_at <= now()
                              LIMIT p_batch)
        FOR UPDATE OF m SKIP LOCKED
    LOOP
        UPDATE members SET ledger_version = ledger_version + 1 WHERE member_id = v_member;
        v_members := v_members + 1;
        FOR v_lot IN
            SELECT lot_id, unit, remaining_amount FROM lots
            WHERE member_id = v_member AND state = 'pending' AND available_at <= now()
            ORDER BY lot_id FOR UPDATE
        LOOP
            UPDATE lots SET state = 'available' WHERE lot_id = v_lot.lot_id;
            v_lots := v_lots + 1;
            IF v_lot.remaining_amount > 0 THEN
                v_entry := ledger_new_entry('activation', v_member, v_lot.unit, v_lot.remaining_amount, 'job:activation',
                                            NULL, NULL, NULL, jsonb_build_object('lot_id', v_lot.lot_id), NULL);
                PERFORM ledger_post(v_entry, v_member, 'pending', v_lot.unit, -v_lot.remaining_amount);
                PERFORM ledger_post(v_entry, v_member, 'available', v_lot.unit, v_lot.remaining_amount);
                v_amount := v_amount + v_lot.remaining_amount;
            END IF;
        END LOOP;
    END LOOP;
    RETURN jsonb_build_object('members', v_members, 'lots', v_lots, 'amount', v_amount);
END $$;

-- Available lots past their expiry date expire, up to the member's available balance (held points are not
-- taken from under a checkout).
CREATE FUNCTION ledger_expire_due(p_batch integer) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_member bigint;
    v_lot record;
    v_entry bigint;
    v_available bigint;
    v_take bigint;
    v_members integer := 0;
    v_lots integer := 0;
    v_amount bigint := 0;
BEGIN
    FOR v_member IN
        SELECT m.member_id FROM members m
        -- Only members with something to take: a member whose points are all held stays out of the batch, so it
        -- cannot fill every batch and starve the members behind it.
        WHERE m.member_id IN (SELECT DISTINCT l.member_id FROM lots l
                              JOIN accounts a ON a.member_id = l.member_id AND a.unit = l.unit
                                             AND a.bucket = 'available' AND a.balance > 0
                              WHERE l.state = 'available' AND l.remaining_amount > 0 AND l.expires_at <= now()
                              LIMIT p_batch)
        FOR UPDATE OF m SKIP LOCKED
    LOOP
        UPDATE members SET ledger_version = ledger_version + 1 WHERE member_id = v_member;
        v_members := v_members + 1;
        FOR v_lot IN
            SELECT lot_id, unit, remaining_amount FROM lots
            WHERE member_id = v_member AND state = 'available' AND remaining_amount > 0 AND expires_at <= now()
            ORDER BY expires_at, lot_id FOR UPDATE
        LOOP
            SELECT balance INTO v_available FROM accounts
            WHERE member_id = v_member AND bucket = 'available' AND unit = v_lot.unit;
            v_take := least(v_lot.remaining_amount, v_available);
            CONTINUE WHEN v_take = 0;
            UPDATE lots SET remaining_amount = remaining_amount - v_take,
                            state = CASE WHEN remaining_amount - v_take = 0 THEN 'expired' ELSE state END
            WHERE lot_id = v_lot.lot_id;
            v_entry := ledger_new_entry('expiry', v_member, v_lot.unit, v_take, 'job:expiry', NULL, NULL, NULL,
                                        jsonb_build_object('lot_id', v_lot.lot_id), NULL);
            PERFORM ledger_post(v_entry, v_member, 'available', v_lot.unit, -v_take);
            PERFORM ledger_post(v_entry, NULL, 'expired', v_lot.unit, v_take);
            v_lots := v_lots + 1;
            v_amount := v_amount + v_take;
        END LOOP;
    END LOOP;
    RETURN jsonb_build_object('members', v_members, 'lots', v_lots, 'amount', v_amount);
END $$;

-- Holds a till never committed or cancelled go back to available.
CREATE FUNCTION ledger_expire_holds(p_batch integer) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_hold bigint;
    v_count integer := 0;
BEGIN
    FOR v_hold IN
        -- Ascending member order: two jobs at once lock members in the same order, so they cannot deadlock.
        SELECT hold_id FROM holds WHERE state = 'active' AND expires_at <= now() ORDER BY member_id, hold_id
        LIMIT p_batch
    LOOP
        BEGIN
            PERFORM ledger_release('job', NULL, NULL, v_hold, 'job:hold-expiry', 'expired');
            v_count := v_count + 1;
        EXCEPTION WHEN SQLSTATE 'LY005' THEN
            NULL; -- committed or released meanwhile
        END;
    END LOOP;
    RETURN jsonb_build_object('holds', v_count);
END $$;
