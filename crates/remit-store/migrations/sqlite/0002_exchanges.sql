-- Token exchange (RFC 8693): which subject chain each exchanged root was
-- derived from, so a revocation of any subject link or agent reaches it,
-- and the actor assertions already used (replay refused across replicas).
CREATE TABLE exchange_links (
    exchanged_root  TEXT NOT NULL REFERENCES issued_remits (jti),
    subject_jti     TEXT NOT NULL,
    subject_agent   TEXT NOT NULL,
    PRIMARY KEY (exchanged_root, subject_jti)
);
CREATE INDEX exchange_links_jti ON exchange_links (subject_jti);
CREATE INDEX exchange_links_agent ON exchange_links (subject_agent);

CREATE TABLE used_assertions (
    agent_id    TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (agent_id, jti)
);
CREATE INDEX used_assertions_expiry ON used_assertions (expires_at);
