-- Demo data for `scripts/run.sh --demo`: the tier ladder rules/program.yaml names (base, silver, gold) and a few
-- members, member 42 with card 4000123412341234 as in the README's examples. Safe to run again: it adds only
-- what is missing. Not for production databases.
BEGIN;

INSERT INTO tiers (code, name, rank, qualification_spend_minor, qualification_window_days)
VALUES ('silver', 'Silver', 10, 50000, 365), ('gold', 'Gold', 20, 150000, 365)
ON CONFLICT (code) DO NOTHING;

-- Member ids come from an identity column: on a database with no members yet, start it at 42 so the README's
-- `--member 42` is the first demo member.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM members) THEN
        ALTER TABLE members ALTER COLUMN member_id RESTART WITH 42;
    END IF;
END $$;

INSERT INTO members (card_number, phone, email, given_name, family_name, birth_date, tier_id, tags, consents)
SELECT d.card_number, d.phone, d.email, d.given_name, d.family_name, d.birth_date, t.tier_id, d.tags, d.consents
FROM (VALUES
    ('4000123412341234', '+4915112345678', 'ada@example.com', 'Ada', 'Lovelace', DATE '1990-12-10', 'base',
     ARRAY['newsletter'], '{"email": true}'::jsonb, 1),
    ('4000123412341242', '+4915112345679', 'grace@example.com', 'Grace', 'Hopper', DATE '1985-12-09', 'silver',
     ARRAY[]::text[], '{"email": true, "sms": true}'::jsonb, 2),
    ('4000123412341259', '+4915112345680', 'alan@example.com', 'Alan', 'Turing', DATE '1982-06-23', 'gold',
     ARRAY['vip'], '{}'::jsonb, 3)
) AS d (card_number, phone, email, given_name, family_name, birth_date, tier_code, tags, consents, position)
JOIN tiers t ON t.code = d.tier_code
WHERE NOT EXISTS (SELECT 1 FROM members m WHERE m.card_number = d.card_number)
ORDER BY d.position;

COMMIT;

SELECT member_id, card_number, given_name, (SELECT code FROM tiers t WHERE t.tier_id = m.tier_id) AS tier
FROM members m WHERE card_number LIKE '40001234123412%' ORDER BY member_id;
