-- Issue 22 item 5: one risk budget for a whole custody tree. A remit minted
-- by token exchange spends the risk of the agent whose budget paid for the
-- subject chain it was exchanged from (transitively: the agent at the top of
-- the custody tree), so exchanging a chain never opens a fresh budget.
CREATE TABLE custody_payers (
    exchanged_root  TEXT PRIMARY KEY REFERENCES issued_remits (jti),
    payer_agent     TEXT NOT NULL
);
