-- Seeds a benchmark database for loadtests/sql-ceiling.sh: :members members (psql variable, e.g. -v members=100000)
-- in tier base (silver and gold above, with thresholds a 20-second run does not reach), each with its six accounts,
-- one earlier purchase (an available lot of 1,000 points and some tier spend) so that redemptions have lots to
-- consume. Set-based, and ledger-consistent: every entry sums to zero, balances equal postings, lots equal balances.
\set ON_ERROR_STOP 1
INSERT INTO tiers (code, name, rank, qualification_spend_minor, qualification_window_days)
VALUES ('silver', 'Silver', 1, 50000000, 365), ('gold', 'Gold', 2, 200000000, 180);

ALTER TABLE members DISABLE TRIGGER members_create_accounts;
INSERT INTO members (card_number, phone, tier_id, tier_spend_anchor, tier_spend_bound_minor)
SELECT 'CARD-' || lpad(g::text, 8, '0'), '+4470' || lpad(g::text, 8, '0'), 1, '-infinity', 20000 + g % 50000
FROM generate_series(1, :members) g;
ALTER TABLE members ENABLE TRIGGER members_create_accounts;
INSERT INTO accounts (member_id, bucket, unit, balance)
SELECT m.member_id, b, u, CASE WHEN b = 'available' AND u = 'points' THEN 1000 ELSE 0 END
FROM members m
CROSS JOIN unnest(ARRAY['available', 'pending', 'held']) AS b
CROSS JOIN unnest(ARRAY['points', 'cashback_minor']) AS u;

INSERT INTO journal_entries (kind, member_id, unit, amount, actor, rules_version, explanation, occurred_at, spend_minor)
SELECT 'accrual', m.member_id, 'points', 1000, 'seed', 'v42',
       '{"r":"base","bp":100,"t":"base","l":[["1",1,20000,1000]],"rd":"floor"}'::jsonb,
       now() - interval '60 days', m.tier_spend_bound_minor
FROM members m;
INSERT INTO lots (member_id, entry_id, unit, original_amount, remaining_amount, state, available_at, expires_at)
SELECT member_id, entry_id, 'points', 1000, 1000, 'available', now() - interval '30 days', now() + interval '300 days'
FROM journal_entries WHERE actor = 'seed';
INSERT INTO postings (entry_id, account_id, amount)
SELECT e.entry_id, a.account_id, 1000
FROM journal_entries e JOIN accounts a ON a.member_id = e.member_id AND a.bucket = 'available' AND a.unit = 'points'
WHERE e.actor = 'seed';
INSERT INTO postings (entry_id, account_id, amount)
SELECT e.entry_id, (SELECT account_id FROM accounts WHERE member_id IS NULL AND campaign_id IS NULL AND bucket = 'issued' AND unit = 'points'), -1000
FROM journal_entries e WHERE e.actor = 'seed';
VACUUM ANALYZE;
