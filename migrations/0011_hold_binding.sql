-- A hold belongs to the checkout that took it: the hold records the terminal and pos_transaction_id that took it
-- (checked by the checkout functions of 0013: a Commit naming it must come from the same terminal with the same
-- pos_transaction_id, LY013 hold_mismatch otherwise), and hold ids are random, so a till cannot find or consume
-- another till's hold by counting. Holds taken before (and by the ledger's own ledger_hold) carry no terminal.

ALTER TABLE holds
    ADD COLUMN terminal_id text,
    ADD COLUMN pos_transaction_id text;

-- Random bits from the strong random source behind gen_random_uuid (its first 13 hex digits are random), kept
-- below 2^53 so JSON clients that read numbers as doubles keep them exact, with bit 40 set: never 0 ("no hold" on
-- the wire) and never a small number that looks like a sequence.
CREATE FUNCTION hold_random_id() RETURNS bigint LANGUAGE sql VOLATILE AS $$
    SELECT (('x' || left(replace(gen_random_uuid()::text, '-', ''), 16))::bit(64)::bigint & 9007199254740991)
           | 1099511627776
$$;

ALTER TABLE holds ALTER COLUMN hold_id DROP IDENTITY;
ALTER TABLE holds ALTER COLUMN hold_id SET DEFAULT hold_random_id();
ALTER TABLE holds ADD CHECK (hold_id > 0);
