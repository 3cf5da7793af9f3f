-- Campaigns and segments for marketers. Multiplier campaigns are applied by the rules evaluation at checkout (the
-- server keeps the active ones in memory and reloads them when `campaigns_version` moves); bonus campaigns pay a
-- segment once per member (campaign_awards is the record that makes a second run pay nobody twice).

-- Saved member selections. `definition` is the validated, structured form the server compiles to parameterised
-- SQL; members are materialised in segment_members when the segment is refreshed.
CREATE TABLE segments (
    segment_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    definition    jsonb NOT NULL,
    member_count  bigint NOT NULL DEFAULT 0,
    refreshed_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE segment_members (
    segment_id  bigint NOT NULL REFERENCES segments (segment_id) ON DELETE CASCADE,
    member_id   bigint NOT NULL REFERENCES members (member_id),
    PRIMARY KEY (segment_id, member_id)
);
CREATE INDEX segment_members_member_idx ON segment_members (member_id);

CREATE TABLE campaigns (
    campaign_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind                text NOT NULL CHECK (kind IN ('multiplier', 'bonus', 'birthday', 'welcome')),
    state               text NOT NULL DEFAULT 'draft'
                        CHECK (state IN ('draft', 'scheduled', 'running', 'finished', 'cancelled')),
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL,
    -- Multiplier campaigns: one of the two effects, and optional restrictions (NULL = everything).
    multiplier_bp       bigint CHECK (multiplier_bp BETWEEN 10000 AND 100000),
    extra_rate_bp       bigint CHECK (extra_rate_bp BETWEEN 0 AND 100000),
    categories          text[],
    skus                text[],
    tier_codes          text[],
    segment_id          bigint REFERENCES segments (segment_id),
    -- Bonus campaigns: points per member, their expiry, and the most the campaign may ever give.
    bonus_points        bigint CHECK (bonus_points > 0),
    bonus_expires_days  integer CHECK (bonus_expires_days BETWEEN 1 AND 3650),
    budget_points       bigint CHECK (budget_points >= 0),
    awarded_points      bigint NOT NULL DEFAULT 0 CHECK (awarded_points >= 0),
    -- Progress of a bonus run: members paid, members in the segment when it was triggered, and when it ran.
    awarded_members     bigint NOT NULL DEFAULT 0,
    target_members      bigint,
    run_started_at      timestamptz,
    run_finished_at     timestamptz,
    finish_reason       text,
    -- Highest member id a run has dealt with: members are paid in id order, so each batch starts after it
    -- instead of scanning past everyone already paid.
    run_cursor          bigint NOT NULL DEFAULT 0,
    created_by          text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    CHECK (kind <> 'multiplier' OR (multiplier_bp IS NULL) <> (extra_rate_bp IS NULL)),
    CHECK (kind = 'multiplier' OR bonus_points IS NOT NULL),
    CHECK (budget_points IS NULL OR awarded_points <= budget_points)
);
CREATE INDEX campaigns_live_idx ON campaigns (ends_at) WHERE state IN ('scheduled', 'running');

-- One row per member a bonus campaign paid: the primary key is what makes a rerun or a second trigger pay nobody
-- twice, and the entry shows where the points went.
CREATE TABLE campaign_awards (
    campaign_id  bigint NOT NULL REFERENCES campaigns (campaign_id),
    member_id    bigint NOT NULL REFERENCES members (member_id),
    entry_id     bigint NOT NULL REFERENCES journal_entries (entry_id),
    points       bigint NOT NULL CHECK (points > 0),
    awarded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, member_id)
);

-- Bumped by every change to campaigns, so each server reloads its in-memory multipliers by polling one row.
CREATE TABLE campaigns_version (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint NOT NULL
);
INSERT INTO campaigns_version VALUES (true, 1);

CREATE FUNCTION campaigns_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE campaigns_version SET version = version + 1;
    RETURN NULL;
END $$;
-- Only multiplier campaigns matter to the checkout: a bonus run updating its counters every batch must not make
-- every server reload.
CREATE TRIGGER campaigns_inserted AFTER INSERT ON campaigns
    FOR EACH ROW WHEN (NEW.kind = 'multiplier') EXECUTE FUNCTION campaigns_bump_version();
CREATE TRIGGER campaigns_updated AFTER UPDATE ON campaigns
    FOR EACH ROW WHEN (NEW.kind = 'multiplier' OR OLD.kind = 'multiplier') EXECUTE FUNCTION campaigns_bump_version();
CREATE TRIGGER campaigns_deleted AFTER DELETE ON campaigns
    FOR EACH ROW WHEN (OLD.kind = 'multiplier') EXECUTE FUNCTION campaigns_bump_version();
CREATE TRIGGER segment_members_changed AFTER INSERT OR DELETE ON segment_members
    FOR EACH STATEMENT EXECUTE FUNCTION campaigns_bump_version();

-- Pricing now also says which live multiplier campaigns' segments the member is in (the evaluator's
-- `memberSegments`), in the same single query the till already makes.
CREATE OR REPLACE FUNCTION pos_member_pricing(p_member bigint) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT jsonb_build_object(
            'member_id', m.member_id, 'tier_code', t.code, 'tier_rate_override_bp', t.earn_rate_override_bp,
            'status', m.status,
            'available_points', (SELECT balance FROM accounts
                                 WHERE member_id = m.member_id AND bucket = 'available' AND unit = 'points'),
            'campaign_segments', (SELECT coalesce(jsonb_agg(c.campaign_id), '[]'::jsonb)
                                  FROM segment_members sm
                                  JOIN campaigns c ON c.segment_id = sm.segment_id
                                  WHERE sm.member_id = m.member_id AND c.kind = 'multiplier'
                                    AND c.state IN ('scheduled', 'running')))
        FROM members m JOIN tiers t ON t.tier_id = m.tier_id
        WHERE m.member_id = p_member
    );
END
$$;

-- Starts a bonus campaign's run. Locks the campaign row, so of two marketers triggering at once the second sees
-- the first's run and is told so; a finished or cancelled campaign cannot run again.
--   LY019 unknown_campaign   LY020 not_a_bonus_campaign   LY021 campaign_ended   LY022 campaign_already_running
--   LY023 campaign_has_no_segment
-- Locks a bonus campaign's row (runs and triggers of one campaign take turns) and returns it.
CREATE FUNCTION campaign_lock_bonus(p_campaign bigint) RETURNS campaigns LANGUAGE plpgsql AS $$
DECLARE
    v_campaign campaigns%ROWTYPE;
BEGIN
    SELECT * INTO v_campaign FROM campaigns WHERE campaign_id = p_campaign FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM ledger_fail('LY019', 'unknown_campaign', jsonb_build_object('campaign_id', p_campaign));
    END IF;
    IF v_campaign.kind <> 'bonus' THEN
        PERFORM ledger_fail('LY020', 'not_a_bonus_campaign', jsonb_build_object('campaign_id', p_campaign, 'kind', v_campaign.kind));
    END IF;
    RETURN v_campaign;
END $$;

CREATE FUNCTION campaign_trigger(p_campaign bigint) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_campaign campaigns%ROWTYPE;
BEGIN
    v_campaign := campaign_lock_bonus(p_campaign);
    IF v_campaign.state IN ('finished', 'cancelled') THEN
        PERFORM ledger_fail('LY021', 'campaign_ended', jsonb_build_object('campaign_id', p_campaign, 'state', v_campaign.state));
    END IF;
    IF v_campaign.state = 'running' THEN
        PERFORM ledger_fail('LY022', 'campaign_already_running', jsonb_build_object('campaign_id', p_campaign));
    END IF;
    IF v_campaign.segment_id IS NULL THEN
        PERFORM ledger_fail('LY023', 'campaign_has_no_segment', jsonb_build_object('campaign_id', p_campaign));
    END IF;
    UPDATE campaigns
    SET state = 'running', run_started_at = now(), updated_at = now(),
        target_members = (SELECT count(*) FROM segment_members WHERE segment_id = v_campaign.segment_id)
    WHERE campaign_id = p_campaign;
    RETURN campaign_progress(p_campaign);
END $$;

CREATE FUNCTION campaign_progress(p_campaign bigint) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'campaign_id', campaign_id, 'state', state, 'awarded_members', awarded_members,
        'target_members', target_members, 'awarded_points', awarded_points, 'budget_points', budget_points,
        'run_started_at', run_started_at, 'run_finished_at', run_finished_at, 'finish_reason', finish_reason,
        'elapsed_s', extract(epoch FROM coalesce(run_finished_at, now()) - run_started_at))
        FROM campaigns WHERE campaign_id = p_campaign);
END $$;

-- Pays the bonus to up to p_batch members of the segment not paid yet, lowest member id first (the same lock
-- order as batched commits, so the two never deadlock): one campaign_bonus entry with its own lot and expiry per
-- member, and a campaign_awards row whose primary key refuses a second payment. Set-based: a batch is a handful of
-- statements, not a handful per member. The campaign row is locked for the batch, so concurrent runners take
-- turns; the batch is cut to what the budget still allows, so the budget is never exceeded. A run that dies loses
-- only its uncommitted batch: the next one starts from the stored cursor.
CREATE FUNCTION campaign_award_batch(p_campaign bigint, p_batch integer, p_actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_campaign campaigns%ROWTYPE;
    v_limit bigint;
    v_members bigint[];
    v_issued bigint;
    v_paid integer := 0;
    v_expires timestamptz;
    v_reason text;
BEGIN
    IF p_batch NOT BETWEEN 1 AND 5000 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object('batch', p_batch));
    END IF;
    v_campaign := campaign_lock_bonus(p_campaign);
    IF v_campaign.state <> 'running' THEN
        RETURN campaign_progress(p_campaign) || jsonb_build_object('paid', 0, 'done', true);
    END IF;
    v_limit := p_batch;
    IF v_campaign.budget_points IS NOT NULL THEN
        v_limit := least(v_limit, (v_campaign.budget_points - v_campaign.awarded_points) / v_campaign.bonus_points);
    END IF;
    IF v_limit > 0 THEN
        SELECT array_agg(member_id ORDER BY member_id) INTO v_members FROM (
            SELECT sm.member_id FROM segment_members sm
            JOIN members m ON m.member_id = sm.member_id
            WHERE sm.segment_id = v_campaign.segment_id AND sm.member_id > v_campaign.run_cursor AND m.status = 'active'
            ORDER BY sm.member_id
            LIMIT v_limit) AS next_members;
    END IF;
    IF v_members IS NOT NULL THEN
        -- Lock in id order and move each member's ledger version (the cache compares it).
        PERFORM 1 FROM members WHERE member_id = ANY(v_members) ORDER BY member_id FOR UPDATE;
        UPDATE members SET ledger_version = ledger_version + 1 WHERE member_id = ANY(v_members);
        SELECT account_id INTO STRICT v_issued FROM accounts
        WHERE member_id IS NULL AND campaign_id IS NULL AND bucket = 'issued' AND unit = 'points';
        v_expires := now() + make_interval(days => coalesce(v_campaign.bonus_expires_days, 365));
        WITH entries AS (
            INSERT INTO journal_entries (kind, member_id, unit, amount, actor, reason, explanation, occurred_at)
            SELECT 'campaign_bonus', u.mid, 'points', v_campaign.bonus_points, p_actor, 'campaign ' || v_campaign.name,
                   jsonb_build_object('campaign_id', p_campaign, 'campaign', v_campaign.name), now()
            FROM unnest(v_members) AS u(mid)
            WHERE NOT EXISTS (SELECT 1 FROM campaign_awards a WHERE a.campaign_id = p_campaign AND a.member_id = u.mid)
            RETURNING entry_id, member_id
        ), new_lots AS (
            INSERT INTO lots (member_id, entry_id, unit, original_amount, remaining_amount, state, available_at, expires_at)
            SELECT member_id, entry_id, 'points', v_campaign.bonus_points, v_campaign.bonus_points, 'available', now(), v_expires
            FROM entries
        ), member_postings AS (
            INSERT INTO postings (entry_id, account_id, amount)
            SELECT e.entry_id, a.account_id, v_campaign.bonus_points
            FROM entries e JOIN accounts a ON a.member_id = e.member_id AND a.bucket = 'available' AND a.unit = 'points'
        ), system_postings AS (
            INSERT INTO postings (entry_id, account_id, amount)
            SELECT entry_id, v_issued, -v_campaign.bonus_points FROM entries
        ), balances AS (
            UPDATE accounts a SET balance = a.balance + v_campaign.bonus_points, version = a.version + 1
            FROM entries e WHERE a.member_id = e.member_id AND a.bucket = 'available' AND a.unit = 'points'
        ), awards AS (
            INSERT INTO campaign_awards (campaign_id, member_id, entry_id, points)
            SELECT p_campaign, member_id, entry_id, v_campaign.bonus_points FROM entries
        )
        SELECT count(*) INTO v_paid FROM entries;
    END IF;
    IF v_campaign.budget_points IS NOT NULL
       AND v_campaign.awarded_points + v_paid * v_campaign.bonus_points + v_campaign.bonus_points > v_campaign.budget_points THEN
        v_reason := 'budget';
    ELSIF v_members IS NULL OR cardinality(v_members) < v_limit THEN
        v_reason := 'everyone paid';
    END IF;
    UPDATE campaigns
    SET awarded_points = awarded_points + v_paid * bonus_points, awarded_members = awarded_members + v_paid,
        run_cursor = coalesce(v_members[cardinality(v_members)], run_cursor), updated_at = now(),
        state = CASE WHEN v_reason IS NULL THEN state ELSE 'finished' END,
        run_finished_at = CASE WHEN v_reason IS NULL THEN NULL ELSE now() END,
        finish_reason = v_reason
    WHERE campaign_id = p_campaign;
    RETURN campaign_progress(p_campaign) || jsonb_build_object('paid', v_paid, 'done', v_reason IS NOT NULL);
END $$;
