-- The support role's cumulative adjustment limit counts a token's adjustments of the current UTC day. Adjustments
-- are rare next to checkouts, so a partial index on them stays small and the sum reads only that token's rows.
CREATE INDEX journal_entries_adjustment_actor_idx ON journal_entries (actor, recorded_at) WHERE kind = 'adjustment';
