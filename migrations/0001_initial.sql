-- Members, tiers and the double-entry ledger.
-- Amounts are bigint in their unit: whole points, or cashback in minor currency units. Never floating point.

CREATE TABLE tiers (
    tier_id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code                         text NOT NULL UNIQUE CHECK (code ~ '^[a-z][a-z0-9_]{0,31}$'),
    name                         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    rank                         integer NOT NULL UNIQUE CHECK (rank >= 0),
    -- Spend (minor units) over the rolling window that qualifies a member for this tier.
    qualification_spend_minor    bigint NOT NULL CHECK (qualification_spend_minor >= 0),
    qualification_window_days    integer NOT NULL CHECK (qualification_window_days BETWEEN 1 AND 3660),
    -- Benefit: earn rate in basis points of the paid amount that replaces the program's base rate; null = base.
    earn_rate_override_bp        integer CHECK (earn_rate_override_bp BETWEEN 0 AND 100000),
    created_at                   timestamptz NOT NULL DEFAULT now(),
    updated_at                   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE members (
    member_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Identifiers a till can look a member up by. Null once personal data is erased.
    card_number     text UNIQUE CHECK (card_number ~ '^[0-9A-Za-z-]{4,32}$'),
    phone           text UNIQUE CHECK (phone ~ '^\+[0-9]{6,15}$'),
    email           text CHECK (length(email) <= 254),
    given_name      text CHECK (length(given_name) <= 100),
    family_name     text CHECK (length(family_name) <= 100),
    birth_date      date,
    tier_id         bigint NOT NULL REFERENCES tiers (tier_id),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked', 'erased')),
    tags            text[] NOT NULL DEFAULT '{}',
    consents        jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Bumped by every ledger change of the member; cached values carry it so older ones never overwrite newer.
    ledger_version  bigint NOT NULL DEFAULT 0,
    enrolled_at     timestamptz NOT NULL DEFAULT now(),
    erased_at       timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'erased' OR (card_number IS NULL AND phone IS NULL AND email IS NULL
                                  AND given_name IS NULL AND family_name IS NULL AND birth_date IS NULL))
);
CREATE INDEX members_email_idx ON members (lower(email)) WHERE email IS NOT NULL;
CREATE INDEX members_tier_idx ON members (tier_id);

-- One row per (owner, bucket, unit). Member buckets carry a cached balance updated in the entry's transaction.
-- System buckets (member_id null) are never updated per checkout: their balances are derived from postings,
-- so thousands of tills never queue on one hot row.
CREATE TABLE accounts (
    account_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    member_id    bigint REFERENCES members (member_id),
    campaign_id  bigint,
    bucket       text NOT NULL CHECK (bucket IN ('available', 'pending', 'held',
                                                 'issued', 'redeemed', 'expired', 'adjustment', 'campaign')),
    unit         text NOT NULL CHECK (unit IN ('points', 'cashback_minor')),
    balance      bigint NOT NULL DEFAULT 0,
    version      bigint NOT NULL DEFAULT 0,
    CHECK ((member_id IS NOT NULL) = (bucket IN ('available', 'pending', 'held'))),
    CHECK ((campaign_id IS NOT NULL) = (bucket = 'campaign')),
    -- Member buckets can never go below zero; this is the last line of defence behind the conditional updates.
    CHECK (member_id IS NULL OR balance >= 0)
);
CREATE UNIQUE INDEX accounts_member_bucket_unit_key ON accounts (member_id, bucket, unit) WHERE member_id IS NOT NULL;
CREATE UNIQUE INDEX accounts_system_bucket_unit_key ON accounts (bucket, unit) WHERE member_id IS NULL AND campaign_id IS NULL;
CREATE UNIQUE INDEX accounts_campaign_unit_key ON accounts (campaign_id, unit) WHERE campaign_id IS NOT NULL;

-- One per business event. The explanation says which rule, tier and campaign gave what.
CREATE TABLE journal_entries (
    entry_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind               text NOT NULL CHECK (kind IN ('accrual', 'activation', 'hold', 'release', 'redemption',
                                                      'reversal', 'expiry', 'adjustment', 'campaign_bonus')),
    member_id          bigint NOT NULL REFERENCES members (member_id),
    -- Who asked: a terminal id, an admin token id, a job name.
    actor              text NOT NULL,
    reason             text,
    reverses_entry_id  bigint REFERENCES journal_entries (entry_id),
    rules_version      text,
    explanation        jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- When the business event happened (a till replaying offline sales sends the purchase time).
    occurred_at        timestamptz NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX journal_entries_member_idx ON journal_entries (member_id, entry_id DESC);
CREATE INDEX journal_entries_reverses_idx ON journal_entries (reverses_entry_id) WHERE reverses_entry_id IS NOT NULL;

-- The truth: for every entry and unit the amounts sum to zero (checked by the ledger functions and `loyalty audit`).
CREATE TABLE postings (
    entry_id    bigint NOT NULL REFERENCES journal_entries (entry_id),
    account_id  bigint NOT NULL REFERENCES accounts (account_id),
    amount      bigint NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (entry_id, account_id)
);
CREATE INDEX postings_account_idx ON postings (account_id);

-- Each accrual is a lot; redemption and expiry consume lots in expiry order.
CREATE TABLE lots (
    lot_id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    member_id         bigint NOT NULL REFERENCES members (member_id),
    entry_id          bigint NOT NULL REFERENCES journal_entries (entry_id),
    unit              text NOT NULL CHECK (unit IN ('points', 'cashback_minor')),
    original_amount   bigint NOT NULL CHECK (original_amount > 0),
    remaining_amount  bigint NOT NULL CHECK (remaining_amount >= 0 AND remaining_amount <= original_amount),
    state             text NOT NULL CHECK (state IN ('pending', 'available', 'expired', 'reversed')),
    available_at      timestamptz NOT NULL,
    expires_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (expires_at IS NULL OR expires_at > available_at)
);
CREATE INDEX lots_member_open_idx ON lots (member_id, unit, expires_at, lot_id) WHERE remaining_amount > 0;
CREATE INDEX lots_pending_due_idx ON lots (available_at) WHERE state = 'pending';
CREATE INDEX lots_expiry_due_idx ON lots (expires_at) WHERE state = 'available' AND remaining_amount > 0;

-- Points reserved during checkout; released by commit, cancel or timeout.
CREATE TABLE holds (
    hold_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    member_id    bigint NOT NULL REFERENCES members (member_id),
    unit         text NOT NULL CHECK (unit IN ('points', 'cashback_minor')),
    amount       bigint NOT NULL CHECK (amount > 0),
    state        text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'committed', 'released', 'expired')),
    entry_id     bigint NOT NULL REFERENCES journal_entries (entry_id),
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX holds_active_expiry_idx ON holds (expires_at) WHERE state = 'active';

-- (caller scope, key) -> the request's hash and the stored response. Same key + same request: the stored
-- response; same key + another request: a conflict.
CREATE TABLE idempotency_keys (
    scope          text NOT NULL,
    key            text NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    request_hash   bytea NOT NULL,
    entry_id       bigint REFERENCES journal_entries (entry_id),
    response       jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

INSERT INTO accounts (bucket, unit)
SELECT bucket, unit
FROM unnest(ARRAY['issued', 'redeemed', 'expired', 'adjustment']) AS bucket
CROSS JOIN unnest(ARRAY['points', 'cashback_minor']) AS unit;

INSERT INTO tiers (code, name, rank, qualification_spend_minor, qualification_window_days)
VALUES ('base', 'Member', 0, 0, 365);
