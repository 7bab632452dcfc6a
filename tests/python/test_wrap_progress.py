"""Progress through `remit wrap` (issue 22, item 10): the official Python
MCP client, over stdio, calls a tool that reports progress; the wrap relays
the upstream's `notifications/progress` under the client's own token, each
scanned (the upstream puts an AWS secret and an SSN in the message), before
the answer. Before the fix the wrap dropped them (only the HTTP gateway
relayed progress).
"""

from __future__ import annotations

import sys

import anyio
import pytest

from gateway_helpers import REPO, SECRET, RemitServer, remit_bin, stdio_session

LEAKY = REPO / "tests" / "upstream" / "leaky.py"
SSN = "536-22-8410"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("wrap-progress")
    srv = RemitServer(remit_bin(), root)
    srv.run("server", "add", "--id", "leaky", "--url", f"stdio:{sys.executable} {LEAKY}",
            "--clearance", "internal")
    srv.run("server", "bless", "leaky", "--risk", "low")
    srv.run("keys", "generate", "--out", "agent.jwk")
    srv.run("agent", "register", "--id", "agent", "--jwk", "agent.jwk", "--owner", "alice",
            "--risk-tier", "low")
    chain = srv.admin("POST", "/v1/remits", {
        "agent": "agent", "sub": "alice", "class": "INTERNAL", "max_steps": 10, "ttl_secs": 600,
        "grants": [{"type": "remit_tool", "tools": ["leaky/slow"]}],
    })["remit"]
    (root / "agent.remit").write_text(chain)
    yield srv, root
    srv.stop()


def test_progress_reaches_a_wrap_client_scanned_and_before_the_answer(server):
    srv, root = server
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async def go():
        with anyio.fail_after(60):
            async with stdio_session(
                str(srv.binary),
                ["wrap", "--remit", str(root / "agent.remit"), "--key", str(root / "agent.jwk"),
                 "--data", str(srv.data), "--server", "leaky", "--public-url", srv.url],
                cwd=root,
            ) as session:
                return await session.call_tool("slow", {}, progress_callback=on_progress)

    result = anyio.run(go)
    assert not result.is_error, result
    assert [c.text for c in result.content if c.type == "text"] == ["done"]
    # Both steps arrived, in order, before the answer returned.
    assert [p for p, _, _ in seen] == [1, 2], seen
    assert all(total == 2 for _, total, _ in seen), seen
    for _, _, message in seen:
        # Both are above the holder's INTERNAL class: redacted, never relayed.
        assert SECRET not in (message or "") and SSN not in (message or ""), message
