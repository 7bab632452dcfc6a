-- Prompts pinned when a server is blessed: the SHA-256 of each prompt's
-- description and arguments (RFC 8785 JSON), so a changed prompt (a "rug
-- pull") is hidden and refused until an operator blesses the server again.
CREATE TABLE mcp_prompts (
    server_id           TEXT NOT NULL REFERENCES mcp_servers (id),
    name                TEXT NOT NULL,
    description_sha256  TEXT NOT NULL,
    pinned_at           INTEGER NOT NULL,
    PRIMARY KEY (server_id, name)
);
