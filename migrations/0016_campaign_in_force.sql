-- Which campaigns were in force at a purchase's time, for offline tills replaying old purchases: a campaign is in
-- force at T when T is in its window, it had been scheduled by T, and it had not been cancelled by T. Scheduling
-- and cancelling times are kept on the row (set by the trigger below on every path that changes the state), so a
-- campaign created after a sale with a backdated start does not apply to that sale, and one cancelled after a sale
-- still applies to it.
ALTER TABLE campaigns ADD COLUMN scheduled_at timestamptz, ADD COLUMN cancelled_at timestamptz;

-- Rows from before this migration: the best known times.
UPDATE campaigns SET scheduled_at = created_at WHERE state <> 'draft';
UPDATE campaigns SET cancelled_at = updated_at WHERE state = 'cancelled';

CREATE FUNCTION campaigns_state_times() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state <> 'draft' AND NEW.scheduled_at IS NULL THEN
        NEW.scheduled_at := now();
    END IF;
    IF NEW.state = 'cancelled' AND NEW.cancelled_at IS NULL THEN
        NEW.cancelled_at := now();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER campaigns_state_times BEFORE INSERT OR UPDATE OF state ON campaigns
    FOR EACH ROW EXECUTE FUNCTION campaigns_state_times();
