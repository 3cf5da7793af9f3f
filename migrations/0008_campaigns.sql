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
CREATE TRIGGER campaigns_changed AFTER INSERT OR UPDATE OR DELETE ON campaigns
    FOR EACH STATEMENT EXECUTE FUNCTION campaigns_bump_version();
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
