"""Every refusal the gateway sends parses in the official MCP clients with
its reason intact (issue 22, item 11): the Python SDK (mcp, in .venv) and
the TypeScript SDK (@modelcontextprotocol/sdk, tests/node/refusal-client.mjs),
against a real `remit serve` fronting the official filesystem server.

Before the fix a 401 was a JSON-RPC error without `id`; the Python client
could not parse it and reported a generic internal error, so the agent
never learned "expired", "revoked" or that its proof was signed by the
wrong key.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from mcp.shared.exceptions import MCPError

from gateway_helpers import REPO, Scenario, claims

NODE_CLIENT = REPO / "tests" / "node" / "refusal-client.mjs"


@pytest.fixture(scope="module")
def sc(tmp_path_factory):
    scenario = Scenario(tmp_path_factory.mktemp("refusals"), "http")
    yield scenario
    scenario.server.stop()


def mint(sc, ttl: int = 600) -> str:
    return sc.server.admin(
        "POST",
        "/v1/remits",
        {
            "agent": "planner",
            "sub": "alice",
            "grants": [{"type": "remit_tool", "tools": ["fs/read_file"]}],
            "max_steps": 50,
            "ttl_secs": ttl,
        },
    )["remit"]


def expired(sc) -> str:
    chain = mint(sc, ttl=1)
    time.sleep(2.5)
    return chain


def revoked(sc) -> str:
    chain = mint(sc)
    sc.server.run("revoke", "--subtree", claims(chain.split("~")[-1])["jti"])
    return chain


def python_refusal(sc, chain: str, agent: str = "planner") -> MCPError:
    outcome = sc.attempt(chain, agent, "read_file", {"path": str(sc.files / "notes.txt")})
    # The SDK raises a refusal during `initialize` from inside its task
    # groups: the MCPError (with the gateway's reason) is the one leaf.
    while isinstance(outcome, BaseExceptionGroup) and len(outcome.exceptions) == 1:
        outcome = outcome.exceptions[0]
    assert isinstance(outcome, MCPError), f"expected an MCP error with a reason, got {outcome!r}"
    return outcome


def node_refusal(sc, chain: str) -> dict:
    chain_file = sc.root / f"chain-{time.monotonic_ns()}"
    chain_file.write_text(chain)
    out = subprocess.run(
        ["node", str(NODE_CLIENT), sc.url, str(chain_file), "read_file",
         json.dumps({"path": str(sc.files / "notes.txt")})],
        capture_output=True, text=True, timeout=60, cwd=NODE_CLIENT.parent,
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["ok"] is False, answer
    return answer


def test_an_expired_remit_says_expired_to_the_python_client(sc):
    error = python_refusal(sc, expired(sc))
    assert "expired" in error.error.message, error.error


def test_a_revoked_remit_says_revoked_to_the_python_client(sc):
    error = python_refusal(sc, revoked(sc))
    assert "revoked" in error.error.message, error.error


def test_a_proof_signed_by_the_wrong_key_says_so_to_the_python_client(sc):
    error = python_refusal(sc, mint(sc), agent="reader")
    assert "DPoP proof" in error.error.message, error.error


def test_a_constraint_deny_reaches_the_python_client_with_its_reason(sc):
    outcome = sc.call(sc.root_chain, "planner", "read_file", {"path": str(sc.root / "hr" / "salaries.csv")})
    assert isinstance(outcome, MCPError), outcome
    assert outcome.error.code == -32041
    assert "prefix" in outcome.error.data["reason"], outcome.error.data


def test_expired_and_revoked_reach_the_typescript_client(sc):
    assert "expired" in node_refusal(sc, expired(sc))["message"]
    assert "revoked" in node_refusal(sc, revoked(sc))["message"]


def test_a_constraint_deny_reaches_the_typescript_client_with_its_reason(sc):
    chain_file = sc.root / "root-chain"
    chain_file.write_text(sc.root_chain)
    out = subprocess.run(
        ["node", str(NODE_CLIENT), sc.url, str(chain_file), "read_file",
         json.dumps({"path": str(sc.root / "hr" / "salaries.csv")})],
        capture_output=True, text=True, timeout=60, cwd=NODE_CLIENT.parent,
    )
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["ok"] is False and answer["code"] == -32041, answer
    assert "prefix" in answer["data"]["reason"], answer


def forged(sc) -> str:
    """A minted chain whose signature bytes were changed (still canonical
    base64url, so it parses and only the signature check refuses it)."""
    chain = mint(sc)
    middle = "A" * 10 if chain[-12:-2] != "A" * 10 else "B" * 10
    return chain[:-12] + middle + chain[-2:]


@pytest.mark.parametrize("make, agent", [
    (expired, "planner"), (revoked, "planner"), (forged, "planner"), (mint, "reader"),
])
def test_a_refused_credential_is_receipted_with_what_it_claimed_marked_unverified(sc, make, agent):
    """Issue 32 item 2: expired, revoked, forged and wrong-key calls record
    the actors and jti they claimed, marked unverified, under the policy
    version in force."""
    chain = make(sc)
    python_refusal(sc, chain, agent=agent)
    leaf = claims(chain.split("~")[-1])["jti"]
    mine = [r for r in sc.server.receipts() if r["kind"] == "deny" and r.get("leaf_jti") == leaf]
    assert mine, f"no deny receipt names {leaf}"
    receipt = mine[-1]
    assert receipt["unverified"] is True, receipt
    assert [a["id"] for a in receipt["actors"]] == ["alice", "planner"], receipt
    assert receipt["decision"]["policy_ids"] == ["gw-unauthenticated"], receipt
    assert receipt["decision"]["policy_version"].startswith("sha256:"), receipt
    assert isinstance(receipt["revocation_epoch"], int) and receipt["call_id"], receipt


@pytest.mark.parametrize("make, agent, rule", [
    (expired, "planner", "gw-unauthenticated"),
    (revoked, "planner", "gw-unauthenticated"),
    (forged, "planner", "gw-unauthenticated"),
    (mint, "reader", "gw-wrap-not-holder"),
])
def test_a_remit_refused_at_wrap_start_leaves_a_deny_receipt(sc, make, agent, rule):
    """Issue 32 item 3: `remit wrap` refuses an expired, revoked, forged or
    wrong-key remit before reading a message, and that refusal has its own
    receipt in the wrap's log (what the chain claimed, marked unverified),
    named in the error."""
    chain = make(sc)
    remit_file = sc.root / f"wrap-{time.monotonic_ns()}.remit"
    remit_file.write_text(chain)
    out = subprocess.run(
        [str(sc.server.binary), "wrap", "--remit", str(remit_file),
         "--key", str(sc.root / f"{agent}.jwk"), "--data", str(sc.server.data),
         "--server", "fs", "--public-url", sc.server.url, "--", str(sc.fs), str(sc.root)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, cwd=sc.root,
    )
    assert out.returncode != 0, out
    assert "refused with receipt" in out.stderr, out.stderr
    leaf = claims(chain.split("~")[-1])["jti"]
    log = sc.server.data / "wrap" / "fs" / "log"
    mine = [r for r in sc.server.receipts(log) if r["kind"] == "deny" and r.get("leaf_jti") == leaf]
    assert mine, f"no deny receipt in the wrap's log names {leaf}: {out.stderr}"
    receipt = mine[-1]
    assert receipt["unverified"] is True, receipt
    assert receipt["decision"]["policy_ids"] == [rule], receipt
    assert receipt["decision"]["policy_version"].startswith("sha256:"), receipt
