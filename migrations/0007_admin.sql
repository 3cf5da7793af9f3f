-- The admin HTTP API: bearer tokens, the audit log of admin writes, and a profile version for If-Match.

-- Only the SHA-256 of each token is stored. Tokens are 32 random bytes, so a fast hash is enough: there is
-- nothing to guess that a slow hash would protect.
CREATE TABLE admin_tokens (
    token_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role          text NOT NULL CHECK (role IN ('admin', 'marketer', 'support', 'readonly')),
    token_hash    bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    -- Written at most once a minute per token, so authentication is not a write per request.
    last_used_at  timestamptz
);

-- Who changed what, with the state before and after. Rows outlive tokens (no foreign key), and erasing a member
-- redacts the personal values in that member's rows.
CREATE TABLE admin_audit_log (
    audit_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_id    bigint NOT NULL,
    actor_name  text NOT NULL,
    role        text NOT NULL,
    action      text NOT NULL,
    resource    text NOT NULL,
    before      jsonb,
    after       jsonb,
    request_id  text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_audit_log_resource_idx ON admin_audit_log (resource, audit_id DESC);

-- Bumped by every admin change of a member's profile or status; clients send it back in If-Match.
ALTER TABLE members ADD COLUMN profile_version bigint NOT NULL DEFAULT 1;
