"""The `remit` Python package against the real gateway: the official MCP
Python client (streamable HTTP) through `remit serve` to the official
filesystem server, authenticated by the package's `DPoPAuth` (one fresh
DPoP proof per request, signed by the Rust core); refusals raised as typed
exceptions carrying the receipt id; a held call released by `wait()` once
a human approves; a sub-agent delegated in Python; and the receipts
`remit serve` wrote verified in Python — signature, inclusion proof,
checkpoint, the whole log — with the CLI agreeing on every verdict.

The tests share one server and run top to bottom.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import anyio
import pytest
from mcp.shared.exceptions import MCPError

import remit
import remit.audit
import remit.mcp
from remit import ApprovalRequired, AuditFailed, Denied, InsufficientScope, Jwks, Key
from gateway_helpers import SECRET, Scenario, http_session
from sdk_forge import mint

SSN = "536-22-8147"


@pytest.fixture(scope="module")
def sc(tmp_path_factory):
    scenario = Scenario(tmp_path_factory.mktemp("sdk"), "http")
    scenario.receipt_ids = []
    yield scenario
    scenario.server.stop()


def run(coro_fn):
    async def go():
        with anyio.fail_after(90):
            return await coro_fn()

    return anyio.run(go)


def key(sc, agent: str) -> Path:
    return sc.root / f"{agent}.jwk"


def text(result) -> str:
    assert not result.is_error, result
    return "".join(c.text for c in result.content if c.type == "text")


def test_the_official_client_with_dpop_auth_gets_granted_tools_and_typed_refusals(sc):
    async def go():
        async with remit.mcp.connect(sc.url, sc.root_chain, key(sc, "planner")) as session:
            assert [t.name for t in (await session.list_tools()).tools] == ["read_file"]
            result = await session.call_tool("read_file", {"path": str(sc.files / "notes.txt")})
            assert "meeting at noon" in text(result)
            sc.receipt_ids.append(result.meta["receipt_id"])
            outcomes = {}
            for name, tool, args in (
                ("outside", "read_file", {"path": str(sc.root / "hr" / "salaries.csv")}),
                ("ungranted", "write_file", {"path": str(sc.files / "x.txt"), "content": "x"}),
                ("ssn", "read_file", {"path": f"{sc.files}/customer {SSN}.txt"}),
            ):
                with pytest.raises(remit.Refusal) as caught:
                    await session.call_tool(tool, args)
                outcomes[name] = caught.value
            return outcomes

    outcomes = run(go)
    # A granted tool called outside its argument constraint is a deny naming
    # the constraint; insufficient scope is kept for a tool not granted.
    assert isinstance(outcomes["outside"], Denied) and not isinstance(outcomes["outside"], InsufficientScope)
    assert "path" in outcomes["outside"].reason
    assert isinstance(outcomes["ungranted"], InsufficientScope)
    assert isinstance(outcomes["ssn"], Denied) and not isinstance(outcomes["ssn"], InsufficientScope)
    for refusal in outcomes.values():
        assert isinstance(refusal.receipt_id, int), refusal.data
        assert isinstance(refusal.__cause__, MCPError)
        assert sc.receipt(refusal.receipt_id)["kind"] == "deny"
        sc.receipt_ids.append(refusal.receipt_id)
    assert not (sc.files / "x.txt").exists()
    sc.early_checkpoint = sealed_checkpoint(sc, max(sc.receipt_ids)).note


def test_dpop_auth_plugs_into_the_plain_sdk_session(sc):
    auth = remit.DPoPAuth(sc.root_chain, Key.load(key(sc, "planner")))

    async def go():
        async with http_session(sc.url, auth) as session:
            return await session.call_tool("read_file", {"path": str(sc.files / "deploy.env")})

    result = run(go)
    body = text(result)
    assert "region = eu-west-1" in body and SECRET not in body
    sc.receipt_ids.append(result.meta["receipt_id"])


def test_a_key_that_is_not_the_holders_is_refused_before_any_request(sc):
    with pytest.raises(remit.InvalidKey) as caught:
        remit.DPoPAuth(sc.root_chain, Key.load(key(sc, "reader")))
    assert caught.value.rule == "not_holder"


def test_a_sub_agent_delegated_in_python_calls_through_the_gateway(sc):
    chain = remit.Chain.parse(sc.root_chain).delegate(
        Key.load(key(sc, "planner")), Key.load(key(sc, "reader")), "reader", tools=["fs/read_file"], ttl=300,
    )

    async def go():
        async with remit.mcp.connect(sc.url, chain, key(sc, "reader")) as session:
            ok = await session.call_tool("read_file", {"path": str(sc.files / "notes.txt")})
            with pytest.raises(Denied) as caught:
                await session.call_tool("read_file", {"path": str(sc.root / "hr" / "salaries.csv")})
            return ok, caught.value

    ok, refused = run(go)
    actors = sc.receipt(ok.meta["receipt_id"])["actors"]
    assert [a["id"] for a in actors] == ["alice", "planner", "reader"]
    sc.receipt_ids += [ok.meta["receipt_id"], refused.receipt_id]


def leaves(group: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(group, BaseExceptionGroup):
        return [leaf for inner in group.exceptions for leaf in leaves(inner)]
    return [group]


def test_credentials_the_gateway_refuses_raise_unauthenticated_without_a_receipt_each(sc):
    planner = Key.load(key(sc, "planner"))
    now = int(time.time())
    foreign = mint(Key.generate(kid="not-the-issuer"), planner, iat=now, nbf=now, exp=now + 600)

    async def foreign_root():
        async with remit.mcp.connect(sc.url, foreign, planner):
            pass

    with pytest.raises(BaseExceptionGroup) as caught:
        run(foreign_root)
    [refused] = [e for e in leaves(caught.value) if isinstance(e, remit.Unauthenticated)]
    assert refused.rule == "gw-unauthenticated" and refused.error, refused.challenge
    # Unauthenticated refusals are counted and summarized, never one
    # receipt each (a caller without credentials must not grow the log).
    assert refused.receipt_id is None

    chain = remit.Chain.parse(sc.root_chain).delegate(
        planner, Key.load(key(sc, "reader")), "reader", tools=["fs/read_file"], ttl=300,
    )

    async def revoked_mid_session():
        async with remit.mcp.connect(sc.url, chain, key(sc, "reader")) as session:
            await session.call_tool("read_file", {"path": str(sc.files / "notes.txt")})
            sc.server.run("revoke", "--subtree", chain.jti)
            with pytest.raises(remit.Unauthenticated) as caught:
                await session.call_tool("read_file", {"path": str(sc.files / "notes.txt")})
            return caught.value

    refused = run(revoked_mid_session)
    assert refused.rule == "gw-unauthenticated" and "revoked" in refused.reason, refused.reason
    assert refused.receipt_id is None


def decide_later(sc, verb: str, delay: float = 1.5):
    """A human deciding the pending approval from another thread."""

    def decide():
        time.sleep(delay)
        pending = sc.server.admin("GET", "/v1/approvals")["approvals"]
        assert pending, "nothing is pending"
        sc.server.admin("POST", f"/v1/approvals/{pending[0]['id']}/{verb}", {"by": "bob"})

    thread = threading.Thread(target=decide)
    thread.start()
    return thread


def test_a_held_call_waits_for_the_human_and_is_released_once(sc):
    sc.server.admin("PATCH", "/v1/servers/fs/tools/read_file", {"risk": "high"})
    args = {"path": str(sc.files / "notes.txt")}

    async def go():
        async with remit.mcp.connect(sc.url, sc.root_chain, key(sc, "planner")) as session:
            with pytest.raises(ApprovalRequired) as caught:
                await session.call_tool("read_file", args)
            held = caught.value
            human = decide_later(sc, "approve")
            result = await held.wait(timeout=60, interval=0.5)
            human.join()
            with pytest.raises(Denied) as again:
                await session.call_tool("read_file", args)
            return held, result, again.value

    held, result, again = run(go)
    assert held.approval_id and held.receipt_id is not None
    assert sc.receipt(held.receipt_id)["kind"] == "escalate"
    assert "meeting at noon" in text(result)
    assert again.rule == "gw-approval-used", again.policy_ids
    sc.receipt_ids += [held.receipt_id, result.meta["receipt_id"], again.receipt_id]


def test_a_held_call_a_human_rejects_raises_from_wait(sc):
    args = {"path": str(sc.files / "deploy.env")}

    async def go():
        async with remit.mcp.connect(sc.url, sc.root_chain, key(sc, "planner")) as session:
            with pytest.raises(ApprovalRequired) as caught:
                await session.call_tool("read_file", args)
            human = decide_later(sc, "reject")
            with pytest.raises(Denied) as rejected:
                await caught.value.wait(timeout=60, interval=0.5)
            human.join()
            return rejected.value

    rejected = run(go)
    assert rejected.rule == "gw-approval-rejected"
    sc.server.admin("PATCH", "/v1/servers/fs/tools/read_file", {"risk": "low"})


# --- the auditor's side: receipts remit serve wrote, verified in Python ---


@pytest.fixture(scope="module")
def receipt_keys(sc) -> Jwks:
    return Jwks.from_json(sc.server.run("keys", "jwks", str(sc.server.data / "receipt.jwk")).stdout)


def leaf(log: Path, index: int) -> str:
    return log.joinpath("receipts.jsonl").read_bytes().split(b"\n")[index].decode()


def sealed_checkpoint(sc, covering: int) -> remit.Checkpoint:
    """The log's signed checkpoint once it covers receipt `covering`."""
    note_key = (sc.log / "note.pub").read_text()
    deadline = time.time() + 10
    while True:
        cp = remit.verify_checkpoint((sc.log / "checkpoint").read_text(), note_key)
        if cp.size > covering or time.time() > deadline:
            return cp
        time.sleep(0.1)


def test_every_receipt_of_these_calls_verifies_and_is_in_the_signed_tree(sc, receipt_keys):
    assert len(sc.receipt_ids) >= 8
    cp = sealed_checkpoint(sc, max(sc.receipt_ids))
    assert cp.size > max(sc.receipt_ids)
    for index in sc.receipt_ids:
        receipt = remit.verify_receipt(leaf(sc.log, index), receipt_keys)
        assert receipt.index == index
        assert receipt.kind == sc.receipt(index)["kind"]
        assert receipt.actors[0] == ("user", "alice")
        # The proof the CLI prints and the one the binding computes both hold.
        cli = json.loads(sc.server.run("audit", "prove", "--log", str(sc.log), "--index", str(index)).stdout)
        ours = remit.inclusion_proof(sc.log, index)
        assert ours["leaf_hash"] == cli["leaf_hash"] == receipt.leaf_hash
        at = remit.verify_checkpoint(cli["checkpoint"], (sc.log / "note.pub").read_text())
        remit.verify_inclusion_proof(leaf(sc.log, index), index, cli["proof"], at)
        remit.verify_inclusion_proof(leaf(sc.log, index), index, ours["proof"], at)
        with pytest.raises(AuditFailed) as caught:
            remit.verify_inclusion_proof(leaf(sc.log, index - 1), index, cli["proof"], at)
        assert caught.value.code == "inclusion"


def test_a_receipt_signed_by_another_key_or_altered_is_refused(sc, receipt_keys):
    index = sc.receipt_ids[1]
    original = leaf(sc.log, index)
    with pytest.raises(AuditFailed) as caught:
        remit.verify_receipt(original, Jwks.from_json(Key.generate(kid=json.loads(
            sc.server.run("keys", "jwks", str(sc.server.data / "receipt.jwk")).stdout)["keys"][0]["kid"]).jwks()))
    assert caught.value.code == "bad_signature"
    with pytest.raises(AuditFailed) as caught:
        remit.verify_receipt(original.replace('"kind":"deny"', '"kind":"allow"'), receipt_keys)
    assert caught.value.code == "bad_signature"
    with pytest.raises(AuditFailed) as caught:
        remit.verify_receipt(original.replace('{"receipt":', '{ "receipt":', 1), receipt_keys)
    assert caught.value.code == "not_canonical"


def test_the_whole_log_audits_in_python_as_the_cli_audits_it(sc, receipt_keys, tmp_path):
    note_key = (sc.log / "note.pub").read_text()
    jwks_file = sc.root / "sdk-receipt-jwks.json"
    jwks_file.write_text(sc.server.run("keys", "jwks", str(sc.server.data / "receipt.jwk")).stdout)
    report = remit.audit_log(sc.log, receipt_keys, note_key=note_key, earlier=sc.early_checkpoint, receipts=True)
    assert report.ok and report.note_key_pinned and report.size == len(report.receipts)
    assert [r.index for r in report.receipts] == list(range(report.size))
    assert {r.kind for r in report.receipts} >= {"allow", "deny", "escalate"}
    assert report.earlier_size == remit.verify_checkpoint(sc.early_checkpoint, note_key).size
    cli = json.loads(sc.server.run("audit", "verify", "--log", str(sc.log), "--jwks", str(jwks_file),
                                   "--note-pub", str(sc.log / "note.pub"), "--json").stdout)
    assert cli["ok"] and cli["size"] >= report.size
    server = remit.audit.audit_server(sc.server.url, sc.server.admin_token, jwks=receipt_keys, note_key=note_key)
    assert server.size >= report.size

    # Tampering with one receipt: the binding and the CLI name the same index and code.
    copy = tmp_path / "log"
    shutil.copytree(sc.log, copy)
    index = sc.receipt_ids[1]
    lines = copy.joinpath("receipts.jsonl").read_bytes().split(b"\n")
    lines[index] = lines[index].replace(b'"kind":"deny"', b'"kind":"allow"')
    copy.joinpath("receipts.jsonl").write_bytes(b"\n".join(lines))
    with pytest.raises(AuditFailed) as caught:
        remit.audit_log(copy, receipt_keys, note_key=note_key)
    out = sc.server.run("audit", "verify", "--log", str(copy), "--jwks", str(jwks_file),
                        "--note-pub", str(copy / "note.pub"), "--json", expect=1)
    verdict = json.loads(out.stdout)
    assert (caught.value.code, caught.value.index) == (verdict["code"], verdict["index"]) == ("bad_signature", index)

    # Leaves cut below the signed checkpoint: truncation.
    with pytest.raises(AuditFailed) as caught:
        remit.audit_leaves([leaf(sc.log, 0)], receipt_keys, (sc.log / "checkpoint").read_text(), note_key)
    assert caught.value.code == "truncated"


def test_a_checkpoint_kept_earlier_is_extended_not_forked(sc):
    note_key = (sc.log / "note.pub").read_text()
    early = remit.verify_checkpoint(sc.early_checkpoint, note_key)
    out = json.loads(sc.server.run("audit", "consistency", "--log", str(sc.log), "--from", str(early.size)).stdout)
    current = remit.verify_checkpoint(out["checkpoint"], note_key)
    remit.verify_consistency_proof(early, current, out["proof"])
    with pytest.raises(AuditFailed) as caught:
        remit.verify_consistency_proof(early, current, out["proof"][1:] or ["00" * 32])
    assert caught.value.code == "inconsistent"
    with pytest.raises(AuditFailed) as caught:
        remit.verify_checkpoint(sc.early_checkpoint.replace("\n" + str(early.size) + "\n", "\n" + str(early.size + 1) + "\n"), note_key)
    assert caught.value.code == "bad_checkpoint"
