-- The tier review's decision for one member lives in one function, tier_review_decision, so the review job
-- (tier_review_due) and its preview (tier_review_preview: `loyalty tiers review --dry-run`,
-- GET /v1/tier-review/preview) cannot disagree. The decision is the review's of 0004: a member whose spend
-- qualifies for a higher tier moves up to it; one whose spend no longer qualifies for the current tier drops one
-- rank, but only once the last change is older than the grace period; otherwise the tier is kept.

-- The decision for a member holding tier p_tier_id, last changed at p_changed_at, reviewed at p_at. Reads only.
CREATE FUNCTION tier_review_decision(
    p_member bigint, p_tier_id bigint, p_changed_at timestamptz, p_grace_days integer, p_at timestamptz,
    OUT action text, OUT to_tier_id bigint, OUT spend_minor bigint, OUT reason text
) LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_current tiers%ROWTYPE;
    v_best tiers%ROWTYPE;
    v_lower tiers%ROWTYPE;
BEGIN
    SELECT * INTO STRICT v_current FROM tiers WHERE tier_id = p_tier_id;
    v_best := tier_qualifying(p_member, p_at);
    IF v_best.rank > v_current.rank THEN
        action := 'upgrade';
        to_tier_id := v_best.tier_id;
        spend_minor := member_spend_minor(p_member, v_best.qualification_window_days, p_at);
        reason := format('review: spend %s qualifies', spend_minor);
    ELSIF v_best.rank < v_current.rank AND p_changed_at <= p_at - make_interval(days => p_grace_days) THEN
        SELECT * INTO STRICT v_lower FROM tiers WHERE rank < v_current.rank ORDER BY rank DESC LIMIT 1;
        action := 'downgrade';
        to_tier_id := v_lower.tier_id;
        spend_minor := member_spend_minor(p_member, v_current.qualification_window_days, p_at);
        reason := format('review: spend %s over %s days is below %s; down one rank after %s grace days', spend_minor,
                         v_current.qualification_window_days, v_current.qualification_spend_minor, p_grace_days);
    ELSE
        action := 'keep';
        to_tier_id := p_tier_id;
        spend_minor := member_spend_minor(p_member, v_current.qualification_window_days, p_at);
        -- No qualifying tier at all (net spend below zero after refunds) keeps the tier, as the review always did.
        IF v_best.tier_id IS NULL OR v_best.rank < v_current.rank THEN
            reason := format('review: spend %s over %s days is below %s; kept until %s grace days after the last change',
                             spend_minor, v_current.qualification_window_days, v_current.qualification_spend_minor,
                             p_grace_days);
        ELSE
            reason := format('review: spend %s over %s days still qualifies', spend_minor,
                             v_current.qualification_window_days);
        END IF;
    END IF;
END $$;

-- The review job: unchanged in what it selects, locks, writes and answers (0015); the decision is now
-- tier_review_decision's.
CREATE OR REPLACE FUNCTION tier_review_due(p_batch integer, p_review_days integer, p_grace_days integer, p_actor text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_member record;
    v_decision record;
    v_reviewed integer := 0;
    v_down integer := 0;
    v_up integer := 0;
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
        SELECT * INTO STRICT v_decision
        FROM tier_review_decision(v_member.member_id, v_member.tier_id, v_member.tier_changed_at, p_grace_days, now());
        IF v_decision.action <> 'keep' THEN
            PERFORM tier_record_change(v_member.member_id, v_member.tier_id, v_decision.to_tier_id, v_decision.reason,
                                       v_decision.spend_minor, p_actor);
            IF v_decision.action = 'upgrade' THEN
                v_up := v_up + 1;
            ELSE
                v_down := v_down + 1;
            END IF;
            UPDATE members SET tier_reviewed_at = now(), ledger_version = ledger_version + 1
            WHERE member_id = v_member.member_id RETURNING ledger_version INTO v_version;
            v_members := v_members || jsonb_build_array(jsonb_build_array(v_member.member_id, v_version));
        ELSE
            UPDATE members SET tier_reviewed_at = now() WHERE member_id = v_member.member_id;
        END IF;
    END LOOP;
    RETURN jsonb_build_object('reviewed', v_reviewed, 'upgraded', v_up, 'downgraded', v_down, 'changed', v_members);
END $$;

-- What a review at p_at would decide for each member due then (not reviewed for p_review_days), in member id
-- order after p_after, at most p_limit rows. Writes nothing and locks nothing.
CREATE FUNCTION tier_review_preview(
    p_review_days integer, p_grace_days integer, p_at timestamptz, p_after bigint, p_limit integer
) RETURNS TABLE (member_id bigint, from_tier text, to_tier text, action text, spend_minor bigint, reason text,
                 tier_reviewed_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT due.member_id, f.code, t.code, d.action, d.spend_minor, d.reason, due.tier_reviewed_at
    FROM (
        SELECT m.member_id, m.tier_id, m.tier_changed_at, m.tier_reviewed_at FROM members m
        WHERE m.tier_reviewed_at <= p_at - make_interval(days => p_review_days) AND m.status <> 'erased'
          AND m.member_id > coalesce(p_after, 0)
        ORDER BY m.member_id
        LIMIT p_limit
    ) due
    CROSS JOIN LATERAL tier_review_decision(due.member_id, due.tier_id, due.tier_changed_at, p_grace_days, p_at) d
    JOIN tiers f ON f.tier_id = due.tier_id
    JOIN tiers t ON t.tier_id = d.to_tier_id
    ORDER BY due.member_id
$$;
