-- A hold belongs to the checkout that took it. A Commit that names a hold must come from the same terminal and
-- carry the same pos_transaction_id as the Hold (LY013 hold_mismatch otherwise), and hold ids are random, so a
-- till cannot find or consume another till's hold by counting.

ALTER TABLE holds
    ADD COLUMN terminal_id text,
    ADD COLUMN pos_transaction_id text;

-- 60 random bits from the strong random source behind gen_random_uuid (the first 16 hex digits of a version-4
-- UUID hold 60 random bits and the version nibble), kept positive; 0 means "no hold" on the wire.
CREATE FUNCTION hold_random_id() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT (('x' || left(replace(gen_random_uuid()::text, '-', ''), 16))::bit(64)::bigint & 9223372036854775807)
           | 1099511627776  -- bit 40: never 0 and never a small number that looks like a sequence
$$;

ALTER TABLE holds ALTER COLUMN hold_id DROP IDENTITY;
ALTER TABLE holds ALTER COLUMN hold_id SET DEFAULT hold_random_id();
ALTER TABLE holds ADD CHECK (hold_id > 0);

DROP FUNCTION pos_hold(text, text, bytea, bigint, bigint, timestamptz, text);
CREATE FUNCTION pos_hold(
    p_scope text, p_key text, p_hash bytea, p_terminal text, p_txn text, p_member bigint, p_amount bigint,
    p_expires_at timestamptz
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_result jsonb := ledger_hold(p_scope, p_key, p_hash, p_member, 'points', p_amount, p_expires_at, p_terminal);
    v_expires_at_ms bigint;
BEGIN
    IF NOT coalesce((v_result ->> 'replayed')::boolean, false) THEN
        UPDATE holds SET terminal_id = p_terminal, pos_transaction_id = p_txn
        WHERE hold_id = (v_result ->> 'hold_id')::bigint
        RETURNING (extract(epoch FROM expires_at) * 1000)::bigint INTO v_expires_at_ms;
    ELSE
        SELECT (extract(epoch FROM expires_at) * 1000)::bigint INTO v_expires_at_ms
        FROM holds WHERE hold_id = (v_result ->> 'hold_id')::bigint;
    END IF;
    RETURN v_result || jsonb_build_object('expires_at_ms', v_expires_at_ms, 'member', pos_member_snapshot(p_member));
END $$;

-- pos_commit of 0006 with the hold bound to its terminal and transaction (the hold check only changes).
CREATE OR REPLACE FUNCTION pos_commit(
    p_scope text, p_key text, p_hash bytea, p_terminal text, p_txn text, p_member bigint, p_tier_code text,
    p_unit text, p_award bigint, p_available_at timestamptz, p_expires_at timestamptz, p_occurred_at timestamptz,
    p_rules_version text, p_explanation jsonb, p_spend_minor bigint, p_lines jsonb, p_paid_total_minor bigint,
    p_hold bigint, p_redeem bigint
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_replay jsonb := ledger_claim_key(p_scope, p_key, p_hash);
    v_tier text;
    v_status text;
    v_hold_member bigint;
    v_hold_terminal text;
    v_hold_txn text;
    v_redemption jsonb;
    v_accrual jsonb;
    v_response jsonb;
BEGIN
    IF v_replay IS NOT NULL THEN
        RETURN v_replay || jsonb_build_object('member', pos_member_snapshot(p_member));
    END IF;
    IF p_award < 0 OR p_redeem < 0 OR p_spend_minor < 0 OR p_paid_total_minor < 0 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object(
            'award', p_award, 'redeem', p_redeem, 'spend_minor', p_spend_minor));
    END IF;
    -- The member first: every ledger operation locks it, so taking it here keeps the lock order member → rest.
    SELECT t.code, m.status INTO v_tier, v_status
    FROM members m JOIN tiers t ON t.tier_id = m.tier_id
    WHERE m.member_id = p_member
    FOR UPDATE OF m;
    IF NOT FOUND THEN
        PERFORM ledger_fail('LY002', 'unknown_member', jsonb_build_object('member_id', p_member));
    END IF;
    IF v_status <> 'active' THEN
        PERFORM ledger_fail('LY003', 'member_not_active', jsonb_build_object('member_id', p_member, 'status', v_status));
    END IF;
    IF p_tier_code IS NOT NULL AND v_tier <> p_tier_code THEN
        PERFORM ledger_fail('LY014', 'tier_changed', jsonb_build_object(
            'member_id', p_member, 'priced_at', p_tier_code, 'now', v_tier));
    END IF;
    IF p_hold IS NOT NULL THEN
        SELECT member_id, terminal_id, pos_transaction_id INTO v_hold_member, v_hold_terminal, v_hold_txn
        FROM holds WHERE hold_id = p_hold;
        IF NOT FOUND THEN
            PERFORM ledger_fail('LY004', 'unknown_hold', jsonb_build_object('hold_id', p_hold));
        -- Holds taken before 0011 carry no terminal: they are bound by member only until they expire.
        ELSIF v_hold_member <> p_member
              OR (v_hold_terminal IS NOT NULL AND (v_hold_terminal <> p_terminal OR v_hold_txn <> p_txn)) THEN
            -- The detail names neither the other member nor the other till.
            PERFORM ledger_fail('LY013', 'hold_mismatch', jsonb_build_object('hold_id', p_hold));
        END IF;
    END IF;
    -- Redeem before awarding, so the purchase's own (pending) points can never pay for it.
    IF p_redeem > 0 THEN
        v_redemption := ledger_redeem(p_scope, NULL, p_hash, p_member, 'points', p_redeem, p_hold, p_occurred_at,
                                      p_terminal, jsonb_build_object('pos_transaction_id', p_txn));
    ELSIF p_hold IS NOT NULL THEN
        PERFORM ledger_release(p_scope, NULL, p_hash, p_hold, p_terminal, 'released');
    END IF;
    IF p_award > 0 THEN
        v_accrual := ledger_accrue(p_scope, NULL, p_hash, p_member, p_unit, p_award, p_available_at, p_expires_at,
                                   p_occurred_at, p_terminal, p_rules_version, p_explanation, p_spend_minor);
    END IF;
    INSERT INTO pos_checkouts (terminal_id, pos_transaction_id, member_id, unit, accrual_entry_id,
                               redemption_entry_id, awarded, redeemed, paid_total_minor, lines, rules_version,
                               purchased_at)
    VALUES (p_terminal, p_txn, p_member, p_unit, (v_accrual ->> 'entry_id')::bigint,
            (v_redemption ->> 'entry_id')::bigint, p_award, p_redeem, p_paid_total_minor, p_lines, p_rules_version,
            p_occurred_at);
    v_response := jsonb_build_object(
        'accrual_entry_id', coalesce((v_accrual ->> 'entry_id')::bigint, 0),
        'redemption_entry_id', coalesce((v_redemption ->> 'entry_id')::bigint, 0),
        'awarded', p_award, 'redeemed', p_redeem, 'unit', p_unit, 'rules_version', p_rules_version,
        'tier_change', v_accrual -> 'tier_change', 'points', ledger_balances(p_member, 'points'), 'lines', p_lines,
        'replayed', false);
    PERFORM ledger_store_key(p_scope, p_key, NULL, v_response);
    RETURN v_response || jsonb_build_object('member', pos_member_snapshot(p_member));
END $$;
