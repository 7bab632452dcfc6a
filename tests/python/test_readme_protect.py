"""The README's first screen, run as a newcomer would run it (issue 31).

The commands between `<!-- protect-flow:begin -->` and `<!-- protect-flow:end -->`
are extracted verbatim and run one by one in a shell, from an empty home
(so an empty data directory), with the real `remit` binary first on PATH,
the official filesystem server through `npx` and the official MCP Python
SDK. At most five commands, none failing, the allowed call answered and the
denied one refused. Then the "Next:" hints `remit protect` and `remit serve`
print are run as printed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2
from conftest import _remit_bin
from gateway_helpers import http_session

REPO = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- protect-flow:begin -->", "<!-- protect-flow:end -->"


def readme_block() -> str:
    text = (REPO / "README.md").read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "the README marks its flow once"
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    fence = re.search(r"```sh\n(.*?)```", block, re.S)
    assert fence, "the marked block holds a ```sh fence"
    return fence.group(1)


def commands(block: str) -> list[str]:
    """Shell commands: a line, its `\\` continuations, or a here-document to its end."""
    out, lines, i = [], block.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        command = [line]
        heredoc = re.search(r"<<-?'?(\w+)'?\s*$", line)
        while command[-1].endswith("\\") and i < len(lines):
            command.append(lines[i])
            i += 1
        if heredoc:
            while i < len(lines):
                command.append(lines[i])
                i += 1
                if command[-1].strip() == heredoc.group(1):
                    break
        out.append("\n".join(command))
    return out


def newcomer_env(home: Path) -> dict:
    """A fresh home with `remit` on PATH; npm reuses the machine's package
    cache (what `npm ci` in tests/node filled), as a returning user's would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMIT_")}
    env.pop("XDG_DATA_HOME", None)
    real_home = Path(os.environ.get("HOME", "/root"))
    env.setdefault("npm_config_cache", str(real_home / ".npm"))
    env["npm_config_prefer_offline"] = "true"
    env["npm_config_update_notifier"] = "false"
    env["HOME"] = str(home)
    env["PATH"] = f"{_remit_bin().parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(command: str, env: dict, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, time.monotonic() - start


def next_hints(stdout: str) -> list[str]:
    """The indented command lines printed after a line starting `Next:` or `Then`."""
    lines, out, on = stdout.splitlines(), [], False
    for line in lines:
        if line.startswith(("Next:", "Then")):
            on = True
        elif on and line.startswith("  "):
            out.append(line.strip())
        elif on and line.strip():
            on = line.startswith(("Next:", "Then"))
    return out


def test_the_readme_first_screen_protects_the_filesystem_server_in_at_most_five_commands(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = newcomer_env(home)
    steps = commands(readme_block())
    assert 1 <= len(steps) <= 5, f"{len(steps)} commands: {steps}"
    data = home / ".local" / "share" / "remit"
    assert not data.exists(), "starts from an empty data directory"

    outputs, total = [], 0.0
    for step in steps:
        proc, took = run(step, env, REPO)
        total += took
        assert proc.returncode == 0, f"README command failed ({proc.returncode}):\n{step}\n{proc.stdout}\n{proc.stderr}"
        outputs.append(proc.stdout)
    print(f"\nREADME protect flow: {len(steps)} commands in {total:.1f} s")

    text = "\n".join(outputs)
    allowed = [l for l in text.splitlines() if l.startswith("allowed:")]
    denied = [l for l in text.splitlines() if l.startswith("denied:")]
    assert allowed == ["allowed: standup at 10"], text
    assert len(denied) == 1, text
    assert "salary: 1M" not in text, "the refused file's content leaked"
    # The refusal says why, naming the resource rule, not a generic failure.
    assert re.search(r"resource|outside|not cover|scope", denied[0], re.I), denied[0]

    # The receipts: one allow, one deny, in the wrap's log.
    leaves = (data / "wrap" / "notes" / "log" / "receipts.jsonl").read_text().splitlines()
    decisions = [json.loads(l).get("receipt", json.loads(l)).get("decision") for l in leaves]
    assert "allow" in json.dumps(leaves) and "deny" in json.dumps(leaves), decisions

    # What protect printed: the client configuration and hints that work as printed.
    protect_out = next(o for o in outputs if '"mcpServers"' in o)
    config = json.loads(protect_out[protect_out.index("{") : protect_out.index("\n}\n") + 2])
    entry = config["mcpServers"]["notes"]
    assert Path(entry["command"]).is_absolute() and entry["args"] == ["wrap", "--server", "notes"]
    hints = next_hints(protect_out)
    assert hints and any(h.startswith("remit doctor") for h in hints), protect_out
    for hint in hints:
        proc, _ = run(hint, env, tmp_path)
        assert proc.returncode == 0, f"hint failed as printed: {hint}\n{proc.stdout}\n{proc.stderr}"

    # The doctor fails, naming the fix, when a key is readable by others.
    key = data / "issuer.jwk"
    key.chmod(0o644)
    proc, _ = run("remit doctor --no-upstreams", env, tmp_path)
    assert proc.returncode == 1 and f"chmod 600 {key}" in proc.stdout, proc.stdout
    key.chmod(0o600)
    proc, _ = run("remit doctor --json --no-upstreams", env, tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert json.loads(proc.stdout)["result"] in ("OK", "WARN")

    # Re-running is idempotent and says so.
    protect_step = next(s for s in steps if s.startswith("remit protect"))
    again, _ = run(protect_step.replace("remit protect", "remit protect --json", 1), env, REPO)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["changed"] == [], summary["changed"]
    assert "notes/read_text_file" in summary["allowed"]
    assert "notes/read_multiple_files" not in summary["allowed"], "no resource argument: left out"
    assert "read_multiple_files" in summary["left_out"]

    # Narrowing the scope issues a new remit and revokes the wider one at once.
    wider = tmp_path / "wider.remit"
    wider.write_text((data / "protect" / "notes" / "remit").read_text())
    narrower = protect_step.replace("--allow 'read_*' ", "")
    assert narrower != protect_step
    proc, _ = run(narrower.replace("remit protect", "remit protect --json", 1), env, REPO)
    assert proc.returncode == 0, proc.stderr
    changed = json.loads(proc.stdout)["changed"]
    assert any(c.startswith("revoked the remit it replaces") for c in changed), changed
    proc = subprocess.run(
        ["remit", "wrap", "--server", "notes", "--remit", str(wider)],
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0 and "revoked" in proc.stderr, proc.stderr


class PastedHeaders(httpx2.Auth):
    """The headers an HTTP client was told to send, as pasted."""

    def __init__(self, headers: dict):
        self.headers = headers

    def auth_flow(self, request):
        request.headers.update(self.headers)
        yield request


async def read_over_http(url: str, headers: dict, path: str) -> str:
    """Reads `path` through the gateway; retries while the running server
    has not yet learned of the agent protect registered (its 5 s refresh)."""
    last = None
    for _ in range(20):
        try:
            async with http_session(url, PastedHeaders(headers)) as session:
                result = await session.call_tool("read_text_file", {"path": path})
                return result.content[0].text
        except Exception as error:  # noqa: BLE001 - retried, then reported
            last = error
            await anyio.sleep(0.5)
    raise AssertionError(f"the pasted HTTP configuration did not work: {last!r}")


def test_the_serve_hints_work_as_printed_and_wrap_finds_the_servers_url(tmp_path):
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (work / "hello.txt").write_text("hello from the hint\n")
    env = newcomer_env(home)
    serve = subprocess.Popen(
        ["remit", "serve", "--listen", "127.0.0.1:0"],
        cwd=work,
        env={**env, "RUST_LOG": "warn"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = serve.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.strip() == "remit server list":
                break
        printed = "".join(lines)
        hints = next_hints(printed)
        assert hints and hints[-1] == "remit server list", printed
        assert any(h.startswith("remit protect") for h in hints), printed
        # The hints run in one shell (their exports carry over), in the user's directory.
        proc, _ = run("set -e\n" + "\n".join(hints), env, work)
        assert proc.returncode == 0, f"serve hints failed as printed:\n{printed}\n{proc.stdout}\n{proc.stderr}"
        assert "files" in proc.stdout

        # The remit protect issued names this server (an ephemeral port) as
        # issuer; the wrap must find that URL in the data directory.
        record = json.loads((home / ".local/share/remit/serve.json").read_text())
        assert record["public_url"] != "http://127.0.0.1:8080"
        target = work / "hello.txt"
        script = f"""
import asyncio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main():
    wrap = StdioServerParameters(command="remit", args=["wrap", "--server", "files"])
    async with stdio_client(wrap) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool("read_text_file", {{"path": {str(target.resolve())!r}}})
        print("read:", result.content[0].text)

asyncio.run(main())
"""
        proc = subprocess.run(
            [sys.executable, "-c", script],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "read: hello from the hint" in proc.stdout

        # The HTTP configuration protect prints works as pasted: the URL and
        # the Authorization header, with the official SDK over streamable HTTP.
        hint = next(h for h in hints if h.startswith("remit protect"))
        proc, _ = run(hint.replace("remit protect", "remit protect --json", 1), env, work)
        assert proc.returncode == 0, proc.stderr
        http = json.loads(proc.stdout)["client"]["http"]
        assert http["url"] == record["public_url"] + "/mcp/files"
        text = anyio.run(read_over_http, http["url"], http["headers"], str(target.resolve()))
        assert text == "hello from the hint\n"
    finally:
        serve.terminate()
        serve.wait(timeout=30)
