-- The tier review changes members' tiers outside any till write. Tills read the tier from the cached member
-- snapshot, which is versioned by members.ledger_version: a review that changed a tier now raises that version and
-- says which members it changed, so the server marks their snapshots old at once instead of the till showing the
-- old tier until the cache entry expires.

CREATE OR REPLACE FUNCTION tier_review_due(p_batch integer, p_review_days integer, p_grace_days integer, p_actor text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_member record;
    v_current tiers%ROWTYPE;
    v_best tiers%ROWTYPE;
    v_lower tiers%ROWTYPE;
    v_spend bigint;
    v_reviewed integer := 0;
    v_down integer := 0;
    v_up integer := 0;
    v_changed boolean;
    v_version bigint;
    v_members jsonb := '[]'::jsonb;
BEGIN
    FOR v_member IN
        SELECT member_id, tier_id, tier_changed_at FROM members
        WHERE tier_reviewed_at <= now() - make_interval(days => p_review_days) AND status <> 'erased'
        ORDER BY tier_reviewed_at
        LIMIT p_batch
        FOR UPDATE SKIP LOCKED
    LOOP
        v_reviewed := v_reviewed + 1;
        v_changed := false;
        SELECT * INTO STRICT v_current FROM tiers WHERE tier_id = v_member.tier_id;
        v_best := tier_qualifying(v_member.member_id, now());
        IF v_best.rank > v_current.rank THEN
            v_spend := member_spend_minor(v_member.member_id, v_best.qualification_window_days, now());
            PERFORM tier_record_change(v_member.member_id, v_current.tier_id, v_best.tier_id,
                format('review: spend %s qualifies', v_spend), v_spend, p_actor);
            v_up := v_up + 1;
            v_changed := true;
        ELSIF v_best.rank < v_current.rank AND v_member.tier_changed_at <= now() - make_interval(days => p_grace_days) THEN
            SELECT * INTO STRICT v_lower FROM tiers WHERE rank < v_current.rank ORDER BY rank DESC LIMIT 1;
            v_spend := member_spend_minor(v_member.member_id, v_current.qualification_window_days, now());
            PERFORM tier_record_change(v_member.member_id, v_current.tier_id, v_lower.tier_id,
                format('review: spend %s over %s days is below %s; down one rank after %s grace days', v_spend,
                       v_current.qualification_window_days, v_current.qualification_spend_minor, p_grace_days),
                v_spend, p_actor);
            v_down := v_down + 1;
            v_changed := true;
        END IF;
        IF v_changed THEN
            UPDATE members SET tier_reviewed_at = now(), ledger_version = ledger_version + 1
            WHERE member_id = v_member.member_id RETURNING ledger_version INTO v_version;
            v_members := v_members || jsonb_build_array(jsonb_build_array(v_member.member_id, v_version));
        ELSE
            UPDATE members SET tier_reviewed_at = now() WHERE member_id = v_member.member_id;
        END IF;
    END LOOP;
    RETURN jsonb_build_object('reviewed', v_reviewed, 'upgraded', v_up, 'downgraded', v_down, 'changed', v_members);
END $$;
