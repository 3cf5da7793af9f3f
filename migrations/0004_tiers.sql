-- Tier qualification: spend over each tier's rolling window, upgrades at once on the purchase that crosses a
-- threshold, downgrades only at review time, one rank at a time, after a grace period. Every change is recorded.

ALTER TABLE members
    ADD COLUMN tier_changed_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN tier_reviewed_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX members_tier_review_idx ON members (tier_reviewed_at);

CREATE TABLE tier_changes (
    change_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    member_id     bigint NOT NULL REFERENCES members (member_id),
    from_tier_id  bigint NOT NULL REFERENCES tiers (tier_id),
    to_tier_id    bigint NOT NULL REFERENCES tiers (tier_id),
    reason        text NOT NULL,
    spend_minor   bigint NOT NULL,
    actor         text NOT NULL,
    changed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tier_changes_member_idx ON tier_changes (member_id, change_id DESC);

-- Net spend (purchases minus refunds) in the window (p_at − p_window_days, p_at].
CREATE FUNCTION member_spend_minor(p_member bigint, p_window_days integer, p_at timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT coalesce(sum(spend_minor), 0)::bigint FROM journal_entries
        WHERE member_id = p_member AND spend_minor <> 0
          AND occurred_at > p_at - make_interval(days => p_window_days) AND occurred_at <= p_at
    );
END
$$;

-- The highest-ranked tier whose threshold the member's spend over that tier's own window reaches.
CREATE FUNCTION tier_qualifying(p_member bigint, p_at timestamptz) RETURNS tiers
LANGUAGE sql STABLE AS $$
    SELECT t.* FROM tiers t
    WHERE member_spend_minor(p_member, t.qualification_window_days, p_at) >= t.qualification_spend_minor
    ORDER BY t.rank DESC LIMIT 1
$$;

CREATE FUNCTION tier_record_change(
    p_member bigint, p_from bigint, p_to bigint, p_reason text, p_spend bigint, p_actor text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_from tiers%ROWTYPE;
    v_to tiers%ROWTYPE;
BEGIN
    SELECT * INTO STRICT v_from FROM tiers WHERE tier_id = p_from;
    SELECT * INTO STRICT v_to FROM tiers WHERE tier_id = p_to;
    UPDATE members SET tier_id = p_to, tier_changed_at = now(), updated_at = now() WHERE member_id = p_member;
    INSERT INTO tier_changes (member_id, from_tier_id, to_tier_id, reason, spend_minor, actor)
    VALUES (p_member, p_from, p_to, p_reason, p_spend, p_actor);
    RETURN jsonb_build_object('from', v_from.code, 'to', v_to.code, 'reason', p_reason);
END $$;

-- Called inside a purchase's transaction (the member row is already locked). NULL when nothing changes.
CREATE FUNCTION tier_upgrade_on_purchase(p_member bigint, p_actor text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_current tiers%ROWTYPE;
    v_best tiers%ROWTYPE;
    v_spend bigint;
BEGIN
    SELECT t.* INTO STRICT v_current FROM tiers t JOIN members m ON m.tier_id = t.tier_id WHERE m.member_id = p_member;
    -- Only higher tiers matter here (a purchase never lowers a tier), highest first: a member at the top costs no
    -- spend query at all, which keeps this cheap on the checkout path.
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

-- The review job: members not reviewed for p_review_days. A member whose spend no longer qualifies for the
-- current tier drops one rank, but only when the last change is older than p_grace_days. Members busy at a till
-- are skipped (SKIP LOCKED) and reviewed on the next run.
CREATE FUNCTION tier_review_due(p_batch integer, p_review_days integer, p_grace_days integer, p_actor text)
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
BEGIN
    FOR v_member IN
        SELECT member_id, tier_id, tier_changed_at FROM members
        WHERE tier_reviewed_at <= now() - make_interval(days => p_review_days) AND status <> 'erased'
        ORDER BY tier_reviewed_at
        LIMIT p_batch
        FOR UPDATE SKIP LOCKED
    LOOP
        v_reviewed := v_reviewed + 1;
        SELECT * INTO STRICT v_current FROM tiers WHERE tier_id = v_member.tier_id;
        v_best := tier_qualifying(v_member.member_id, now());
        IF v_best.rank > v_current.rank THEN
            v_spend := member_spend_minor(v_member.member_id, v_best.qualification_window_days, now());
            PERFORM tier_record_change(v_member.member_id, v_current.tier_id, v_best.tier_id,
                format('review: spend %s qualifies', v_spend), v_spend, p_actor);
            v_up := v_up + 1;
        ELSIF v_best.rank < v_current.rank AND v_member.tier_changed_at <= now() - make_interval(days => p_grace_days) THEN
            SELECT * INTO STRICT v_lower FROM tiers WHERE rank < v_current.rank ORDER BY rank DESC LIMIT 1;
            v_spend := member_spend_minor(v_member.member_id, v_current.qualification_window_days, now());
            PERFORM tier_record_change(v_member.member_id, v_current.tier_id, v_lower.tier_id,
                format('review: spend %s over %s days is below %s; down one rank after %s grace days', v_spend,
                       v_current.qualification_window_days, v_current.qualification_spend_minor, p_grace_days),
                v_spend, p_actor);
            v_down := v_down + 1;
        END IF;
        UPDATE members SET tier_reviewed_at = now() WHERE member_id = v_member.member_id;
    END LOOP;
    RETURN jsonb_build_object('reviewed', v_reviewed, 'upgraded', v_up, 'downgraded', v_down);
END $$;
