"""End to end through the MCP gateway with the official Python MCP client
(streamable HTTP) in front of the official filesystem server (stdio
upstream spawned by the gateway), all real: `remit serve`, the `remit` CLI,
`@modelcontextprotocol/server-filesystem` from tests/node.

One scenario, in order (the tests share one server and run top to bottom):
the remit grants `fs/read_file` under `files/` only; tools/list shows only
that; a read inside is allowed; a read outside and an ungranted tool are
denied with receipts; an SSN sent to a tool cleared for INTERNAL is denied;
a result holding an AWS secret key is redacted; a delegated sub-agent works
and cannot widen; after `remit revoke --subtree` every call fails; `remit
audit verify` passes over the whole log and `audit show` gives each event's
chain.
"""

from __future__ import annotations

import json

import pytest
from mcp.shared.exceptions import MCPError

from gateway_helpers import SECRET, Scenario, claims

SSN = "536-22-8147"
DENIED, INSUFFICIENT_SCOPE = -32041, -32043


@pytest.fixture(scope="module", params=["http", "wrap"])
def sc(request, tmp_path_factory):
    scenario = Scenario(tmp_path_factory.mktemp(request.param), request.param)
    yield scenario
    scenario.server.stop()


def refusal(outcome, code: int) -> dict:
    assert isinstance(outcome, MCPError), f"expected a refusal, got {outcome!r}"
    assert outcome.error.code == code, outcome.error
    data = outcome.error.data
    assert isinstance(data, dict) and isinstance(data.get("receipt_id"), int), data
    return data


def text(result) -> str:
    assert not isinstance(result, MCPError), f"refused: {result.error}"
    assert not result.is_error, result
    return "".join(c.text for c in result.content if c.type == "text")


def test_tools_list_shows_only_the_granted_tool(sc):
    assert sc.tools(sc.root_chain, "planner") == ["read_file"]


def test_a_read_outside_the_granted_directory_is_denied_with_a_receipt(sc):
    outcome = sc.call(sc.root_chain, "planner", "read_file", {"path": str(sc.root / "hr" / "salaries.csv")})
    # A constraint failure is a deny naming the constraint (issue 22 item
    # 10), not insufficient_scope for a tool the remit already grants.
    data = refusal(outcome, DENIED)
    assert "path" in data["reason"], data
    receipt = sc.receipt(data["receipt_id"])
    assert receipt["kind"] == "deny"
    assert receipt["tool"] == "mcp:fs/read_file"


def test_an_ungranted_tool_is_denied_with_a_receipt_not_hidden_as_unknown(sc):
    outcome = sc.call(sc.root_chain, "planner", "write_file", {"path": str(sc.files / "x.txt"), "content": "x"})
    data = refusal(outcome, INSUFFICIENT_SCOPE)
    assert sc.receipt(data["receipt_id"])["kind"] == "deny"
    assert not (sc.files / "x.txt").exists()


def test_an_ssn_sent_to_a_tool_cleared_for_internal_is_denied(sc):
    outcome = sc.call(sc.root_chain, "planner", "read_file", {"path": f"{sc.files}/customer {SSN}.txt"})
    data = refusal(outcome, DENIED)
    receipt = sc.receipt(data["receipt_id"])
    assert receipt["kind"] == "deny"
    assert "US_SSN" in receipt["findings"], receipt
    assert SSN not in json.dumps(receipt), "a receipt must never hold the value"


def test_a_read_inside_the_granted_directory_is_allowed_with_a_receipt(sc):
    result = sc.call(sc.root_chain, "planner", "read_file", {"path": str(sc.files / "notes.txt")})
    assert "meeting at noon" in text(result)
    receipt = sc.receipt(result.meta["receipt_id"])
    assert receipt["kind"] == "allow"
    assert [a["id"] for a in receipt["actors"]] == ["alice", "planner"]


def test_an_aws_secret_key_in_a_result_is_redacted(sc):
    result = sc.call(sc.root_chain, "planner", "read_file", {"path": str(sc.files / "deploy.env")})
    body = text(result) + json.dumps(result.structured_content or {})
    assert "region = eu-west-1" in body, "the rest of the file comes through"
    assert SECRET not in body, "the secret must not reach the agent"


def test_a_delegated_sub_agent_works_within_its_narrower_remit_and_cannot_widen(sc):
    delegate = [
        "token", "delegate", "--parent", sc.root_chain, "--holder-key", "planner.jwk",
        "--to-jwk", "reader.jwk", "--agent", "reader", "--ttl", "5m",
    ]
    chain = sc.server.run(*delegate, "--tool", "fs/read_file").stdout.strip()
    assert chain.startswith(sc.root_chain + "~")
    # Widening is refused offline, before any call.
    sc.server.run(*delegate, "--tool", "fs/write_file", expect=2)

    assert sc.tools(chain, "reader") == ["read_file"]
    result = sc.call(chain, "reader", "read_file", {"path": str(sc.files / "notes.txt")})
    assert "meeting at noon" in text(result)
    actors = sc.receipt(result.meta["receipt_id"])["actors"]
    assert [a["id"] for a in actors] == ["alice", "planner", "reader"]
    # The parent's argument constraint still binds the sub-agent.
    outside = sc.call(chain, "reader", "read_file", {"path": str(sc.root / "hr" / "salaries.csv")})
    refusal(outside, DENIED)
    # The planner's key cannot speak for the reader's chain.
    stolen = sc.attempt(chain, "planner", "read_file", {"path": str(sc.files / "notes.txt")})
    assert isinstance(stolen, Exception), f"a chain used with another agent's key answered {stolen!r}"
    sc.delegated = chain


def test_after_revoking_the_subtree_every_call_fails(sc):
    root_jti = claims(sc.root_chain.split("~")[0])["jti"]
    sc.server.run("revoke", "--subtree", root_jti)
    assert sc.delegated, "the delegation test runs first"
    for chain, agent in ((sc.root_chain, "planner"), (sc.delegated, "reader")):
        outcome = sc.attempt(chain, agent, "read_file", {"path": str(sc.files / "notes.txt")})
        assert isinstance(outcome, Exception), f"a revoked chain still answered {outcome!r}"


def test_audit_verify_passes_over_the_whole_log_and_shows_each_events_chain(sc):
    jwks = sc.root / "receipt-jwks.json"
    jwks.write_text(sc.server.run("keys", "jwks", str(sc.server.data / "receipt.jwk")).stdout)
    for log in {sc.server.data / "log", sc.log}:
        out = sc.server.run("audit", "verify", "--log", str(log), "--jwks", str(jwks), "--json")
        assert json.loads(out.stdout)["ok"] is True, out.stdout
    kinds = {r["kind"] for r in sc.server.receipts()}
    assert "revoke" in kinds, kinds
    receipts = sc.server.receipts(sc.log)
    kinds = {r["kind"] for r in receipts}
    assert {"allow", "deny"} <= kinds, kinds
    # Every call made with a verified chain names the user first; refusals
    # before authentication (the revoked chains) have no chain to name.
    calls = [r for r in receipts if (r.get("tool") or "").startswith("mcp:fs") and r.get("actors")]
    assert any(r["kind"] == "allow" for r in calls)
    assert all(r["actors"][0]["id"] == "alice" for r in calls)
    shown = sc.server.run("audit", "show", "--log", str(sc.log), "--agent", "reader").stdout
    assert "user:alice → agent:planner → agent:reader" in shown, shown
