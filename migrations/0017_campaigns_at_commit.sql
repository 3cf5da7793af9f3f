-- A campaign reaches every till from the moment its schedule (or cancel) call has answered: each commit is priced
-- with the campaigns version the server had loaded, and the batch is refused (LY024 campaigns_changed) when the
-- version moved since; the server then reloads the campaigns and prices again. The check reads the version in the
-- same statement as the batch's writes, after the purchase reached the server, so any change committed before the
-- purchase is seen. Servers also hear of changes at once by NOTIFY instead of waiting for their next poll.

-- NULL versions (a server without campaigns) are not checked.
CREATE FUNCTION checkout_campaigns_current(p_versions bigint[]) RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_now bigint;
    v_stale bigint;
BEGIN
    SELECT version INTO STRICT v_now FROM campaigns_version;
    SELECT min(v) INTO v_stale FROM unnest(p_versions) AS v WHERE v IS NOT NULL AND v <> v_now;
    IF v_stale IS NOT NULL THEN
        PERFORM ledger_fail('LY024', 'campaigns_changed', jsonb_build_object('priced_at', v_stale, 'now', v_now));
    END IF;
END $$;

CREATE FUNCTION checkout_commit_batch_checked(
    p_campaigns_version bigint[],
    p_scope text[], p_key text[], p_hash bytea[], p_terminal text[], p_txn text[], p_member bigint[],
    p_tier_code text[], p_unit text[], p_award bigint[], p_available_at timestamptz[], p_expires_at timestamptz[],
    p_occurred_at timestamptz[], p_rules_version text[], p_explanation jsonb[], p_spend_minor bigint[],
    p_lines jsonb[], p_paid_total_minor bigint[], p_hold bigint[], p_redeem bigint[]
) RETURNS SETOF checkout_result LANGUAGE plpgsql AS $$
BEGIN
    PERFORM checkout_campaigns_current(p_campaigns_version);
    RETURN QUERY SELECT * FROM checkout_commit_batch(
        p_scope, p_key, p_hash, p_terminal, p_txn, p_member, p_tier_code, p_unit, p_award, p_available_at,
        p_expires_at, p_occurred_at, p_rules_version, p_explanation, p_spend_minor, p_lines, p_paid_total_minor,
        p_hold, p_redeem);
END $$;
ALTER FUNCTION checkout_commit_batch_checked SET jit = off;
ALTER FUNCTION checkout_commit_batch_checked SET plan_cache_mode = force_generic_plan;

CREATE OR REPLACE FUNCTION campaigns_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_version bigint;
BEGIN
    UPDATE campaigns_version SET version = version + 1 RETURNING version INTO v_version;
    -- Delivered when the change commits; a server that misses it still polls.
    PERFORM pg_notify('loyalty_campaigns', v_version::text);
    RETURN NULL;
END $$;
