-- Remit store, SQLite. Times are unix seconds (INTEGER), given by the caller.
-- What is never stored: remit tokens themselves, tool-call arguments.

CREATE TABLE agents (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    public_jwk      TEXT NOT NULL,
    key_thumbprint  TEXT NOT NULL UNIQUE,
    owner           TEXT NOT NULL,
    risk_tier       TEXT NOT NULL CHECK (risk_tier IN ('low', 'medium', 'high', 'critical')),
    status          TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE mcp_servers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    url         TEXT NOT NULL,
    clearance   TEXT NOT NULL CHECK (clearance IN ('public', 'internal', 'confidential', 'restricted')),
    status      TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE mcp_tools (
    server_id           TEXT NOT NULL REFERENCES mcp_servers (id),
    name                TEXT NOT NULL,
    risk                TEXT NOT NULL CHECK (risk IN ('low', 'medium', 'high', 'critical')),
    clearance           TEXT NOT NULL CHECK (clearance IN ('public', 'internal', 'confidential', 'restricted')),
    description_sha256  TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (server_id, name)
);

CREATE TABLE issued_remits (
    jti                 TEXT PRIMARY KEY,
    root_jti            TEXT NOT NULL,
    parent_jti          TEXT REFERENCES issued_remits (jti),
    holder_thumbprint   TEXT NOT NULL,
    sub                 TEXT NOT NULL,
    agent_id            TEXT NOT NULL REFERENCES agents (id),
    issued_at           INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    max_steps           INTEGER,
    steps_used          INTEGER NOT NULL DEFAULT 0,
    CHECK (max_steps IS NULL OR max_steps >= 0),
    CHECK (steps_used >= 0 AND (max_steps IS NULL OR steps_used <= max_steps))
);
CREATE INDEX issued_remits_root ON issued_remits (root_jti);
CREATE INDEX issued_remits_parent ON issued_remits (parent_jti);

CREATE TABLE revocation_epoch (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    epoch   INTEGER NOT NULL
);
INSERT INTO revocation_epoch (id, epoch) VALUES (1, 0);

CREATE TABLE revocations (
    kind        TEXT NOT NULL CHECK (kind IN ('jti', 'subtree', 'agent', 'sub', 'tool', 'kid')),
    value       TEXT NOT NULL,
    epoch       INTEGER NOT NULL UNIQUE,
    reason      TEXT NOT NULL,
    revoked_by  TEXT NOT NULL,
    revoked_at  INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
);

CREATE TABLE risk_budgets (
    agent_id        TEXT NOT NULL REFERENCES agents (id),
    window_start    INTEGER NOT NULL,
    spent           INTEGER NOT NULL CHECK (spent >= 0),
    PRIMARY KEY (agent_id, window_start)
);

CREATE TABLE approvals (
    id              TEXT PRIMARY KEY,
    agent_id        TEXT NOT NULL REFERENCES agents (id),
    remit_jti       TEXT NOT NULL,
    tool            TEXT NOT NULL,
    call_hash       TEXT NOT NULL,
    summary         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    requested_at    INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    decided_by      TEXT,
    decided_at      INTEGER,
    consumed_at     INTEGER
);
CREATE INDEX approvals_state ON approvals (state);

CREATE TABLE observations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id        TEXT NOT NULL,
    tool            TEXT NOT NULL,
    argument_shape  TEXT NOT NULL,
    decision        TEXT NOT NULL,
    observed_at     INTEGER NOT NULL
);
CREATE INDEX observations_agent ON observations (agent_id, observed_at);

CREATE TABLE log_head (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    size    INTEGER NOT NULL
);
INSERT INTO log_head (id, size) VALUES (1, 0);

CREATE TABLE log_leaves (
    idx     INTEGER PRIMARY KEY CHECK (idx >= 0),
    leaf    BLOB NOT NULL
);

CREATE TABLE log_checkpoints (
    size        INTEGER PRIMARY KEY CHECK (size >= 0),
    checkpoint  TEXT NOT NULL
);
