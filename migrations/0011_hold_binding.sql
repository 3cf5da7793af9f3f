-- Placeholder for the hold-binding migration (to be replaced by the real file): the terminal and transaction
-- that took each hold.
ALTER TABLE holds ADD COLUMN terminal_id text, ADD COLUMN pos_transaction_id text;
