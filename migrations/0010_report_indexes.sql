-- Reports over the ledger by business time. A BRIN index: entries are appended roughly in occurred_at order
-- (offline replays lag by at most the return window), so a few pages of block ranges find a month of entries
-- without a full scan, and keeping it current costs the checkout path next to nothing.
CREATE INDEX journal_entries_occurred_brin ON journal_entries USING brin (occurred_at);
