-- POS terminals and their credentials. Only SCRAM-style derived keys are stored (see TerminalAuth): neither
-- stored_key nor server_key lets anyone log in as the terminal, and the secret itself is never stored.
CREATE TABLE terminals (
    terminal_id  text PRIMARY KEY CHECK (terminal_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    store_id     text NOT NULL CHECK (length(store_id) BETWEEN 1 AND 64),
    salt         bytea NOT NULL,
    iterations   integer NOT NULL CHECK (iterations BETWEEN 1 AND 1000000),
    stored_key   bytea NOT NULL CHECK (length(stored_key) = 32),
    server_key   bytea NOT NULL CHECK (length(server_key) = 32),
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    rotated_at   timestamptz NOT NULL DEFAULT now()
);
