-- Pricing from the cached snapshot: the snapshot a till's lookup caches also carries what pricing a basket needs
-- beyond the tier code ('pr': the tier's rate override, the member's live multiplier campaigns, and the
-- campaigns_version they were read at), so a commit is priced without reading PostgreSQL. A tier change moves
-- campaigns_version too, so a snapshot priced under an old ladder is not used.
CREATE TRIGGER tiers_changed AFTER INSERT OR UPDATE OR DELETE ON tiers
    FOR EACH STATEMENT EXECUTE FUNCTION campaigns_bump_version();

CREATE OR REPLACE FUNCTION pos_member_snapshot(p_member bigint) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
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
                'h', coalesce(sum(a.balance) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'held'), 0)),
            'pr', jsonb_build_object(
                'ro', t.earn_rate_override_bp,
                'cv', (SELECT version FROM campaigns_version),
                'cs', (SELECT coalesce(jsonb_agg(c.campaign_id ORDER BY c.campaign_id), '[]'::jsonb)
                       FROM segment_members sm
                       JOIN campaigns c ON c.segment_id = sm.segment_id
                       WHERE sm.member_id = m.member_id AND c.kind = 'multiplier'
                         AND c.state IN ('scheduled', 'running'))))
        FROM members m
        JOIN tiers t ON t.tier_id = m.tier_id
        LEFT JOIN accounts a ON a.member_id = m.member_id
        WHERE m.member_id = p_member
        GROUP BY m.member_id, t.code, t.name, t.earn_rate_override_bp
    );
END
$$;
