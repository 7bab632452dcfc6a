"""Issue 32: an auditor reconstructs a decision with standard tools only.

The README section "Auditing without Remit" carries a Python recipe
(PyJWT, `cryptography`, `hashlib`); this test extracts it verbatim and
runs it against a log the MCP gateway wrote for the official Python MCP
client (streamable HTTP, official filesystem server upstream): one
receipt, its chain, its inclusion proof, the checkpoint and the policy
hash. Then it tampers with the evidence and expects the recipe to fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import httpx2
import pytest

from gateway_helpers import REPO, Scenario

RECIPE = re.search(
    r"<!-- audit-recipe -->\n```python\n(.*?)```", (REPO / "README.md").read_text(), re.S
).group(1)


@pytest.fixture(scope="module")
def evidence(tmp_path_factory):
    """A gateway log holding one allowed call, and an auditor's folder."""
    root = tmp_path_factory.mktemp("audit")
    # Bearer use refused: a DPoP-bound chain is useless without its
    # holder's key, so the gateway records it in the log at once.
    config = root / "remit.toml"
    config.write_text("[gateway]\nallow_bearer = false\n")
    sc = Scenario(root, "http", ("--config", str(config)))
    try:
        result = sc.call(sc.root_chain, "planner", "read_file", {"path": str(sc.files / "notes.txt")})
        assert not getattr(result, "is_error", True), result
        index = result.meta["receipt_id"]
        head = sc.server.admin("GET", "/v1/checkpoints/latest")
        issuer = httpx2.get(sc.server.url + "/.well-known/jwks.json", timeout=30).json()
    finally:
        sc.server.stop()  # a clean stop seals the checkpoint over every receipt
    folder = root / "auditor"
    folder.mkdir()
    shutil.copytree(sc.server.data / "log", folder / "log")
    shutil.copytree(sc.server.data / "policy", folder / "policy")
    (folder / "receipt-jwks.json").write_text(json.dumps(head["receipt_jwks"]))
    (folder / "issuer-jwks.json").write_text(json.dumps(issuer))
    (folder / "note.pub").write_text(head["note_verifier"] + "\n")
    proof = sc.server.run("audit", "prove", "--log", str(folder / "log"), "--index", str(index))
    (folder / "proof.json").write_text(proof.stdout)
    return sc, folder, index


def run_recipe(folder) -> subprocess.CompletedProcess:
    # From a file, so a failed assertion shows its line.
    (folder / "recipe.py").write_text(RECIPE)
    return subprocess.run(
        [sys.executable, "recipe.py"], cwd=folder, capture_output=True, text=True, timeout=60
    )


def test_the_readme_recipe_reconstructs_a_gateway_decision(evidence):
    sc, folder, index = evidence
    out = run_recipe(folder)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["receipt"] == index
    assert found["user"] == "alice"
    assert found["agents"] == ["planner"]
    assert found["decision"] == "allow"
    assert found["tool"] == "mcp:fs/read_file"
    assert found["policy_version"].startswith("sha256:")
    assert isinstance(found["revocation_epoch"], int)
    assert found["call_id"]
    assert found["grants"][0]["tools"] == ["fs/read_file"]
    # And Remit's own verifier agrees, integrity and meaning.
    verified = sc.server.run("audit", "verify", "--log", str(folder / "log"),
                             "--jwks", str(folder / "receipt-jwks.json"),
                             "--note-pub", str(folder / "note.pub"), "--json")
    assert json.loads(verified.stdout)["violations"] == []


def copy_of(folder, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def test_an_edited_receipt_fails_the_recipe(evidence, tmp_path):
    _, folder, index = evidence
    bad = copy_of(folder, tmp_path)
    leaves = (bad / "log" / "receipts.jsonl").read_text().splitlines()
    leaves[index] = leaves[index].replace('"effect":"allow"', '"effect":"deny"')
    (bad / "log" / "receipts.jsonl").write_text("\n".join(leaves) + "\n")
    out = run_recipe(bad)
    assert out.returncode != 0 and "InvalidSignatureError" in out.stderr, out.stderr


def test_a_forged_checkpoint_fails_the_recipe(evidence, tmp_path):
    _, folder, _ = evidence
    bad = copy_of(folder, tmp_path)
    note = (bad / "log" / "checkpoint").read_text().split("\n")
    note[1] = str(int(note[1]) + 1)
    (bad / "log" / "checkpoint").write_text("\n".join(note))
    out = run_recipe(bad)
    assert out.returncode != 0 and "InvalidSignature" in out.stderr, out.stderr


def test_an_edited_policy_folder_fails_the_recipe(evidence, tmp_path):
    _, folder, _ = evidence
    bad = copy_of(folder, tmp_path)
    (bad / "policy" / "overrides" / "extra.cedar").write_text("// a comment is a new version\n")
    out = run_recipe(bad)
    assert out.returncode != 0 and "policy_version" in out.stderr, out.stderr


def test_a_swapped_chain_link_fails_the_recipe(evidence, tmp_path):
    _, folder, _ = evidence
    bad = copy_of(folder, tmp_path)
    path = bad / "log" / "receipts.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    chain = next(r for r in records if r["receipt"]["kind"] == "chain")
    link = chain["receipt"]["links"][0]
    head, payload, sig = link.split(".")
    forged = f"{head}.{payload}.{sig[:-4]}AAAA"
    path.write_text(path.read_text().replace(link, forged))
    out = run_recipe(bad)
    # The record no longer hashes to the reference the decision names (nor,
    # when it sits just before the decision, to the decision's link to it).
    assert out.returncode != 0, out.stderr
    assert out.stderr.rstrip().endswith("AssertionError"), out.stderr
    assert "hexdigest" in out.stderr or '"prev"' in out.stderr, out.stderr
