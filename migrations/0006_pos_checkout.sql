-- The till's checkout: hold, commit, cancel and refund, each one call and one transaction, idempotent on the
-- terminal's own ids. Built on the ledger operations of 0003 (called with a NULL key: the POS function claims
-- the one key for the whole operation). Idempotency scope is 'pos:' || terminal id; keys are 'hold:<id>',
-- 'commit:<id>', 'cancel:<id>' and 'refund:<id>'.
--   LY014 tier_changed   LY015 refund_conflict (retry)   LY016 unknown_transaction   LY017 transaction_voided
--   LY018 refund_exceeds_purchase

-- One row per committed purchase: what each line paid and earned, so a later return takes back its share.
-- No personal data: erasing a member leaves this intact.
CREATE TABLE pos_checkouts (
    terminal_id          text NOT NULL,
    pos_transaction_id   text NOT NULL CHECK (length(pos_transaction_id) BETWEEN 1 AND 64),
    member_id            bigint NOT NULL REFERENCES members (member_id),
    unit                 text NOT NULL CHECK (unit IN ('points', 'cashback_minor')),
    accrual_entry_id     bigint REFERENCES journal_entries (entry_id),
    redemption_entry_id  bigint REFERENCES journal_entries (entry_id),
    awarded              bigint NOT NULL CHECK (awarded >= 0),
    redeemed             bigint NOT NULL CHECK (redeemed >= 0),
    paid_total_minor     bigint NOT NULL CHECK (paid_total_minor >= 0),
    -- [{line_id, quantity, paid_minor, award}] in basket order.
    lines                jsonb NOT NULL,
    -- line_id -> quantity returned so far.
    returned             jsonb NOT NULL DEFAULT '{}'::jsonb,
    refunded_minor       bigint NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0 AND refunded_minor <= paid_total_minor),
    -- Bumped by every refund: a refund computed from an older state is refused (LY015) and recomputed.
    refund_version       integer NOT NULL DEFAULT 0,
    voided               boolean NOT NULL DEFAULT false,
    rules_version        text,
    purchased_at         timestamptz NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (terminal_id, pos_transaction_id)
);
CREATE INDEX pos_checkouts_member_idx ON pos_checkouts (member_id, created_at DESC);

-- Which rule sets were in force when, so an offline till's purchase is priced by the rules of its purchase
-- time. Files are kept whole so any server can load an old version again.
CREATE TABLE rules_versions (
    version        text PRIMARY KEY,
    files          jsonb NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE rules_activations (
    activation_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version        text NOT NULL REFERENCES rules_versions (version),
    activated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rules_activations_at_idx ON rules_activations (activated_at DESC);

-- What a till shows for a member, in the Redis cache's short-key form (see CachedMember). Never stored in an
-- idempotency response: it carries personal data, which erasure must be able to remove.
CREATE FUNCTION pos_member_snapshot(p_member bigint) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT jsonb_build_object(
            'id', m.member_id, 'tc', t.code, 'tn', t.name, 'st', m.status, 'cn', m.card_number, 'ph', m.phone,
            'lv', m.ledger_version,
            'pt', jsonb_build_object(
                'a', coalesce(sum(a.balance) FILTER (WHERE a.unit = 'points' AND a.bucket = 'available'), 0),
                'p', coalesce(sum(a.balance) FILTER (WHERE a.unit = 'points' AND a.bucket = 'pending'), 0),
                'h', coalesce(sum(a.balance) FILTER (WHERE a.unit = 'points' AND a.bucket = 'held'), 0)),
            'cb', jsonb_build_object(
                'a', coalesce(sum(a.balance) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'available'), 0),
                'p', coalesce(sum(a.balance) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'pending'), 0),
                'h', coalesce(sum(a.balance) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'held'), 0)))
        FROM members m
        JOIN tiers t ON t.tier_id = m.tier_id
        LEFT JOIN accounts a ON a.member_id = m.member_id
        WHERE m.member_id = p_member
        GROUP BY m.member_id, t.code, t.name
    );
END
$$;

-- What the till needs before pricing a basket: tier, the tier's own rate, status and spendable points.
CREATE FUNCTION pos_member_pricing(p_member bigint) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT jsonb_build_object(
            'member_id', m.member_id, 'tier_code', t.code, 'tier_rate_override_bp', t.earn_rate_override_bp,
            'status', m.status,
            'available_points', (SELECT balance FROM accounts
                                 WHERE member_id = m.member_id AND bucket = 'available' AND unit = 'points'))
        FROM members m JOIN tiers t ON t.tier_id = m.tier_id
        WHERE m.member_id = p_member
    );
END
$$;

CREATE FUNCTION pos_hold(
    p_scope text, p_key text, p_hash bytea, p_member bigint, p_amount bigint, p_expires_at timestamptz, p_actor text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_result jsonb := ledger_hold(p_scope, p_key, p_hash, p_member, 'points', p_amount, p_expires_at, p_actor);
BEGIN
    RETURN v_result || jsonb_build_object(
        'expires_at_ms', (SELECT (extract(epoch FROM expires_at) * 1000)::bigint FROM holds
                          WHERE hold_id = (v_result ->> 'hold_id')::bigint),
        'member', pos_member_snapshot(p_member));
END $$;

-- Commit: redeem (from the hold, or from available points) and award what the basket earned, in one
-- transaction. p_tier_code, when given, is the tier the basket was priced at; if the member's tier changed since,
-- nothing is written (LY014) and the caller prices again.
CREATE FUNCTION pos_commit(
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
        SELECT member_id INTO v_hold_member FROM holds WHERE hold_id = p_hold;
        IF NOT FOUND THEN
            PERFORM ledger_fail('LY004', 'unknown_hold', jsonb_build_object('hold_id', p_hold));
        ELSIF v_hold_member <> p_member THEN
            PERFORM ledger_fail('LY013', 'hold_mismatch', jsonb_build_object(
                'hold_id', p_hold, 'hold_member_id', v_hold_member));
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

-- Refund (or void, p_void): take back what returned lines earned and pay back redeemed points. The caller computed
-- the amounts from the checkout at p_expected_version (integer shares, LoyaltyCore's ProportionalReversal); a refund
-- that landed in between makes this one fail with LY015, and the caller recomputes. A void takes back everything
-- not yet taken back, so it needs no computation.
CREATE FUNCTION pos_refund(
    p_scope text, p_key text, p_hash bytea, p_terminal text, p_txn text, p_expected_version integer,
    p_returned jsonb, p_refunded_minor bigint, p_reverse bigint, p_restore bigint, p_occurred_at timestamptz,
    p_actor text, p_explanation jsonb, p_void boolean
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_replay jsonb := ledger_claim_key(p_scope, p_key, p_hash);
    v_member bigint;
    v_checkout pos_checkouts%ROWTYPE;
    v_reversal jsonb;
    v_restoration jsonb;
    v_spend bigint;
    v_reverse bigint := p_reverse;
    v_restore bigint := p_restore;
    v_refunded bigint := p_refunded_minor;
    v_returned jsonb := p_returned;
    v_response jsonb;
BEGIN
    SELECT member_id INTO v_member FROM pos_checkouts WHERE terminal_id = p_terminal AND pos_transaction_id = p_txn;
    IF v_replay IS NOT NULL THEN
        RETURN v_replay || jsonb_build_object('member', pos_member_snapshot(v_member));
    END IF;
    IF v_member IS NULL THEN
        PERFORM ledger_fail('LY016', 'unknown_transaction', jsonb_build_object(
            'terminal_id', p_terminal, 'pos_transaction_id', p_txn));
    END IF;
    PERFORM ledger_lock_member(v_member, false);
    SELECT * INTO STRICT v_checkout FROM pos_checkouts
    WHERE terminal_id = p_terminal AND pos_transaction_id = p_txn FOR UPDATE;
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
        v_reversal := ledger_reverse(p_scope, NULL, p_hash, v_checkout.accrual_entry_id, v_reverse, p_occurred_at,
                                     p_actor, p_explanation, v_spend);
        v_spend := 0;
    END IF;
    IF v_restore > 0 THEN
        v_restoration := ledger_reverse(p_scope, NULL, p_hash, v_checkout.redemption_entry_id, v_restore,
                                        p_occurred_at, p_actor, p_explanation, v_spend);
    END IF;
    UPDATE pos_checkouts
    SET returned = v_returned, refunded_minor = refunded_minor + v_refunded, refund_version = refund_version + 1,
        voided = p_void
    WHERE terminal_id = p_terminal AND pos_transaction_id = p_txn;
    v_response := jsonb_build_object(
        'award_reversed', v_reverse, 'points_restored', v_restore, 'unit', v_checkout.unit,
        'refunded_minor', v_refunded, 'award_unrecovered', coalesce((v_reversal ->> 'unrecovered')::bigint, 0),
        'points', ledger_balances(v_member, 'points'), 'replayed', false);
    PERFORM ledger_store_key(p_scope, p_key, NULL, v_response);
    RETURN v_response || jsonb_build_object('member', pos_member_snapshot(v_member));
END $$;

-- Cancel: void the purchase committed under p_txn on this terminal, or else release the hold taken under it.
CREATE FUNCTION pos_cancel(
    p_scope text, p_key text, p_hash bytea, p_terminal text, p_txn text, p_actor text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_replay jsonb := ledger_claim_key(p_scope, p_key, p_hash);
    v_member bigint;
    v_hold bigint;
    v_result jsonb;
    v_response jsonb;
BEGIN
    IF v_replay IS NOT NULL THEN
        RETURN v_replay || jsonb_build_object('member', pos_member_snapshot((v_replay ->> 'member_id')::bigint));
    END IF;
    IF EXISTS (SELECT 1 FROM pos_checkouts WHERE terminal_id = p_terminal AND pos_transaction_id = p_txn) THEN
        v_result := pos_refund(p_scope, NULL, p_hash, p_terminal, p_txn, 0, NULL, 0, 0, 0, now(), p_actor,
                               jsonb_build_object('void', p_txn), true);
        v_member := (v_result -> 'member' ->> 'id')::bigint;
        v_response := jsonb_build_object('cancelled', 'commit', 'member_id', v_member,
            'award_reversed', v_result -> 'award_reversed', 'points_restored', v_result -> 'points_restored',
            'points', v_result -> 'points', 'replayed', false);
    ELSE
        SELECT h.hold_id, h.member_id INTO v_hold, v_member
        FROM idempotency_keys k JOIN holds h ON h.entry_id = k.entry_id
        WHERE k.scope = p_scope AND k.key = 'hold:' || p_txn;
        IF NOT FOUND THEN
            PERFORM ledger_fail('LY016', 'unknown_transaction', jsonb_build_object(
                'terminal_id', p_terminal, 'pos_transaction_id', p_txn));
        END IF;
        v_result := ledger_release(p_scope, NULL, p_hash, v_hold, p_actor, 'released');
        v_response := jsonb_build_object('cancelled', 'hold', 'member_id', v_member, 'award_reversed', 0,
            'points_restored', 0, 'points', v_result -> 'balances', 'replayed', false);
    END IF;
    PERFORM ledger_store_key(p_scope, p_key, NULL, v_response);
    RETURN v_response || jsonb_build_object('member', pos_member_snapshot(v_member));
END $$;

-- Commits of many tills in one call and one transaction: one round trip and one WAL flush for the batch instead
-- of one each. Items are applied in member order, so two batches lock shared members in the same order and
-- cannot deadlock. Each item runs in its own subtransaction: a failing item (insufficient balance, a conflict)
-- rolls back alone and comes back as its error; the others commit. Keep batches small (the server sends at most
-- 32): more subtransactions than PostgreSQL caches per backend slow every session down.
CREATE FUNCTION pos_commit_batch(p_items jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_item record;
    v_result jsonb;
    v_results jsonb[] := array_fill(NULL::jsonb, ARRAY[jsonb_array_length(p_items)]);
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    IF jsonb_array_length(p_items) > 64 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object('batch_size', jsonb_array_length(p_items)));
    END IF;
    FOR v_item IN
        SELECT i.value AS item, i.ordinality AS position
        FROM jsonb_array_elements(p_items) WITH ORDINALITY AS i
        ORDER BY (i.value ->> 'member_id')::bigint, i.ordinality
    LOOP
        BEGIN
            v_result := pos_commit(
                v_item.item ->> 'scope', v_item.item ->> 'key', decode(v_item.item ->> 'hash', 'hex'),
                v_item.item ->> 'terminal_id', v_item.item ->> 'pos_transaction_id', (v_item.item ->> 'member_id')::bigint,
                v_item.item ->> 'tier_code', v_item.item ->> 'unit', (v_item.item ->> 'award')::bigint,
                (v_item.item ->> 'available_at')::timestamptz, (v_item.item ->> 'expires_at')::timestamptz,
                (v_item.item ->> 'occurred_at')::timestamptz, v_item.item ->> 'rules_version', (v_item.item ->> 'explanation')::jsonb,
                (v_item.item ->> 'spend_minor')::bigint, (v_item.item ->> 'lines')::jsonb, (v_item.item ->> 'paid_total_minor')::bigint,
                (v_item.item ->> 'hold_id')::bigint, (v_item.item ->> 'redeem')::bigint);
            v_results[v_item.position] := jsonb_build_object('r', v_result - 'member', 'm', v_result -> 'member');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
            v_results[v_item.position] := jsonb_build_object('e', jsonb_build_object(
                'state', v_state, 'message', v_message, 'detail', v_detail));
        END;
    END LOOP;
    RETURN to_jsonb(v_results);
END $$;
