-- The secret that keys the digests standing for card numbers and phones in the Redis member cache (key names and
-- cached values never hold the identifiers themselves). One per database, so every server on it agrees; made from
-- the strong random source behind gen_random_uuid (two version-4 UUIDs: 244 random bits).
CREATE TABLE cache_identifier_key (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key_bytes   bytea NOT NULL CHECK (length(key_bytes) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO cache_identifier_key (key_bytes)
VALUES (decode(replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', ''), 'hex'));
