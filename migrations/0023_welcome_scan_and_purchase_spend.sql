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
            -- Entries from before 0023 (transaction 0) are in entry id order: start after v_before among them.
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

-- Spend for tier qualification and first purchases, from every paid purchase and every return. A purchase that
-- earned nothing (every line in an excluded category, say) wrote no accrual entry, and the spend lives on the
-- accrual: it counted neither toward tier qualification nor as a welcome campaign's first purchase, and a refund
-- lowered spend only when it reversed some award or redeemed points. Now:
--   * a paid purchase always writes its accrual entry; one that earns nothing writes it with amount 0 and no
--     postings or lot (so balances, lots and the audit are as before), with its spend and explanation;
--   * every purchase's spend goes into the member's tier bound, and a purchase that earns nothing can upgrade;
--   * a refund that reverses nothing still writes its negative spend, on a reversal of 0 of the purchase's accrual.
-- checkout_commit_items, checkout_commit_fast and checkout_refund_apply are 0013's with these changes.

-- The items p_positions of a batch, one at a time (checkout_commit_batch's fallback: items whose member or key
-- occurs twice in the batch, and every item when the set-based pass failed). Items in member order, each in its
-- own subtransaction: a failing item rolls back alone and comes back as its error. One result row per position.
CREATE OR REPLACE FUNCTION checkout_commit_items(
    p_scope text[], p_key text[], p_hash bytea[], p_terminal text[], p_txn text[], p_member bigint[],
    p_tier_code text[], p_unit text[], p_award bigint[], p_available_at timestamptz[], p_expires_at timestamptz[],
    p_occurred_at timestamptz[], p_rules_version text[], p_explanation jsonb[], p_spend_minor bigint[],
    p_lines jsonb[], p_paid_total_minor bigint[], p_hold bigint[], p_redeem bigint[], p_positions integer[]
) RETURNS SETOF checkout_result LANGUAGE plpgsql AS $$
DECLARE
    v_out checkout_result;
    v_i integer;
    v_member bigint;
    v_award bigint;
    v_redeem bigint;
    v_spend bigint;
    v_paid bigint;
    v_hold_id bigint;
    v_unit text;
    v_terminal text;
    v_txn text;
    v_occurred timestamptz;
    v_stored_hash bytea;
    v_stored jsonb;
    v_version bigint;
    v_status text;
    v_tier_id bigint;
    v_tier_code text;
    v_tier_name text;
    v_tier_rank integer;
    v_card text;
    v_phone text;
    v_anchor timestamptz;
    v_bound bigint;
    v_hold holds%ROWTYPE;
    v_redemption bigint;
    v_release bigint;
    v_accrual bigint;
    v_lot_state text;
    v_pe bigint[];
    v_pb text[];
    v_pu text[];
    v_pa bigint[];
    v_bal bigint[];
    v_tier_change jsonb;
    v_best tiers%ROWTYPE;
    v_window_max integer;
    v_window_spend bigint;
    v_reason text;
    v_response jsonb;
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    FOR v_i IN SELECT i FROM unnest(p_positions) AS i ORDER BY p_member[i], i LOOP
        v_member := p_member[v_i];
        v_terminal := p_terminal[v_i];
        v_txn := p_txn[v_i];
        -- A stored key: the replay or the conflict, without writing anything.
        IF p_key[v_i] IS NOT NULL THEN
            SELECT request_hash, response INTO v_stored_hash, v_stored
            FROM idempotency_keys WHERE scope = p_scope[v_i] AND key = p_key[v_i];
            IF FOUND THEN
                v_out := checkout_commit_replay(v_i, p_scope[v_i], p_key[v_i], p_hash[v_i], v_stored_hash, v_stored,
                                                     v_terminal, v_txn, v_member);
                RETURN NEXT v_out;
                CONTINUE;
            END IF;
        END IF;
        BEGIN
            v_award := coalesce(p_award[v_i], 0);
            v_redeem := coalesce(p_redeem[v_i], 0);
            v_spend := coalesce(p_spend_minor[v_i], 0);
            v_paid := coalesce(p_paid_total_minor[v_i], 0);
            v_unit := p_unit[v_i];
            v_hold_id := p_hold[v_i];
            v_occurred := coalesce(p_occurred_at[v_i], now());
            IF v_award < 0 OR v_redeem < 0 OR v_spend < 0 OR v_paid < 0 THEN
                PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object(
                    'award', v_award, 'redeem', v_redeem, 'spend_minor', v_spend));
            END IF;

            -- The member: locked, its ledger version moved and the purchase's spend added to the tier bound, in
            -- one update (every paid purchase counts, whether it earned anything or not).
            UPDATE members m
            SET ledger_version = m.ledger_version + 1,
                tier_spend_bound_minor = m.tier_spend_bound_minor + v_spend
            FROM tiers t
            WHERE m.member_id = v_member AND t.tier_id = m.tier_id
            RETURNING m.ledger_version, m.status, m.tier_id, t.code, t.name, t.rank, m.card_number, m.phone,
                      m.tier_spend_anchor, m.tier_spend_bound_minor
            INTO v_version, v_status, v_tier_id, v_tier_code, v_tier_name, v_tier_rank, v_card, v_phone,
                 v_anchor, v_bound;
            IF NOT FOUND THEN
                PERFORM ledger_fail('LY002', 'unknown_member', jsonb_build_object('member_id', v_member));
            END IF;
            IF v_status <> 'active' THEN
                PERFORM ledger_fail('LY003', 'member_not_active', jsonb_build_object('member_id', v_member, 'status', v_status));
            END IF;
            IF p_tier_code[v_i] IS NOT NULL AND v_tier_code <> p_tier_code[v_i] THEN
                PERFORM ledger_fail('LY014', 'tier_changed', jsonb_build_object(
                    'member_id', v_member, 'priced_at', p_tier_code[v_i], 'now', v_tier_code));
            END IF;

            -- The hold: this member's, taken by this terminal under this transaction id, still active, enough.
            -- Every change of a hold happens under its member's lock, so the plain read is stable.
            v_hold := NULL;
            IF v_hold_id IS NOT NULL THEN
                SELECT * INTO v_hold FROM holds WHERE hold_id = v_hold_id;
                IF NOT FOUND THEN
                    PERFORM ledger_fail('LY004', 'unknown_hold', jsonb_build_object('hold_id', v_hold_id));
                END IF;
                -- Holds taken before 0011 carry no terminal: bound by member only until they expire.
                IF v_hold.member_id <> v_member OR v_hold.unit <> 'points'
                   OR (v_hold.terminal_id IS NOT NULL
                       AND (v_hold.terminal_id <> v_terminal OR v_hold.pos_transaction_id IS DISTINCT FROM v_txn)) THEN
                    PERFORM ledger_fail('LY013', 'hold_mismatch', jsonb_build_object('hold_id', v_hold_id));
                END IF;
                IF v_hold.state <> 'active' THEN
                    PERFORM ledger_fail('LY005', 'hold_not_active', jsonb_build_object('hold_id', v_hold_id, 'state', v_hold.state));
                END IF;
                IF v_redeem > v_hold.amount THEN
                    PERFORM ledger_fail('LY006', 'hold_exceeded', jsonb_build_object(
                        'hold_id', v_hold_id, 'requested', v_redeem, 'held', v_hold.amount));
                END IF;
            END IF;

            -- The entries: redemption (or the release of an unused hold) first, then the accrual; one insert. A
            -- paid purchase that earns nothing still gets its accrual entry (amount 0, no postings, no lot): it
            -- carries the spend and the explanation.
            v_redemption := NULL;
            v_release := NULL;
            v_accrual := NULL;
            IF v_redeem > 0 OR v_hold_id IS NOT NULL OR v_award > 0 OR v_spend > 0 THEN
                WITH e AS (
                    INSERT INTO journal_entries (kind, member_id, unit, amount, actor, rules_version, explanation,
                                                 occurred_at, hold_id, spend_minor)
                    SELECT v.kind, v_member, v.unit, v.amount, v_terminal, v.rules_version, v.explanation, v.occurred_at,
                           v.hold_id, v.spend
                    FROM (VALUES
                        (1, CASE WHEN v_redeem > 0 THEN 'redemption' WHEN v_hold_id IS NOT NULL THEN 'release' END,
                         'points', CASE WHEN v_redeem > 0 THEN v_redeem ELSE v_hold.amount END, NULL::text,
                         CASE WHEN v_redeem > 0 THEN jsonb_build_object('pos_transaction_id', v_txn) ELSE '{}'::jsonb END,
                         CASE WHEN v_redeem > 0 THEN v_occurred ELSE now() END, v_hold_id, 0::bigint),
                        (2, CASE WHEN v_award > 0 OR v_spend > 0 THEN 'accrual' END, v_unit, v_award, p_rules_version[v_i],
                         coalesce(p_explanation[v_i], '{}'::jsonb), v_occurred, NULL::bigint, v_spend)
                    ) AS v(ord, kind, unit, amount, rules_version, explanation, occurred_at, hold_id, spend)
                    WHERE v.kind IS NOT NULL
                    ORDER BY v.ord
                    RETURNING kind, entry_id
                )
                SELECT max(entry_id) FILTER (WHERE kind = 'redemption'), max(entry_id) FILTER (WHERE kind = 'release'),
                       max(entry_id) FILTER (WHERE kind = 'accrual')
                INTO v_redemption, v_release, v_accrual
                FROM e;
            END IF;

            -- Postings and balances, one statement.
            v_lot_state := CASE WHEN p_available_at[v_i] > now() THEN 'pending' ELSE 'available' END;
            IF v_redemption IS NOT NULL AND v_hold_id IS NOT NULL AND v_hold.amount > v_redeem THEN
                v_pe := ARRAY[v_redemption, v_redemption, v_redemption];
                v_pb := ARRAY['held', 'available', 'redeemed'];
                v_pu := ARRAY['points', 'points', 'points'];
                v_pa := ARRAY[-v_hold.amount, v_hold.amount - v_redeem, v_redeem];
            ELSIF v_redemption IS NOT NULL AND v_hold_id IS NOT NULL THEN
                v_pe := ARRAY[v_redemption, v_redemption];
                v_pb := ARRAY['held', 'redeemed'];
                v_pu := ARRAY['points', 'points'];
                v_pa := ARRAY[-v_hold.amount, v_redeem];
            ELSIF v_redemption IS NOT NULL THEN
                v_pe := ARRAY[v_redemption, v_redemption];
                v_pb := ARRAY['available', 'redeemed'];
                v_pu := ARRAY['points', 'points'];
                v_pa := ARRAY[-v_redeem, v_redeem];
            ELSIF v_release IS NOT NULL THEN
                v_pe := ARRAY[v_release, v_release];
                v_pb := ARRAY['held', 'available'];
                v_pu := ARRAY['points', 'points'];
                v_pa := ARRAY[-v_hold.amount, v_hold.amount];
            ELSE
                v_pe := '{}';
                v_pb := '{}';
                v_pu := '{}';
                v_pa := '{}';
            END IF;
            IF v_accrual IS NOT NULL AND v_award > 0 THEN
                v_pe := v_pe || ARRAY[v_accrual, v_accrual];
                v_pb := v_pb || ARRAY['issued', v_lot_state];
                v_pu := v_pu || ARRAY[v_unit, v_unit];
                v_pa := v_pa || ARRAY[-v_award, v_award];
            END IF;
            v_bal := checkout_post(v_member, v_pe, v_pb, v_pu, v_pa);
            -- After the redemption's balance check, as before (the accrual came after the redemption).
            IF v_award > 0 AND p_expires_at[v_i] IS NOT NULL AND p_expires_at[v_i] <= p_available_at[v_i] THEN
                PERFORM ledger_fail('LY012', 'invalid_dates', jsonb_build_object(
                    'available_at', p_available_at[v_i], 'expires_at', p_expires_at[v_i]));
            END IF;
            IF v_hold_id IS NOT NULL THEN
                UPDATE holds SET state = CASE WHEN v_redeem > 0 THEN 'committed' ELSE 'released' END
                WHERE hold_id = v_hold_id;
            END IF;
            -- The redemption consumes existing lots before the purchase's own lot exists.
            IF v_redemption IS NOT NULL THEN
                PERFORM checkout_consume_lots(v_redemption, v_member, 'points', v_redeem, 0);
            END IF;
            IF v_accrual IS NOT NULL AND v_award > 0 THEN
                INSERT INTO lots (member_id, entry_id, unit, original_amount, remaining_amount, state, available_at, expires_at)
                VALUES (v_member, v_accrual, v_unit, v_award, v_award, v_lot_state, p_available_at[v_i], p_expires_at[v_i]);
            END IF;

            -- The purchase that crosses a tier threshold upgrades the member, in this transaction. The exact spend
            -- query only runs when the bound says a higher tier may be reached (see the top of this file).
            v_tier_change := NULL;
            IF v_accrual IS NOT NULL AND v_spend > 0 AND EXISTS (
                SELECT 1 FROM tiers t
                WHERE t.rank > v_tier_rank
                  AND (v_anchor IS NULL OR v_anchor > now() - make_interval(days => t.qualification_window_days)
                       OR v_bound >= t.qualification_spend_minor)) THEN
                v_best := NULL;
                SELECT t.* INTO v_best FROM tiers t
                WHERE t.rank > v_tier_rank
                  AND member_spend_minor(v_member, t.qualification_window_days, now()) >= t.qualification_spend_minor
                ORDER BY t.rank DESC LIMIT 1;
                SELECT max(qualification_window_days) INTO v_window_max FROM tiers;
                SELECT coalesce(sum(spend_minor) FILTER (WHERE spend_minor > 0), 0) INTO v_bound
                FROM journal_entries
                WHERE member_id = v_member AND spend_minor <> 0
                  AND occurred_at > now() - make_interval(days => v_window_max);
                IF v_best.tier_id IS NULL THEN
                    UPDATE members SET tier_spend_anchor = now() - make_interval(days => v_window_max),
                                       tier_spend_bound_minor = v_bound
                    WHERE member_id = v_member;
                ELSE
                    v_window_spend := member_spend_minor(v_member, v_best.qualification_window_days, now());
                    v_reason := format('upgrade: spend %s over %s days reached %s', v_window_spend,
                                       v_best.qualification_window_days, v_best.qualification_spend_minor);
                    UPDATE members SET tier_id = v_best.tier_id, tier_changed_at = now(), updated_at = now(),
                                       tier_spend_anchor = now() - make_interval(days => v_window_max),
                                       tier_spend_bound_minor = v_bound
                    WHERE member_id = v_member;
                    INSERT INTO tier_changes (member_id, from_tier_id, to_tier_id, reason, spend_minor, actor)
                    VALUES (v_member, v_tier_id, v_best.tier_id, v_reason, v_window_spend, v_terminal);
                    v_tier_change := jsonb_build_object('from', v_tier_code, 'to', v_best.code, 'reason', v_reason);
                    v_tier_code := v_best.code;
                    v_tier_name := v_best.name;
                END IF;
            END IF;

            INSERT INTO pos_checkouts (terminal_id, pos_transaction_id, member_id, unit, accrual_entry_id,
                                       redemption_entry_id, awarded, redeemed, paid_total_minor, lines, rules_version,
                                       purchased_at)
            VALUES (v_terminal, v_txn, v_member, v_unit, v_accrual, v_redemption, v_award, v_redeem, v_paid,
                    p_lines[v_i], p_rules_version[v_i], v_occurred);
            v_response := jsonb_build_object(
                'accrual_entry_id', coalesce(v_accrual, 0), 'redemption_entry_id', coalesce(v_redemption, 0),
                'awarded', v_award, 'redeemed', v_redeem, 'unit', v_unit, 'rules_version', p_rules_version[v_i],
                'tier_change', v_tier_change,
                'points', jsonb_build_object('available', v_bal[1], 'pending', v_bal[2], 'held', v_bal[3]),
                'replayed', false);
            IF p_key[v_i] IS NOT NULL THEN
                INSERT INTO idempotency_keys (scope, key, request_hash, response)
                VALUES (p_scope[v_i], p_key[v_i], p_hash[v_i], checkout_commit_stored(v_response));
            END IF;
            v_out := ROW(v_i, NULL, NULL, NULL, v_response || jsonb_build_object('lines', p_lines[v_i]),
                              v_member, v_version, v_tier_code, v_tier_name, v_status, v_card, v_phone,
                              v_bal[1], v_bal[2], v_bal[3], v_bal[4], v_bal[5], v_bal[6])::checkout_result;
        EXCEPTION
            WHEN unique_violation THEN
                -- A concurrent request with the same key committed first (this one waited for it on the unique
                -- index): its stored answer, now visible, is this one's answer.
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
                SELECT request_hash, response INTO v_stored_hash, v_stored
                FROM idempotency_keys WHERE scope = p_scope[v_i] AND key = p_key[v_i];
                IF FOUND THEN
                    v_out := checkout_commit_replay(v_i, p_scope[v_i], p_key[v_i], p_hash[v_i], v_stored_hash,
                                                         v_stored, v_terminal, v_txn, v_member);
                ELSE
                    v_out := checkout_error(v_i, v_state, v_message, v_detail);
                END IF;
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
                v_out := checkout_error(v_i, v_state, v_message, v_detail);
        END;
        RETURN NEXT v_out;
    END LOOP;
END $$;

-- The set-based pass of checkout_commit_batch over items p_positions, whose members and keys are distinct: the
-- same semantics as checkout_commit_items, but a handful of statements for the whole batch instead of a handful
-- per item (each statement has a fixed cost: executor start, the table's CHECK constraints prepared again,
-- foreign-key triggers), and no subtransaction per item:
--   1. one UPDATE of the batch's members (lock in member order, ledger version, tier-spend bound);
--   2. one SELECT that checks every item (amounts, member, tier, hold, balance) with a snapshot taken after the
--      locks; an item that fails is answered with its error and writes nothing further;
--   3. one statement that writes everything of the passing items: entries, postings, member balances (answering
--      the new balances), hold states, lot consumptions, new lots, purchase records;
--   4. the exact tier check, only for members whose bound says a higher tier may be reached;
--   5. one INSERT of the keys with their final responses.
-- Anything unexpected (a key inserted meanwhile by a concurrent duplicate, a lost race on a balance, a deadlock)
-- raises, and the caller rolls this pass back and runs the items one at a time.
CREATE OR REPLACE FUNCTION checkout_commit_fast(
    p_scope text[], p_key text[], p_hash bytea[], p_terminal text[], p_txn text[], p_member bigint[],
    p_tier_code text[], p_unit text[], p_award bigint[], p_available_at timestamptz[], p_expires_at timestamptz[],
    p_occurred_at timestamptz[], p_rules_version text[], p_explanation jsonb[], p_spend_minor bigint[],
    p_lines jsonb[], p_paid_total_minor bigint[], p_hold bigint[], p_redeem bigint[], p_positions integer[],
    p_also_lock bigint[] DEFAULT '{}'
) RETURNS checkout_result[] LANGUAGE plpgsql AS $$
DECLARE
    v_items checkout_item[];
    v_members bigint[];
    v_written checkout_written[];
    v_updated integer;
    v_expected integer;
    v_short integer;
    v_item checkout_item;
    v_done checkout_written;
    v_changes jsonb := '{}'::jsonb;
    v_best tiers%ROWTYPE;
    v_window_max integer;
    v_window_spend bigint;
    v_bound bigint;
    v_reason text;
    v_results checkout_result[];
BEGIN
    SELECT array_agg(ROW(i, p_scope[i], p_key[i], p_hash[i], p_terminal[i], p_txn[i], p_member[i], p_tier_code[i],
                         p_unit[i], coalesce(p_award[i], 0), p_available_at[i], p_expires_at[i],
                         coalesce(p_occurred_at[i], now()), p_rules_version[i], coalesce(p_explanation[i], '{}'::jsonb),
                         coalesce(p_spend_minor[i], 0), p_lines[i], coalesce(p_paid_total_minor[i], 0), p_hold[i],
                         coalesce(p_redeem[i], 0), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                         NULL, NULL, NULL, NULL)::checkout_item ORDER BY p_member[i]),
           array_agg(p_member[i] ORDER BY p_member[i]) FILTER (WHERE p_member[i] IS NOT NULL)
    INTO v_items, v_members
    FROM unnest(p_positions) AS i;

    -- 1. The members: locked (the index scan over the sorted ids takes them in member order), version moved, each
    --    purchase's spend added to the tier bound (every paid purchase, whether it earned anything or not).
    --    p_also_lock (the members of the batch's items that go one at a time afterwards) are locked in the same
    --    pass, so that a batch takes all its members in one ascending order and two batches cannot deadlock.
    --    One table and the primary-key index only (sequential and bitmap scans are off for this function), so
    --    the rows are locked in ascending id order whatever the table's size or layout.
    WITH u AS (
        UPDATE members m
        SET ledger_version = m.ledger_version + 1,
            tier_spend_bound_minor = m.tier_spend_bound_minor
                + coalesce((SELECT sum(greatest(i.spend, 0)) FROM unnest(v_items) i
                            WHERE i.member = m.member_id), 0)
        WHERE m.member_id = ANY (v_members || coalesce(p_also_lock, '{}'))
        RETURNING m.member_id, m.ledger_version, m.status, m.tier_id, m.card_number, m.phone,
                  m.tier_spend_anchor, m.tier_spend_bound_minor
    ),
    -- 2. The checks, in the order of pos_commit (errors on the first failing one).
    c AS (
        SELECT i.*, u.member_id AS found, u.ledger_version AS u_version, u.status AS u_status, u.tier_id AS u_tier_id,
               t.code AS u_code, t.name AS u_name, t.rank AS u_rank, u.card_number AS u_card, u.phone AS u_phone,
               u.tier_spend_anchor AS u_anchor, u.tier_spend_bound_minor AS u_bound,
               h.member_id AS h_member, h.unit AS h_unit, h.state AS h_state, h.amount AS h_amount,
               h.terminal_id AS h_terminal, h.pos_transaction_id AS h_txn, h.hold_id AS h_id
        FROM unnest(v_items) i
        LEFT JOIN u ON u.member_id = i.member
        LEFT JOIN tiers t ON t.tier_id = u.tier_id
        LEFT JOIN holds h ON h.hold_id = i.hold
    )
    SELECT array_agg(ROW(c.pos, c.scope, c.key, c.hash, c.terminal, c.txn, c.member, c.priced_tier, c.unit, c.award,
                         c.available_at, c.expires_at, c.occurred_at, c.rules_version, c.explanation, c.spend, c.lines,
                         c.paid, c.hold, c.redeem, c.h_amount,
                         CASE WHEN c.available_at > now() THEN 'pending' ELSE 'available' END,
                         c.u_version, c.u_status, c.u_tier_id, c.u_code, c.u_name, c.u_rank, c.u_card, c.u_phone,
                         c.u_anchor, c.u_bound, NULL, NULL, NULL)::checkout_item ORDER BY c.member)
    INTO v_items
    FROM c;

    -- The checks that need the members locked (holds, balances) read in this statement's snapshot, taken after
    -- the locks; the member checks come first, so their order is pos_commit's.
    SELECT array_agg(ROW(i.pos, i.scope, i.key, i.hash, i.terminal, i.txn, i.member, i.priced_tier, i.unit, i.award,
                         i.available_at, i.expires_at, i.occurred_at, i.rules_version, i.explanation, i.spend, i.lines,
                         i.paid, i.hold, i.redeem, h.amount, i.lot_state, i.version, i.status, i.tier_id, i.tier_code,
                         i.tier_name, i.tier_rank, i.card, i.phone, i.anchor, i.bound, e.code,
                         CASE e.code WHEN 'LY011' THEN 'invalid_amount' WHEN 'LY002' THEN 'unknown_member'
                             WHEN 'LY003' THEN 'member_not_active' WHEN 'LY014' THEN 'tier_changed'
                             WHEN 'LY004' THEN 'unknown_hold' WHEN 'LY013' THEN 'hold_mismatch'
                             WHEN 'LY005' THEN 'hold_not_active' WHEN 'LY006' THEN 'hold_exceeded'
                             WHEN 'LY001' THEN 'insufficient_balance' WHEN 'LY012' THEN 'invalid_dates' END,
                         (CASE e.code
                             WHEN 'LY011' THEN jsonb_build_object('award', i.award, 'redeem', i.redeem, 'spend_minor', i.spend)
                             WHEN 'LY002' THEN jsonb_build_object('member_id', i.member)
                             WHEN 'LY003' THEN jsonb_build_object('member_id', i.member, 'status', i.status)
                             WHEN 'LY014' THEN jsonb_build_object('member_id', i.member, 'priced_at', i.priced_tier, 'now', i.tier_code)
                             WHEN 'LY004' THEN jsonb_build_object('hold_id', i.hold)
                             WHEN 'LY013' THEN jsonb_build_object('hold_id', i.hold)
                             WHEN 'LY005' THEN jsonb_build_object('hold_id', i.hold, 'state', h.state)
                             WHEN 'LY006' THEN jsonb_build_object('hold_id', i.hold, 'requested', i.redeem, 'held', h.amount)
                             WHEN 'LY001' THEN jsonb_build_object('member_id', i.member, 'bucket', 'available', 'unit', 'points',
                                                                  'requested', i.redeem, 'available', a.balance)
                             WHEN 'LY012' THEN jsonb_build_object('available_at', i.available_at, 'expires_at', i.expires_at)
                          END)::text)::checkout_item ORDER BY i.member)
    INTO v_items
    FROM unnest(v_items) i
    LEFT JOIN holds h ON h.hold_id = i.hold
    LEFT JOIN accounts a ON i.redeem > 0 AND i.hold IS NULL
                        AND a.member_id = i.member AND a.bucket = 'available' AND a.unit = 'points'
    CROSS JOIN LATERAL (SELECT CASE
        WHEN i.award < 0 OR i.redeem < 0 OR i.spend < 0 OR i.paid < 0 THEN 'LY011'
        WHEN i.version IS NULL THEN 'LY002'
        WHEN i.status <> 'active' THEN 'LY003'
        WHEN i.priced_tier IS NOT NULL AND i.tier_code <> i.priced_tier THEN 'LY014'
        WHEN i.hold IS NOT NULL AND h.hold_id IS NULL THEN 'LY004'
        WHEN i.hold IS NOT NULL AND (h.member_id <> i.member OR h.unit <> 'points'
                                     OR (h.terminal_id IS NOT NULL
                                         AND (h.terminal_id <> i.terminal OR h.pos_transaction_id IS DISTINCT FROM i.txn))) THEN 'LY013'
        WHEN i.hold IS NOT NULL AND h.state <> 'active' THEN 'LY005'
        WHEN i.hold IS NOT NULL AND i.redeem > h.amount THEN 'LY006'
        WHEN i.redeem > 0 AND i.hold IS NULL AND a.balance < i.redeem THEN 'LY001'
        WHEN i.award > 0 AND i.expires_at IS NOT NULL AND i.expires_at <= i.available_at THEN 'LY012'
        END AS code) e;

    -- 3. Everything the passing items write, in one statement.
    WITH w AS (
        SELECT * FROM unnest(v_items) WHERE error IS NULL
    ), ev AS (
        SELECT w.member, w.terminal, v.*
        FROM w CROSS JOIN LATERAL (VALUES
            (1, CASE WHEN w.redeem > 0 THEN 'redemption' WHEN w.hold IS NOT NULL THEN 'release' END, 'points',
             CASE WHEN w.redeem > 0 THEN w.redeem ELSE w.hold_amount END, NULL::text,
             CASE WHEN w.redeem > 0 THEN jsonb_build_object('pos_transaction_id', w.txn) ELSE '{}'::jsonb END,
             CASE WHEN w.redeem > 0 THEN w.occurred_at ELSE now() END, w.hold, 0::bigint),
            -- A paid purchase that earns nothing still gets its accrual (amount 0, no postings, no lot) for its spend.
            (2, CASE WHEN w.award > 0 OR w.spend > 0 THEN 'accrual' END, w.unit, w.award, w.rules_version, w.explanation,
             w.occurred_at, NULL::bigint, w.spend)
        ) AS v(ord, kind, unit, amount, rules_version, explanation, occurred_at, hold_id, spend)
        WHERE v.kind IS NOT NULL
    ), e AS (
        INSERT INTO journal_entries (kind, member_id, unit, amount, actor, rules_version, explanation, occurred_at,
                                     hold_id, spend_minor)
        SELECT kind, member, unit, amount, terminal, rules_version, explanation, occurred_at, hold_id, spend
        FROM ev ORDER BY member, ord
        RETURNING entry_id, member_id, kind
    ), x AS (
        SELECT w.*, r.entry_id AS red_entry, a.entry_id AS acc_entry
        FROM w
        LEFT JOIN e r ON r.member_id = w.member AND r.kind <> 'accrual'
        LEFT JOIN e a ON a.member_id = w.member AND a.kind = 'accrual'
    ), p AS (
        SELECT member, red_entry AS entry_id, 'held' AS bucket, 'points' AS unit, -hold_amount AS amount
        FROM x WHERE hold IS NOT NULL
        UNION ALL
        SELECT member, red_entry, 'available', 'points', CASE WHEN hold IS NOT NULL THEN hold_amount - redeem ELSE -redeem END
        FROM x WHERE red_entry IS NOT NULL AND (hold IS NULL OR hold_amount <> redeem)
        UNION ALL
        SELECT member, red_entry, 'redeemed', 'points', redeem FROM x WHERE redeem > 0
        UNION ALL
        SELECT member, acc_entry, 'issued', unit, -award FROM x WHERE acc_entry IS NOT NULL AND award > 0
        UNION ALL
        SELECT member, acc_entry, lot_state, unit, award FROM x WHERE acc_entry IS NOT NULL AND award > 0
    ), d AS (
        SELECT member, bucket, unit, sum(amount) AS delta, coalesce(sum(amount) FILTER (WHERE amount < 0), 0) AS need
        FROM p WHERE bucket IN ('available', 'pending', 'held')
        GROUP BY member, bucket, unit
    ), upd AS (
        UPDATE accounts a SET balance = a.balance + d.delta, version = a.version + 1
        FROM d
        WHERE a.member_id = d.member AND a.bucket = d.bucket AND a.unit = d.unit AND a.balance + d.need >= 0
        RETURNING a.account_id, a.member_id, a.bucket, a.unit, a.balance
    ), sys AS (
        SELECT account_id, bucket, unit FROM accounts
        WHERE member_id IS NULL AND campaign_id IS NULL AND bucket IN ('issued', 'redeemed')
    ), posted AS (
        INSERT INTO postings (entry_id, account_id, amount)
        SELECT p.entry_id, coalesce(u.account_id, s.account_id), p.amount
        FROM p
        LEFT JOIN upd u ON u.member_id = p.member AND u.bucket = p.bucket AND u.unit = p.unit
        LEFT JOIN sys s ON s.bucket = p.bucket AND s.unit = p.unit
        WHERE coalesce(u.account_id, s.account_id) IS NOT NULL
    ), held AS (
        UPDATE holds h SET state = CASE WHEN x.redeem > 0 THEN 'committed' ELSE 'released' END
        FROM x WHERE h.hold_id = x.hold
    ), open AS (
        -- Redemptions consume the lots there were before this statement (its new lots are not seen here).
        SELECT l.lot_id, l.member_id, l.remaining_amount, x.redeem, x.red_entry,
               sum(l.remaining_amount) OVER (PARTITION BY l.member_id ORDER BY l.expires_at ASC NULLS LAST, l.lot_id)
                   - l.remaining_amount AS before
        FROM x JOIN lots l ON l.member_id = x.member AND l.unit = 'points' AND l.state = 'available' AND l.remaining_amount > 0
        WHERE x.redeem > 0
    ), take AS (
        SELECT lot_id, member_id, red_entry, least(remaining_amount, redeem - before) AS amount,
               row_number() OVER (PARTITION BY member_id ORDER BY before) AS seq
        FROM open WHERE before < redeem
    ), consumed AS (
        UPDATE lots l SET remaining_amount = l.remaining_amount - t.amount FROM take t WHERE l.lot_id = t.lot_id
    ), consumptions AS (
        INSERT INTO lot_consumptions (entry_id, seq, lot_id, amount) SELECT red_entry, seq, lot_id, amount FROM take
    ), new_lots AS (
        INSERT INTO lots (member_id, entry_id, unit, original_amount, remaining_amount, state, available_at, expires_at)
        SELECT member, acc_entry, unit, award, award, lot_state, available_at, expires_at FROM x
        WHERE acc_entry IS NOT NULL AND award > 0
    ), purchases AS (
        INSERT INTO pos_checkouts (terminal_id, pos_transaction_id, member_id, unit, accrual_entry_id,
                                   redemption_entry_id, awarded, redeemed, paid_total_minor, lines, rules_version,
                                   purchased_at)
        SELECT terminal, txn, member, unit, acc_entry, CASE WHEN redeem > 0 THEN red_entry END, award, redeem, paid,
               lines, rules_version, occurred_at
        FROM x
    )
    SELECT array_agg(ROW(x.pos, CASE WHEN x.redeem > 0 THEN x.red_entry END, x.acc_entry, b.balances,
                         (SELECT coalesce(sum(t.amount), 0) FROM take t WHERE t.member_id = x.member))::checkout_written
                     ORDER BY x.member),
           (SELECT count(*) FROM upd), (SELECT count(*) FROM d),
           count(*) FILTER (WHERE x.redeem > 0 AND (SELECT coalesce(sum(t.amount), 0) FROM take t WHERE t.member_id = x.member) <> x.redeem)
    INTO v_written, v_updated, v_expected, v_short
    FROM x
    CROSS JOIN LATERAL (
        SELECT ARRAY[
            coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'points' AND a.bucket = 'available'), 0),
            coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'points' AND a.bucket = 'pending'), 0),
            coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'points' AND a.bucket = 'held'), 0),
            coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'available'), 0),
            coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'pending'), 0),
            coalesce(max(coalesce(u.balance, a.balance)) FILTER (WHERE a.unit = 'cashback_minor' AND a.bucket = 'held'), 0)]
            AS balances
        FROM accounts a LEFT JOIN upd u ON u.account_id = a.account_id
        WHERE a.member_id = x.member
    ) b;
    IF v_updated IS DISTINCT FROM v_expected OR v_short > 0 THEN
        -- A balance or the lots did not cover what the checks saw: let the items run one at a time.
        PERFORM ledger_fail('LY099', 'ledger_invariant', jsonb_build_object(
            'reason', 'set-based commit pass found a balance or lots short', 'updated', v_updated,
            'expected', v_expected, 'short', v_short));
    END IF;

    -- 4. Tier upgrades: the exact spend query only where the bound says a higher tier may be reached.
    FOR v_item IN
        SELECT i.* FROM unnest(v_items) i
        WHERE i.error IS NULL AND i.spend > 0
          AND EXISTS (SELECT 1 FROM tiers t
                      WHERE t.rank > i.tier_rank
                        AND (i.anchor IS NULL OR i.anchor > now() - make_interval(days => t.qualification_window_days)
                             OR i.bound >= t.qualification_spend_minor))
    LOOP
        v_best := NULL;
        SELECT t.* INTO v_best FROM tiers t
        WHERE t.rank > v_item.tier_rank
          AND member_spend_minor(v_item.member, t.qualification_window_days, now()) >= t.qualification_spend_minor
        ORDER BY t.rank DESC LIMIT 1;
        SELECT max(qualification_window_days) INTO v_window_max FROM tiers;
        SELECT coalesce(sum(spend_minor) FILTER (WHERE spend_minor > 0), 0) INTO v_bound
        FROM journal_entries
        WHERE member_id = v_item.member AND spend_minor <> 0 AND occurred_at > now() - make_interval(days => v_window_max);
        IF v_best.tier_id IS NULL THEN
            UPDATE members SET tier_spend_anchor = now() - make_interval(days => v_window_max), tier_spend_bound_minor = v_bound
            WHERE member_id = v_item.member;
        ELSE
            v_window_spend := member_spend_minor(v_item.member, v_best.qualification_window_days, now());
            v_reason := format('upgrade: spend %s over %s days reached %s', v_window_spend,
                               v_best.qualification_window_days, v_best.qualification_spend_minor);
            UPDATE members SET tier_id = v_best.tier_id, tier_changed_at = now(), updated_at = now(),
                               tier_spend_anchor = now() - make_interval(days => v_window_max),
                               tier_spend_bound_minor = v_bound
            WHERE member_id = v_item.member;
            INSERT INTO tier_changes (member_id, from_tier_id, to_tier_id, reason, spend_minor, actor)
            VALUES (v_item.member, v_item.tier_id, v_best.tier_id, v_reason, v_window_spend, v_item.terminal);
            v_changes := v_changes || jsonb_build_object(v_item.pos::text, jsonb_build_object(
                'change', jsonb_build_object('from', v_item.tier_code, 'to', v_best.code, 'reason', v_reason),
                'code', v_best.code, 'name', v_best.name));
        END IF;
    END LOOP;

    -- 5. The keys with their final responses (in the stored form of checkout_commit_stored), and the answers.
    WITH r AS (
        SELECT i.*, wr.balances,
               jsonb_build_object(
                   'accrual_entry_id', coalesce(wr.accrual_entry, 0), 'redemption_entry_id', coalesce(wr.redemption_entry, 0),
                   'awarded', i.award, 'redeemed', i.redeem, 'unit', i.unit, 'rules_version', i.rules_version,
                   'tier_change', v_changes -> i.pos::text -> 'change',
                   'points', jsonb_build_object('available', wr.balances[1], 'pending', wr.balances[2], 'held', wr.balances[3]),
                   'replayed', false) AS response
        FROM unnest(v_items) i JOIN unnest(v_written) wr ON wr.pos = i.pos
    ), k AS (
        INSERT INTO idempotency_keys (scope, key, request_hash, response)
        SELECT scope, key, hash, checkout_commit_stored(response) FROM r WHERE key IS NOT NULL
    )
    SELECT array_agg(ROW(r.pos, NULL, NULL, NULL, r.response || jsonb_build_object('lines', r.lines), r.member, r.version,
                         coalesce(v_changes -> r.pos::text ->> 'code', r.tier_code),
                         coalesce(v_changes -> r.pos::text ->> 'name', r.tier_name), r.status, r.card, r.phone,
                         r.balances[1], r.balances[2], r.balances[3], r.balances[4], r.balances[5], r.balances[6])::checkout_result)
    INTO v_results
    FROM r;
    RETURN coalesce(v_results, '{}') || coalesce((
        SELECT array_agg(checkout_error(i.pos, i.error, i.error_message, i.error_detail))
        FROM unnest(v_items) i WHERE i.error IS NOT NULL), '{}');
END $$;

-- CREATE OR REPLACE resets a function's settings: the set-based pass gets 0013's back (see there for why).
ALTER FUNCTION checkout_commit_fast(text[], text[], bytea[], text[], text[], bigint[], text[], text[], bigint[],
    timestamptz[], timestamptz[], timestamptz[], text[], jsonb[], bigint[], jsonb[], bigint[], bigint[], bigint[],
    integer[], bigint[])
    SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off;

-- A refund (or, p_void, the void of a cancel) of the purchase p_txn of terminal p_terminal, as pos_refund does,
-- without the key: member lock, checks, the reversals, the purchase record. Answers the result row whose response
-- is pos_refund's (award_reversed, points_restored, unit, refunded_minor, award_unrecovered, points, replayed).
CREATE OR REPLACE FUNCTION checkout_refund_apply(
    p_terminal text, p_txn text, p_member bigint, p_expected_version integer, p_returned jsonb,
    p_refunded_minor bigint, p_reverse bigint, p_restore bigint, p_occurred_at timestamptz, p_actor text,
    p_explanation jsonb, p_void boolean
) RETURNS checkout_result LANGUAGE plpgsql AS $$
DECLARE
    v_checkout pos_checkouts%ROWTYPE;
    v_version bigint;
    v_status text;
    v_tier_code text;
    v_tier_name text;
    v_card text;
    v_phone text;
    v_reverse bigint := p_reverse;
    v_restore bigint := p_restore;
    v_refunded bigint := p_refunded_minor;
    v_returned jsonb := p_returned;
    v_spend bigint;
    v_unrecovered bigint := 0;
    v_rev record;
    v_bal bigint[];
    v_response jsonb;
BEGIN
    UPDATE members m SET ledger_version = m.ledger_version + 1
    FROM tiers t
    WHERE m.member_id = p_member AND t.tier_id = m.tier_id
    RETURNING m.ledger_version, m.status, t.code, t.name, m.card_number, m.phone
    INTO v_version, v_status, v_tier_code, v_tier_name, v_card, v_phone;
    IF NOT FOUND THEN
        PERFORM ledger_fail('LY002', 'unknown_member', jsonb_build_object('member_id', p_member));
    END IF;
    -- Every change of the purchase record happens under its member's lock.
    SELECT * INTO STRICT v_checkout FROM pos_checkouts WHERE terminal_id = p_terminal AND pos_transaction_id = p_txn;
    IF v_checkout.voided THEN
        PERFORM ledger_fail('LY017', 'transaction_voided', jsonb_build_object(
            'terminal_id', p_terminal, 'pos_transaction_id', p_txn));
    END IF;
    IF p_void THEN
        SELECT coalesce(sum(amount - reversed_amount) FILTER (WHERE entry_id = v_checkout.accrual_entry_id), 0),
               coalesce(sum(amount - reversed_amount) FILTER (WHERE entry_id = v_checkout.redemption_entry_id), 0)
        INTO v_reverse, v_restore
        FROM journal_entries WHERE entry_id IN (v_checkout.accrual_entry_id, v_checkout.redemption_entry_id);
        v_refunded := v_checkout.paid_total_minor - v_checkout.refunded_minor;
        SELECT coalesce(jsonb_object_agg(l ->> 'line_id', (l ->> 'quantity')::bigint), '{}'::jsonb) INTO v_returned
        FROM jsonb_array_elements(v_checkout.lines) AS l;
    ELSIF v_checkout.refund_version <> p_expected_version THEN
        PERFORM ledger_fail('LY015', 'refund_conflict', jsonb_build_object(
            'pos_transaction_id', p_txn, 'expected', p_expected_version, 'actual', v_checkout.refund_version));
    END IF;
    IF v_reverse < 0 OR v_restore < 0 OR v_refunded < 0 THEN
        PERFORM ledger_fail('LY011', 'invalid_amount', jsonb_build_object(
            'reverse', v_reverse, 'restore', v_restore, 'refunded_minor', v_refunded));
    END IF;
    IF v_checkout.refunded_minor + v_refunded > v_checkout.paid_total_minor THEN
        PERFORM ledger_fail('LY018', 'refund_exceeds_purchase', jsonb_build_object(
            'pos_transaction_id', p_txn, 'paid_total_minor', v_checkout.paid_total_minor,
            'refunded_before', v_checkout.refunded_minor, 'refunding', v_refunded));
    END IF;
    -- The refunded money lowers qualifying spend once, on the first reversal written.
    v_spend := v_refunded;
    IF v_reverse > 0 THEN
        SELECT * INTO v_rev FROM checkout_reverse(p_member, v_checkout.accrual_entry_id, v_reverse, p_occurred_at,
                                                  p_actor, p_explanation, v_spend);
        v_unrecovered := v_rev.unrecovered;
        v_bal := v_rev.balances;
        v_spend := 0;
    END IF;
    IF v_restore > 0 THEN
        SELECT * INTO v_rev FROM checkout_reverse(p_member, v_checkout.redemption_entry_id, v_restore, p_occurred_at,
                                                  p_actor, p_explanation, v_spend);
        v_bal := v_rev.balances;
        v_spend := 0;
    END IF;
    -- Nothing to take back or pay back (the returned lines earned nothing, and nothing was redeemed): the refund
    -- still lowers spend, on a reversal of 0 of the purchase's accrual. A purchase without an accrual recorded no
    -- spend (one that earned nothing, committed before 0023), so its refund has none to take back either.
    IF v_spend > 0 AND v_checkout.accrual_entry_id IS NOT NULL THEN
        INSERT INTO journal_entries (kind, member_id, unit, amount, actor, reverses_entry_id, explanation, occurred_at,
                                     spend_minor)
        VALUES ('reversal', p_member, v_checkout.unit, 0, p_actor, v_checkout.accrual_entry_id,
                coalesce(p_explanation, '{}'::jsonb), coalesce(p_occurred_at, now()), -v_spend);
    END IF;
    UPDATE pos_checkouts
    SET returned = v_returned, refunded_minor = refunded_minor + v_refunded, refund_version = refund_version + 1,
        voided = p_void
    WHERE terminal_id = p_terminal AND pos_transaction_id = p_txn;
    IF v_bal IS NULL THEN
        v_bal := checkout_post(p_member, '{}', '{}', '{}', '{}');
    END IF;
    v_response := jsonb_build_object(
        'award_reversed', v_reverse, 'points_restored', v_restore, 'unit', v_checkout.unit,
        'refunded_minor', v_refunded, 'award_unrecovered', v_unrecovered,
        'points', jsonb_build_object('available', v_bal[1], 'pending', v_bal[2], 'held', v_bal[3]), 'replayed', false);
    RETURN ROW(1, NULL, NULL, NULL, v_response, p_member, v_version, v_tier_code, v_tier_name, v_status, v_card,
               v_phone, v_bal[1], v_bal[2], v_bal[3], v_bal[4], v_bal[5], v_bal[6])::checkout_result;
END $$;

