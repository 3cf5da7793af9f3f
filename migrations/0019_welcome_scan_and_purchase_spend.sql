-- The welcome scan no longer skips a purchase whose transaction stayed open for long. It walked journal entries
-- in id order and moved its cursor past every entry recorded more than 60 s ago; an id is taken at insert, but the
-- entry is seen only at commit, so a purchase committed more than 60 s after its insert (recorded_at is the start
-- of its transaction) fell behind the cursor unseen and was never paid.
--
-- The scan now orders purchases by the id of the transaction that wrote them, and reads only entries of
-- transactions older than its snapshot's xmin: every such transaction has ended, so its entries are all visible
-- (or rolled back for good). A purchase not yet committed belongs to a transaction at or after xmin, so the cursor
-- (xact_id, entry_id) cannot pass it, however long it stays open; it is read by the first pass after it commits.
-- The price: a payment waits for the oldest writing transaction of the PostgreSQL server (xmin is the whole
-- server's, any database; read-only transactions hold nothing back).
--
-- journal_entries.xact_id is the writing transaction's id. Entries written before this migration read 0 (a
-- constant default, so the table is not rewritten) and were all committed when it ran (ALTER TABLE waits for
-- them). A campaign running at that moment keeps its entry-id cursor, now (0, run_cursor): it reads the rest of
-- the old entries, then the new ones.
ALTER TABLE journal_entries ADD COLUMN xact_id xid8 NOT NULL DEFAULT '0';
ALTER TABLE journal_entries ALTER COLUMN xact_id SET DEFAULT pg_current_xact_id();
-- Purchases only: the welcome scan reads nothing else.
CREATE INDEX journal_entries_purchase_xact_idx ON journal_entries (xact_id, entry_id)
    WHERE kind = 'accrual' AND spend_minor > 0;

-- The welcome cursor's transaction part (run_cursor is its entry part), and, once the window has ended, the first
-- transaction id not yet taken then (pg_snapshot_xmax): the campaign finishes when every transaction below it has
-- ended and been read.
ALTER TABLE campaigns
    ADD COLUMN run_xact_id xid8 NOT NULL DEFAULT '0',
    ADD COLUMN close_xact_id xid8;

-- One pass of a birthday or welcome campaign at time p_now (a parameter so tests can be on any day): pays up to
-- p_batch members and answers the progress with `paid`, `paid_members`, and `more` (call again at once) or not
-- (nothing to do until the next scheduled pass). A scheduled campaign starts running when its window opens and
-- finishes when it closes or its budget is spent.
--   Birthday: days from the day after paid_through (at most 7 days back: a server that was down catches up a
--   week, not a year) up to today, within the window; a member born on 29 February is paid on 28 February in
--   other years. Dates are UTC.
--   Welcome: purchases after the cursor (run_xact_id, run_cursor) in (writing transaction, entry id) order, of
--   transactions that have ended (below the snapshot's xmin), so a purchase committed late is still read (see
--   the top of this file); a purchase inside the window by a member with no purchase before the window is a first
--   purchase. The campaign finishes once the window has ended and every transaction that had an id then has
--   ended and been read.
CREATE OR REPLACE FUNCTION campaign_occasion_batch(p_campaign bigint, p_batch integer, p_actor text, p_now timestamptz DEFAULT now())
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
    v_before bigint;
    v_xact xid8;
    v_xmin xid8;
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
        -- Welcome: start at the oldest transaction that wrote a purchase after the last entry recorded before the
        -- window opened, or at the oldest transaction still running, whichever is older. Entries before that
        -- start are older than the window (the scan checks each purchase's time anyway).
        IF v_campaign.kind = 'welcome' THEN
            SELECT coalesce(max(entry_id), 0) INTO v_before FROM (
                SELECT entry_id FROM journal_entries WHERE recorded_at < v_campaign.starts_at
                ORDER BY entry_id DESC LIMIT 1) AS before_start;
            v_xmin := pg_snapshot_xmin(pg_current_snapshot());
            SELECT least(v_xmin, min(xact_id)) INTO v_xact FROM journal_entries
            WHERE entry_id > v_before AND kind = 'accrual' AND spend_minor > 0;
            v_campaign.run_xact_id := coalesce(v_xact, v_xmin);
            -- Entries from before 0019 (transaction 0) are in entry id order: start after v_before among them.
            v_campaign.run_cursor := CASE WHEN v_campaign.run_xact_id = '0'::xid8 THEN v_before ELSE 0 END;
        END IF;
        UPDATE campaigns SET state = 'running', run_started_at = p_now, run_cursor = v_campaign.run_cursor,
                             run_xact_id = v_campaign.run_xact_id, updated_at = now()
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
        -- Welcome: purchases of ended transactions after the cursor, in cursor order.
        v_xmin := pg_snapshot_xmin(pg_current_snapshot());
        v_xact := v_campaign.run_xact_id;
        WITH scanned AS (
            SELECT entry_id, xact_id, member_id, occurred_at
            FROM journal_entries
            WHERE kind = 'accrual' AND spend_minor > 0
              AND (xact_id, entry_id) > (v_campaign.run_xact_id, v_campaign.run_cursor) AND xact_id < v_xmin
            ORDER BY xact_id, entry_id
            LIMIT v_limit
        ), last_read AS (
            SELECT xact_id, entry_id FROM scanned ORDER BY xact_id DESC, entry_id DESC LIMIT 1
        )
        SELECT (SELECT count(*) FROM scanned),
               coalesce((SELECT xact_id FROM last_read), v_campaign.run_xact_id),
               coalesce((SELECT entry_id FROM last_read), v_campaign.run_cursor),
               (SELECT array_agg(DISTINCT s.member_id ORDER BY s.member_id) FROM scanned s
                JOIN members m ON m.member_id = s.member_id AND m.status = 'active'
                WHERE s.occurred_at >= v_campaign.starts_at AND s.occurred_at < v_campaign.ends_at
                  AND (v_campaign.segment_id IS NULL OR EXISTS (
                        SELECT 1 FROM segment_members sm WHERE sm.segment_id = v_campaign.segment_id AND sm.member_id = s.member_id))
                  AND NOT EXISTS (SELECT 1 FROM journal_entries p
                                  WHERE p.member_id = s.member_id AND p.spend_minor > 0 AND p.kind = 'accrual'
                                    AND p.occurred_at < v_campaign.starts_at))
        INTO v_scanned, v_xact, v_cursor, v_members;
        v_paid := campaign_pay(v_campaign, v_members, 'welcome', p_actor, p_now);
        v_more := v_scanned = v_limit;
        UPDATE campaigns SET run_xact_id = v_xact WHERE campaign_id = p_campaign;
        IF p_now >= v_campaign.ends_at AND v_campaign.close_xact_id IS NULL THEN
            -- Transactions from here on started after the window ended.
            UPDATE campaigns SET close_xact_id = pg_snapshot_xmax(pg_current_snapshot()) WHERE campaign_id = p_campaign
            RETURNING close_xact_id INTO v_campaign.close_xact_id;
        END IF;
        IF NOT v_more AND v_campaign.close_xact_id IS NOT NULL AND v_xmin >= v_campaign.close_xact_id THEN
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
