-- The checkout's hot inserts without foreign-key triggers; the references they guarded are checked by
-- `loyalty audit` instead.
--
-- Why: a commit inserts about ten rows that referenced other rows (two postings, a lot, a purchase record, the
-- idempotency key, lot consumptions on a redemption), and each reference was an RI trigger: an SPI query and a
-- FOR KEY SHARE row lock per row. Profiled, those checks were about a fifth of the database's CPU per commit.
-- Worse, every accrual posts to the shared `issued` system account, so every concurrent commit took a share lock
-- on that one row: PostgreSQL records several lockers of a row as a multixact, which costs a multixact write per
-- commit and grows with concurrency.
--
-- Why it is safe here: these rows are written only by the ledger's SQL functions, in the transaction that writes
-- what they point to (the entry, the lot, the member's accounts, locked first); nothing deletes journal entries,
-- accounts, members (erasure blanks a member, it keeps the row) or lots. The references a reader relies on are
-- checked by `loyalty audit` ("every posting's entry and account exist", and the same for lots, lot consumptions,
-- purchase records and keys), which the load test and the chaos run already run after every scenario.
--
-- Kept: journal_entries -> members (one per entry, on a member row the same transaction has just locked) and the
-- references of holds, accounts, tier changes and reversals, which are not written per purchase.
ALTER TABLE postings
    DROP CONSTRAINT postings_account_id_fkey,
    DROP CONSTRAINT postings_entry_id_fkey;
ALTER TABLE lots
    DROP CONSTRAINT lots_entry_id_fkey,
    DROP CONSTRAINT lots_member_id_fkey;
ALTER TABLE lot_consumptions
    DROP CONSTRAINT lot_consumptions_entry_id_fkey,
    DROP CONSTRAINT lot_consumptions_lot_id_fkey;
ALTER TABLE pos_checkouts
    DROP CONSTRAINT pos_checkouts_member_id_fkey,
    DROP CONSTRAINT pos_checkouts_accrual_entry_id_fkey,
    DROP CONSTRAINT pos_checkouts_redemption_entry_id_fkey;
ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_entry_id_fkey;
