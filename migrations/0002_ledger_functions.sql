-- Ledger operations as SQL functions: each is one call (one round trip) and one transaction.
--
-- Concurrency: every operation first locks its member's row (the ledger_version bump). That serialises the
-- operations of one member (lot consumption reads then writes several lots, which a conditional update alone
-- cannot make atomic), while operations on different members never wait for each other. No operation locks two
-- members, so there is no lock-order cycle and no deadlock; batch jobs lock members with SKIP LOCKED and never
-- wait. The conditional balance update (balance + amount >= 0) is the overdraft guard inside that lock, and the
-- accounts CHECK constraint is the last line of defence.
--
-- Errors are raised with SQLSTATE class LY and a JSON DETAIL; the whole transaction rolls back, so a failed
-- operation writes nothing (not even its idempotency key).
--   LY001 insufficient_balance   LY002 unknown_member      LY003 member_not_active   LY004 unknown_hold
--   LY005 hold_not_active        LY006 hold_exceeded       LY007 unknown_entry       LY008 not_reversible
--   LY009 reversal_exceeds_remaining                       LY010 idempotency_conflict
--   LY011 invalid_amount         LY012 invalid_dates       LY013 hold_mismatch       LY099 ledger_invariant

ALTER TABLE journal_entries
    ADD COLUMN unit text CHECK (unit IN ('points', 'cashback_minor')),
    -- The operation's own amount (accrued, redeemed, reversed, ...), for reversal bookkeeping and history.
    ADD COLUMN amount bigint NOT NULL DEFAULT 0 CHECK (amount >= 0),
    -- On accruals and redemptions: how much of it later reversals took back (never more than amount).
    ADD COLUMN reversed_amount bigint NOT NULL DEFAULT 0 CHECK (reversed_amount >= 0 AND reversed_amount <= amount),
    -- On reversals of accruals: points already spent that could not be taken back.
    ADD COLUMN unrecovered_amount bigint NOT NULL DEFAULT 0 CHECK (unrecovered_amount >= 0),
    ADD COLUMN hold_id bigint,
    -- Money spent (accruals: the paid amount; reversals for returns: minus the refunded amount), for tier
    -- qualification over a rolling window.
    ADD COLUMN spend_minor bigint NOT NULL DEFAULT 0;
CREATE INDEX journal_entries_spend_idx ON journal_entries (member_id, occurred_at) WHERE spend_minor <> 0;

-- Which lots a redemption (or negative adjustment) consumed, in order, so a reversal restores points to the
-- very lots, with their expiry dates.
CREATE TABLE lot_consumptions (
    entry_id         bigint NOT NULL REFERENCES journal_entries (entry_id),
    seq              integer NOT NULL,
    lot_id           bigint NOT NULL REFERENCES lots (lot_id),
    amount           bigint NOT NULL CHECK (amount > 0),
    restored_amount  bigint NOT NULL DEFAULT 0 CHECK (restored_amount >= 0 AND restored_amount <= amount),
    PRIMARY KEY (entry_id, seq)
);

-- Every member gets its six bucket accounts when it is created, so operations never insert accounts.
CREATE FUNCTION ledger_create_member_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accounts (member_id, bucket, unit)
    SELECT NEW.member_id, b, u
    FROM unnest(ARRAY['available', 'pending', 'held']) AS b
    CROSS JOIN unnest(ARRAY['points', 'cashback_minor']) AS u;
    RETURN NEW;
END $$;
CREATE TRIGGER members_create_accounts AFTER INSERT ON members
    FOR EACH ROW EXECUTE FUNCTION ledger_create_member_accounts();

CREATE FUNCTION ledger_fail(p_code text, p_message text, p_detail jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = p_code, MESSAGE = p_message, DETAIL = p_detail::text;
END $$;

-- NULL: go ahead (the key is now claimed by this transaction). Otherwise the stored response of the first
-- request with this key. A concurrent first request with the same key makes this wait until it commits or rolls
-- back, so a retry never runs alongside the original.
CREATE FUNCTION ledger_claim_key(p_scope text, p_key text, p_hash bytea) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_hash bytea;
    v_response jsonb;
BEGIN
    IF p_key IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO idempotency_keys (scope, key, request_hash, response)
    VALUES (p_scope, p_key, p_hash, '{}'::jsonb)
    ON CONFLICT (scope, key) DO NOTHING;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    SELECT request_hash, response INTO v_hash, v_response
    FROM idempotency_keys WHERE scope = p_scope AND key = p_key;
    IF v_hash <> p_hash THEN
        PERFORM ledger_fail('LY010', 'idempotency_conflict',
            jsonb_build_object('scope', p_scope, 'key', p_key));
    END IF;
    RETURN v_response || jsonb_build_object('replayed', true);
END $$;

CREATE FUNCTION ledger_store_key(p_scope text, p_key text, p_entry bigint, p_response jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_key IS NOT NULL THEN
        UPDATE idempotency_keys SET response = p_response, entry_id = p_entry WHERE scope = p_scope AND key = p_key;
    END IF;
END $$;

-- Locks the member (see the header) and returns its new ledger version.
CREATE FUNCTION ledger_lock_member(p_member bigint, p_require_active boolean) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_version bigint;
    v_status text;
BEGIN
    UPDATE members SET ledger_version = ledger_version + 1
    WHERE member_id = p_member
    RETURNING ledger_version, status INTO v_version, v_status;
    IF NOT FOUND THEN
        PERFORM ledger_fail('LY002', 'unknown_member', jsonb_build_object('member_id', p_member));
    END IF;
    IF p_require_active AND v_status <> 'active' THEN
        PERFORM ledger_fail('LY003', 'member_not_active', jsonb_build_object('member_id', p_member, 'status', v_status));
    END IF;
    RETURN v_version;
END $$;

CREATE FUNCTION ledger_check_amount(p_amount bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_amount IS NULL OR p_amount <= 0 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object('amount', p_amount));
    END IF;
END $$;

-- Helpers called on every checkout are PL/pgSQL, not SQL functions: PL/pgSQL keeps its statements' plans for the
-- session, while a SQL function called from PL/pgSQL is parsed and planned again on every call (measured: most of
-- the server's CPU under load went to parsing).
CREATE FUNCTION ledger_new_entry(
    p_kind text, p_member bigint, p_unit text, p_amount bigint, p_actor text, p_reason text, p_reverses bigint,
    p_rules_version text, p_explanation jsonb, p_occurred_at timestamptz, p_hold bigint DEFAULT NULL,
    p_spend_minor bigint DEFAULT 0
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_entry bigint;
BEGIN
    -- Every column in the one insert: a second UPDATE of the fresh row would be another write per checkout.
    INSERT INTO journal_entries (kind, member_id, unit, amount, actor, reason, reverses_entry_id, rules_version,
                                 explanation, occurred_at, hold_id, spend_minor)
    VALUES (p_kind, p_member, p_unit, p_amount, p_actor, p_reason, p_reverses, p_rules_version,
            coalesce(p_explanation, '{}'::jsonb), coalesce(p_occurred_at, now()), p_hold, coalesce(p_spend_minor, 0))
    RETURNING entry_id INTO v_entry;
    RETURN v_entry;
END $$;

-- Posts one amount. Member buckets: a conditional update that refuses to go below zero. System buckets: the
-- posting alone (their balances are derived from postings, so no hot row is updated per checkout).
CREATE FUNCTION ledger_post(p_entry bigint, p_member bigint, p_bucket text, p_unit text, p_amount bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_account bigint;
    v_balance bigint;
BEGIN
    IF p_amount = 0 THEN
        RETURN;
    END IF;
    IF p_bucket IN ('available', 'pending', 'held') THEN
        UPDATE accounts SET balance = balance + p_amount, version = version + 1
        WHERE member_id = p_member AND bucket = p_bucket AND unit = p_unit AND balance + p_amount >= 0
        RETURNING account_id INTO v_account;
        IF NOT FOUND THEN
            SELECT balance INTO v_balance FROM accounts
            WHERE member_id = p_member AND bucket = p_bucket AND unit = p_unit;
            PERFORM ledger_fail('LY001', 'insufficient_balance', jsonb_build_object(
                'member_id', p_member, 'bucket', p_bucket, 'unit', p_unit,
                'requested', -p_amount, 'available', coalesce(v_balance, 0)));
        END IF;
    ELSE
        SELECT account_id INTO STRICT v_account FROM accounts
        WHERE member_id IS NULL AND campaign_id IS NULL AND bucket = p_bucket AND unit = p_unit;
    END IF;
    INSERT INTO postings (entry_id, account_id, amount) VALUES (p_entry, v_account, p_amount);
END $$;

CREATE FUNCTION ledger_balances(p_member bigint, p_unit text) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT jsonb_build_object(
            'available', coalesce(sum(balance) FILTER (WHERE bucket = 'available'), 0),
            'pending', coalesce(sum(balance) FILTER (WHERE bucket = 'pending'), 0),
            'held', coalesce(sum(balance) FILTER (WHERE bucket = 'held'), 0))
        FROM accounts WHERE member_id = p_member AND unit = p_unit
    );
END
$$;

-- Takes p_amount out of the member's available lots, soonest expiry first (never-expiring last), recording each
-- piece in lot_consumptions. The caller has already moved the balance, so the lots must cover it.
CREATE FUNCTION ledger_consume_lots(p_entry bigint, p_member bigint, p_unit text, p_amount bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_left bigint := p_amount;
    v_take bigint;
    v_seq integer := coalesce((SELECT max(seq) FROM lot_consumptions WHERE entry_id = p_entry), 0);
    v_lot record;
    v_consumed jsonb := '[]'::jsonb;
BEGIN
    FOR v_lot IN
        SELECT lot_id, remaining_amount FROM lots
        WHERE member_id = p_member AND unit = p_unit AND state = 'available' AND remaining_amount > 0
        ORDER BY expires_at ASC NULLS LAST, lot_id ASC
        FOR UPDATE
    LOOP
        EXIT WHEN v_left = 0;
        v_take := least(v_left, v_lot.remaining_amount);
        UPDATE lots SET remaining_amount = remaining_amount - v_take WHERE lot_id = v_lot.lot_id;
        v_seq := v_seq + 1;
        INSERT INTO lot_consumptions (entry_id, seq, lot_id, amount) VALUES (p_entry, v_seq, v_lot.lot_id, v_take);
        v_consumed := v_consumed || jsonb_build_object('lot_id', v_lot.lot_id, 'amount', v_take);
        v_left := v_left - v_take;
    END LOOP;
    IF v_left > 0 THEN
        PERFORM ledger_fail('LY099', 'ledger_invariant', jsonb_build_object(
            'member_id', p_member, 'unit', p_unit, 'reason', 'lots do not cover the available balance',
            'missing', v_left));
    END IF;
    RETURN v_consumed;
END $$;

CREATE FUNCTION ledger_response(p_entry bigint, p_member bigint, p_unit text, p_version bigint, p_extra jsonb)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT jsonb_build_object(
            'entry_id', p_entry, 'member_id', p_member, 'unit', p_unit, 'ledger_version', p_version,
            'balances', ledger_balances(p_member, p_unit), 'replayed', false) || coalesce(p_extra, '{}'::jsonb)
    );
END
$$;
