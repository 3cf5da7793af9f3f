-- Birthday and welcome bonuses, paid by the campaign runner on its own schedule (no trigger by a marketer):
-- a birthday campaign pays each active member (of its segment, if it has one) on their birthday, once per year;
-- a welcome campaign pays each active member once whose first purchase falls inside its window. Both reuse the
-- bonus machinery of 0008: one campaign_bonus entry with its own lot and expiry per member, the budget cap, and
-- campaign_awards as the record that nobody is paid twice, now per occasion ('once' for a blast,
-- 'birthday:2026', 'welcome'). Batches answer who was paid with their new ledger versions, so the server can
-- mark their cached balances as old.

ALTER TABLE campaign_awards ADD COLUMN occasion text NOT NULL DEFAULT 'once' CHECK (length(occasion) BETWEEN 1 AND 32);
ALTER TABLE campaign_awards DROP CONSTRAINT campaign_awards_pkey;
ALTER TABLE campaign_awards ADD PRIMARY KEY (campaign_id, member_id, occasion);

-- Birthday campaigns: the last day whose birthdays are all paid (today is never marked: members who enrol today
-- with a birthday today are paid on the next pass).
ALTER TABLE campaigns ADD COLUMN paid_through date;

-- Birthdays by month and day, so a day's pass reads about 1/365 of the members, not all of them.
CREATE INDEX members_birthday_idx ON members ((extract(month FROM birth_date)), (extract(day FROM birth_date)))
    WHERE birth_date IS NOT NULL;

-- Pays each of p_members (ascending ids) the campaign's bonus for p_occasion, skipping anyone already paid for
-- it; returns who was paid. The caller holds the campaign row lock and has cut p_members to what the budget
-- allows. Members are locked in id order (the order batched commits use, so the two never deadlock) and their
-- ledger version moves, so a cached balance is known to be old. Set-based: a handful of statements per batch.
CREATE FUNCTION campaign_pay(p_campaign campaigns, p_members bigint[], p_occasion text, p_actor text, p_now timestamptz)
RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    v_issued bigint;
    v_expires timestamptz := p_now + make_interval(days => coalesce(p_campaign.bonus_expires_days, 365));
    v_paid bigint[];
BEGIN
    IF p_members IS NULL OR cardinality(p_members) = 0 THEN
        RETURN '{}';
    END IF;
    PERFORM 1 FROM members WHERE member_id = ANY(p_members) ORDER BY member_id FOR UPDATE;
    UPDATE members SET ledger_version = ledger_version + 1 WHERE member_id = ANY(p_members);
    SELECT account_id INTO STRICT v_issued FROM accounts
    WHERE member_id IS NULL AND campaign_id IS NULL AND bucket = 'issued' AND unit = 'points';
    WITH entries AS (
        INSERT INTO journal_entries (kind, member_id, unit, amount, actor, reason, explanation, occurred_at)
        SELECT 'campaign_bonus', u.mid, 'points', p_campaign.bonus_points, p_actor, 'campaign ' || p_campaign.name,
               jsonb_build_object('campaign_id', p_campaign.campaign_id, 'campaign', p_campaign.name,
                                  'kind', p_campaign.kind, 'occasion', p_occasion),
               p_now
        FROM unnest(p_members) AS u(mid)
        WHERE NOT EXISTS (SELECT 1 FROM campaign_awards a
                          WHERE a.campaign_id = p_campaign.campaign_id AND a.member_id = u.mid AND a.occasion = p_occasion)
        RETURNING entry_id, member_id
    ), new_lots AS (
        INSERT INTO lots (member_id, entry_id, unit, original_amount, remaining_amount, state, available_at, expires_at)
        SELECT member_id, entry_id, 'points', p_campaign.bonus_points, p_campaign.bonus_points, 'available', p_now, v_expires
        FROM entries
    ), member_postings AS (
        INSERT INTO postings (entry_id, account_id, amount)
        SELECT e.entry_id, a.account_id, p_campaign.bonus_points
        FROM entries e JOIN accounts a ON a.member_id = e.member_id AND a.bucket = 'available' AND a.unit = 'points'
    ), system_postings AS (
        INSERT INTO postings (entry_id, account_id, amount)
        SELECT entry_id, v_issued, -p_campaign.bonus_points FROM entries
    ), balances AS (
        UPDATE accounts a SET balance = a.balance + p_campaign.bonus_points, version = a.version + 1
        FROM entries e WHERE a.member_id = e.member_id AND a.bucket = 'available' AND a.unit = 'points'
    ), awards AS (
        INSERT INTO campaign_awards (campaign_id, member_id, entry_id, points, occasion)
        SELECT p_campaign.campaign_id, member_id, entry_id, p_campaign.bonus_points, p_occasion FROM entries
    )
    SELECT coalesce(array_agg(member_id ORDER BY member_id), '{}') INTO v_paid FROM entries;
    RETURN v_paid;
END $$;

-- The blast of 0008 through the same payment, answering also who was paid (the server refreshes their cached
-- balances).
CREATE OR REPLACE FUNCTION campaign_award_batch(p_campaign bigint, p_batch integer, p_actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_campaign campaigns%ROWTYPE;
    v_limit bigint;
    v_members bigint[];
    v_paid bigint[] := '{}';
    v_reason text;
BEGIN
    IF p_batch NOT BETWEEN 1 AND 5000 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object('batch', p_batch));
    END IF;
    v_campaign := campaign_lock_bonus(p_campaign);
    IF v_campaign.state <> 'running' THEN
        RETURN campaign_progress(p_campaign) || jsonb_build_object('paid', 0, 'done', true, 'paid_members', '[]'::jsonb);
    END IF;
    v_limit := campaign_budget_limit(v_campaign, p_batch);
    IF v_limit > 0 THEN
        SELECT array_agg(member_id ORDER BY member_id) INTO v_members FROM (
            SELECT sm.member_id FROM segment_members sm
            JOIN members m ON m.member_id = sm.member_id
            WHERE sm.segment_id = v_campaign.segment_id AND sm.member_id > v_campaign.run_cursor AND m.status = 'active'
            ORDER BY sm.member_id
            LIMIT v_limit) AS next_members;
        v_paid := campaign_pay(v_campaign, v_members, 'once', p_actor, now());
    END IF;
    IF v_campaign.budget_points IS NOT NULL
       AND v_campaign.awarded_points + (cardinality(v_paid) + 1) * v_campaign.bonus_points > v_campaign.budget_points THEN
        v_reason := 'budget';
    ELSIF v_members IS NULL OR cardinality(v_members) < v_limit THEN
        v_reason := 'everyone paid';
    END IF;
    PERFORM campaign_record_batch(v_campaign, cardinality(v_paid), coalesce(v_members[cardinality(v_members)], v_campaign.run_cursor), v_reason);
    RETURN campaign_progress(p_campaign)
        || jsonb_build_object('paid', cardinality(v_paid), 'done', v_reason IS NOT NULL, 'paid_members', campaign_paid_json(v_paid));
END $$;

-- [[member id, ledger version], ...] of the members a batch paid.
CREATE FUNCTION campaign_paid_json(p_members bigint[]) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_array(member_id, ledger_version) ORDER BY member_id), '[]'::jsonb)
    FROM members WHERE member_id = ANY(p_members)
$$;

-- How many members a batch may pay: the batch size, cut to what the budget still allows.
CREATE FUNCTION campaign_budget_limit(p_campaign campaigns, p_batch integer) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_campaign.budget_points IS NULL THEN
        RETURN p_batch;
    END IF;
    RETURN greatest(0, least(p_batch, (p_campaign.budget_points - p_campaign.awarded_points) / p_campaign.bonus_points));
END $$;

-- Adds a batch to the campaign's counters and moves its cursor; a reason finishes the run.
CREATE FUNCTION campaign_record_batch(p_campaign campaigns, p_paid integer, p_cursor bigint, p_reason text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE campaigns
    SET awarded_points = awarded_points + p_paid * bonus_points, awarded_members = awarded_members + p_paid,
        run_cursor = p_cursor, updated_at = now(),
        state = CASE WHEN p_reason IS NULL THEN state ELSE 'finished' END,
        run_finished_at = CASE WHEN p_reason IS NULL THEN NULL ELSE now() END,
        finish_reason = p_reason
    WHERE campaign_id = p_campaign.campaign_id;
END $$;

-- One pass of a birthday or welcome campaign at time p_now (a parameter so tests can be on any day): pays up to
-- p_batch members and answers the progress with `paid`, `paid_members`, and `more` (call again at once) or not
-- (nothing to do until the next scheduled pass). A scheduled campaign starts running when its window opens and
-- finishes when it closes or its budget is spent.
--   Birthday: days from the day after paid_through (at most 7 days back: a server that was down catches up a
--   week, not a year) up to today, within the window; a member born on 29 February is paid on 28 February in
--   other years. Dates are UTC.
--   Welcome: journal entries after run_cursor, in id order, settled for 60 s (a purchase committed later with a
--   lower id is still seen: the cursor never passes an entry younger than that); a purchase inside the window by
--   a member with no purchase before the window is a first purchase.
CREATE FUNCTION campaign_occasion_batch(p_campaign bigint, p_batch integer, p_actor text, p_now timestamptz DEFAULT now())
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_campaign campaigns%ROWTYPE;
    v_limit bigint;
    v_members bigint[];
    v_paid bigint[] := '{}';
    v_today date := (p_now AT TIME ZONE 'UTC')::date;
    v_last_day date;
    v_day date;
    v_occasion text;
    v_extra_day integer;
    v_cursor bigint;
    v_scanned integer := 0;
    v_more boolean := false;
    v_reason text;
    v_settled timestamptz := p_now - interval '60 seconds';
BEGIN
    IF p_batch NOT BETWEEN 1 AND 5000 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object('batch', p_batch));
    END IF;
    SELECT * INTO v_campaign FROM campaigns WHERE campaign_id = p_campaign FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM ledger_fail('LY019', 'unknown_campaign', jsonb_build_object('campaign_id', p_campaign));
    END IF;
    IF v_campaign.kind NOT IN ('birthday', 'welcome') THEN
        PERFORM ledger_fail('LY020', 'not_a_bonus_campaign', jsonb_build_object('campaign_id', p_campaign, 'kind', v_campaign.kind));
    END IF;
    IF v_campaign.state NOT IN ('scheduled', 'running') OR p_now < v_campaign.starts_at THEN
        RETURN campaign_progress(p_campaign) || jsonb_build_object('paid', 0, 'more', false, 'paid_members', '[]'::jsonb);
    END IF;
    IF v_campaign.state = 'scheduled' THEN
        -- Welcome: look only at entries recorded from the window's start on.
        IF v_campaign.kind = 'welcome' THEN
            SELECT coalesce(max(entry_id), 0) INTO v_campaign.run_cursor FROM (
                SELECT entry_id FROM journal_entries WHERE recorded_at < v_campaign.starts_at
                ORDER BY entry_id DESC LIMIT 1) AS before_start;
        END IF;
        UPDATE campaigns SET state = 'running', run_started_at = p_now, run_cursor = v_campaign.run_cursor, updated_at = now()
        WHERE campaign_id = p_campaign;
    END IF;
    v_cursor := v_campaign.run_cursor;
    v_limit := campaign_budget_limit(v_campaign, p_batch);

    IF v_limit > 0 AND v_campaign.kind = 'birthday' THEN
        v_last_day := least(v_today, ((v_campaign.ends_at - interval '1 microsecond') AT TIME ZONE 'UTC')::date);
        v_day := greatest(coalesce(v_campaign.paid_through + 1, (v_campaign.starts_at AT TIME ZONE 'UTC')::date), v_today - 7);
        IF v_day <= v_last_day THEN
            v_occasion := 'birthday:' || extract(year FROM v_day)::int;
            -- 28 February of a year without a 29th also pays those born on the 29th.
            v_extra_day := CASE WHEN extract(month FROM v_day) = 2 AND extract(day FROM v_day) = 28
                                     AND extract(day FROM v_day + 1) = 1 THEN 29 ELSE extract(day FROM v_day)::int END;
            SELECT array_agg(member_id ORDER BY member_id) INTO v_members FROM (
                SELECT m.member_id FROM members m
                WHERE m.birth_date IS NOT NULL
                  AND extract(month FROM m.birth_date) = extract(month FROM v_day)
                  AND extract(day FROM m.birth_date) IN (extract(day FROM v_day), v_extra_day)
                  AND m.status = 'active'
                  AND (v_campaign.segment_id IS NULL OR EXISTS (
                        SELECT 1 FROM segment_members sm WHERE sm.segment_id = v_campaign.segment_id AND sm.member_id = m.member_id))
                  AND NOT EXISTS (SELECT 1 FROM campaign_awards a
                                  WHERE a.campaign_id = p_campaign AND a.member_id = m.member_id AND a.occasion = v_occasion)
                ORDER BY m.member_id LIMIT v_limit) AS due;
            v_paid := campaign_pay(v_campaign, v_members, v_occasion, p_actor, p_now);
            IF coalesce(cardinality(v_members), 0) < v_limit THEN
                -- The day is done; today stays open for members enrolled later today.
                IF v_day < v_today THEN
                    UPDATE campaigns SET paid_through = v_day WHERE campaign_id = p_campaign;
                    v_more := true;
                END IF;
            ELSE
                v_more := true;
            END IF;
        END IF;
        IF NOT v_more AND v_day > v_last_day AND p_now >= v_campaign.ends_at THEN
            v_reason := 'window ended';
        END IF;
    ELSIF v_limit > 0 THEN
        -- Welcome. `scanned` stops before the first entry not settled yet, so the cursor never passes it.
        WITH scanned AS (
            SELECT entry_id, member_id, kind, spend_minor, occurred_at, recorded_at
            FROM journal_entries WHERE entry_id > v_campaign.run_cursor ORDER BY entry_id LIMIT v_limit
        ), settled AS (
            SELECT * FROM scanned
            WHERE entry_id < coalesce((SELECT min(entry_id) FROM scanned WHERE recorded_at >= v_settled), 9223372036854775807)
        )
        SELECT (SELECT count(*) FROM settled), coalesce((SELECT max(entry_id) FROM settled), v_campaign.run_cursor),
               (SELECT array_agg(DISTINCT s.member_id ORDER BY s.member_id) FROM settled s
                JOIN members m ON m.member_id = s.member_id AND m.status = 'active'
                WHERE s.kind = 'accrual' AND s.spend_minor > 0
                  AND s.occurred_at >= v_campaign.starts_at AND s.occurred_at < v_campaign.ends_at
                  AND (v_campaign.segment_id IS NULL OR EXISTS (
                        SELECT 1 FROM segment_members sm WHERE sm.segment_id = v_campaign.segment_id AND sm.member_id = s.member_id))
                  AND NOT EXISTS (SELECT 1 FROM journal_entries p
                                  WHERE p.member_id = s.member_id AND p.spend_minor > 0 AND p.kind = 'accrual'
                                    AND p.occurred_at < v_campaign.starts_at))
        INTO v_scanned, v_cursor, v_members;
        v_paid := campaign_pay(v_campaign, v_members, 'welcome', p_actor, p_now);
        v_more := v_scanned = v_limit;
        IF NOT v_more AND v_settled >= v_campaign.ends_at THEN
            v_reason := 'window ended';
        END IF;
    END IF;
    IF v_campaign.budget_points IS NOT NULL
       AND v_campaign.awarded_points + (cardinality(v_paid) + 1) * v_campaign.bonus_points > v_campaign.budget_points THEN
        v_reason := 'budget';
        v_more := false;
    END IF;
    PERFORM campaign_record_batch(v_campaign, cardinality(v_paid), v_cursor, v_reason);
    RETURN campaign_progress(p_campaign)
        || jsonb_build_object('paid', cardinality(v_paid), 'more', v_more AND v_reason IS NULL, 'paid_members', campaign_paid_json(v_paid));
END $$;
