-- The ledger's invariants over a whole database, as counts of violations (all 0 when the ledger is sound):
-- every entry sums to zero per unit; member balances equal the sums of their postings; no member balance below
-- zero; available lots equal available + held and pending lots equal pending, per member and unit; active holds
-- equal held; reversal totals match; redemptions are covered by their lot consumptions. Set-based, so it runs on a
-- benchmark database in seconds. Used by loadtests/sql-ceiling.sh after its runs.
SELECT
    (SELECT count(*) FROM (SELECT p.entry_id, a.unit FROM postings p JOIN accounts a USING (account_id)
                           GROUP BY p.entry_id, a.unit HAVING sum(p.amount) <> 0) x) AS entries_not_zero,
    (SELECT count(*) FROM accounts a
     LEFT JOIN (SELECT account_id, sum(amount) AS total FROM postings GROUP BY account_id) p USING (account_id)
     WHERE a.member_id IS NOT NULL AND a.balance <> coalesce(p.total, 0)) AS balances_not_postings,
    (SELECT count(*) FROM accounts WHERE member_id IS NOT NULL AND balance < 0) AS negative_balances,
    (SELECT count(*) FROM
        (SELECT member_id, unit, sum(balance) FILTER (WHERE bucket IN ('available', 'held')) AS spendable,
                sum(balance) FILTER (WHERE bucket = 'pending') AS pending
         FROM accounts WHERE member_id IS NOT NULL GROUP BY member_id, unit) b
     FULL JOIN
        (SELECT member_id, unit, sum(remaining_amount) FILTER (WHERE state = 'available') AS available_lots,
                sum(remaining_amount) FILTER (WHERE state = 'pending') AS pending_lots
         FROM lots GROUP BY member_id, unit) l USING (member_id, unit)
     WHERE coalesce(b.spendable, 0) <> coalesce(l.available_lots, 0) OR coalesce(b.pending, 0) <> coalesce(l.pending_lots, 0))
        AS lots_not_balances,
    (SELECT count(*) FROM accounts a
     LEFT JOIN (SELECT member_id, unit, sum(amount) AS held FROM holds WHERE state = 'active' GROUP BY member_id, unit) h
            ON h.member_id = a.member_id AND h.unit = a.unit
     WHERE a.member_id IS NOT NULL AND a.bucket = 'held' AND a.balance <> coalesce(h.held, 0)) AS holds_not_held,
    (SELECT count(*) FROM journal_entries o
     LEFT JOIN (SELECT reverses_entry_id, sum(amount) AS reversed FROM journal_entries
                WHERE reverses_entry_id IS NOT NULL GROUP BY reverses_entry_id) r ON r.reverses_entry_id = o.entry_id
     WHERE o.kind IN ('accrual', 'redemption') AND o.reversed_amount <> coalesce(r.reversed, 0)) AS reversals_not_matching,
    (SELECT count(*) FROM journal_entries e
     LEFT JOIN (SELECT entry_id, sum(amount) AS consumed FROM lot_consumptions GROUP BY entry_id) c USING (entry_id)
     WHERE e.kind = 'redemption' AND e.amount <> coalesce(c.consumed, 0)) AS redemptions_not_consumed;
