-- Richer observations for policy drafting (issue 26): the projected facts of
-- each call, as remit-draft's JSON (argument facts without raw values: paths
-- as directories, URLs as hosts, emails as domains, sensitive tokens as keyed
-- hashes, text as a length; plus data class, findings, delegation depth and
-- hour), recorded beside the shape. NULL for calls recorded before 0007 or
-- by a gateway that does not project.
ALTER TABLE observations ADD COLUMN facts TEXT;
-- Newest first per agent: drafting reads an agent's recent window, and
-- pruning keeps each agent's newest N.
CREATE INDEX observations_agent_id ON observations (agent_id, id);
