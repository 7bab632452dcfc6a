-- The signing key id (JWS header `kid`) of each subject link of an
-- exchange, so that revoking a key that signed any link of a subject chain
-- also revokes the remits exchanged from it. Exchanges recorded before this
-- migration have no kid (the tokens were never stored, so it cannot be
-- recovered); their remits still expire on time and still follow subtree,
-- agent, user and issuer-key revocations.
ALTER TABLE exchange_links ADD COLUMN subject_kid TEXT;
CREATE INDEX exchange_links_kid ON exchange_links (subject_kid);
