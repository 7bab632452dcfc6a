-- The argument of a blessed tool whose value is the call's resource (a
-- path, URI or URL), matched against the remit's resource patterns; NULL
-- when the tool has none.
ALTER TABLE mcp_tools ADD COLUMN resource_arg TEXT;
