"""Helpers for the gateway end-to-end tests: a real `remit serve`, the
official MCP servers from tests/node, DPoP proofs signed with PyJWT, and
sessions of the official MCP Python SDK over streamable HTTP or stdio.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import time
import uuid

import anyio
import pytest
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import jwt
from jwt.algorithms import ECAlgorithm
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

REPO = Path(__file__).resolve().parents[2]
NODE_BIN = REPO / "tests" / "node" / "node_modules" / ".bin"
# An AWS secret access key (the documented example value) the scanner must catch.
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def leaf(chain: str) -> str:
    return chain.split("~")[-1]


def claims(compact: str) -> dict:
    return b64url_json(compact.split(".")[1])


def node_server(name: str) -> Path:
    path = NODE_BIN / name
    if not path.exists():
        raise AssertionError(f"{path} is missing: run scripts/test-deps (npm ci in tests/node)")
    return path


class DpopAuth(httpx2.Auth):
    """`Authorization: DPoP <chain>` and a fresh proof per request, signed
    with the holder's private JWK (RFC 9449 shape: jti, htm, htu, iat, ath).
    With `bearer=True` it sends `Authorization: Bearer <chain>` instead."""

    def __init__(self, chain: str, private_jwk: dict, htu: str, bearer: bool = False):
        self.chain = chain
        self.htu = htu
        self.bearer = bearer
        self.key = ECAlgorithm.from_jwk(json.dumps(private_jwk))
        self.public = {k: private_jwk[k] for k in ("kty", "crv", "x", "y")}
        self.ath = b64url(hashlib.sha256(leaf(chain).encode()).digest())

    def proof(self, method: str) -> str:
        return jwt.encode(
            {
                "jti": uuid.uuid4().hex,
                "htm": method,
                "htu": self.htu,
                "iat": int(time.time()),
                "ath": self.ath,
            },
            self.key,
            algorithm="ES256",
            headers={"typ": "dpop+jwt", "jwk": self.public},
        )

    def auth_flow(self, request):
        if self.bearer:
            request.headers["Authorization"] = f"Bearer {self.chain}"
        else:
            request.headers["Authorization"] = f"DPoP {self.chain}"
            request.headers["DPoP"] = self.proof(request.method)
        yield request


@asynccontextmanager
async def http_session(url: str, auth: httpx2.Auth):
    """An initialized MCP client session over streamable HTTP."""
    async with create_mcp_http_client(auth=auth) as client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


@asynccontextmanager
async def stdio_session(command: str, args: list[str], cwd: Path | None = None):
    """An initialized MCP client session over stdio (the SDK spawns `command`)."""
    params = StdioServerParameters(command=command, args=args, cwd=cwd)
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


class RemitServer:
    """A real `remit serve` on an ephemeral port with a fresh data directory."""

    def __init__(self, binary: Path, workdir: Path, extra: tuple[str, ...] = ()):
        self.binary = binary
        self.workdir = workdir
        self.data = workdir / "data"
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--data", str(self.data), "--listen", "127.0.0.1:0", *extra],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        self.admin_token = None
        self.url = None
        lines = []
        deadline = time.time() + 60
        assert self.proc.stdout is not None
        while time.time() < deadline and (self.admin_token is None or self.url is None):
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if m := re.match(r"\s*listening on\s+(\S+)", line):
                self.url = m.group(1)
            if m := re.match(r"\s*export REMIT_ADMIN_TOKEN=(\S+)", line):
                self.admin_token = m.group(1)
        if self.admin_token is None or self.url is None:
            self.stop()
            raise AssertionError("remit serve did not start:\n" + "".join(lines))
        # Keep the pipe drained so the server never blocks writing to it.
        import threading

        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def env(self) -> dict:
        return {**os.environ, "REMIT_SERVER": self.url, "REMIT_ADMIN_TOKEN": self.admin_token}

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(self.binary), *args],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env(),
        )
        assert proc.returncode == expect, (
            f"remit {' '.join(args)} exited {proc.returncode}, expected {expect}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
        return proc

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        response = httpx2.request(
            method,
            self.url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
        )
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def receipts(self, log: Path | None = None) -> list[dict]:
        """Every receipt in the log, as `remit audit show --json` prints them."""
        out = self.run("audit", "show", "--log", str(log or self.data / "log"), "--json")
        return [item["receipt"] for item in json.loads(out.stdout)]

    def receipt(self, index: int, log: Path | None = None) -> dict:
        for r in self.receipts(log):
            if r["index"] == index:
                return r
        raise AssertionError(f"no receipt {index}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def remit_bin() -> Path:
    value = os.environ.get("REMIT_BIN")
    if not value or not os.access(value, os.X_OK):
        pytest.fail("REMIT_BIN must name the remit binary (scripts/test sets it)", pytrace=False)
    return Path(value)


class Scenario:
    """The filesystem scenario, reached over `transport`: "http" (the
    gateway's streamable HTTP endpoint) or "wrap" (`remit wrap` launched by
    the SDK's stdio client, as an agent host would)."""

    def __init__(self, root: Path, transport: str, serve_args: tuple[str, ...] = ()):
        self.root = root
        self.transport = transport
        self.files = root / "files"
        self.files.mkdir()
        (self.files / "notes.txt").write_text("meeting at noon\n")
        (self.files / "deploy.env").write_text(f"aws_secret_access_key = {SECRET}\nregion = eu-west-1\n")
        (root / "hr").mkdir()
        (root / "hr" / "salaries.csv").write_text("alice,100\n")
        self.server = RemitServer(remit_bin(), root, serve_args)
        fs = node_server("mcp-server-filesystem")
        # The upstream may touch the whole scratch root: keeping the remit's
        # narrower scope is the gateway's job, not the server's.
        self.server.run("server", "add", "--id", "fs", "--url", f"stdio:{fs} {root}", "--clearance", "internal")
        self.server.run("server", "bless", "fs", "--risk", "low")
        for agent in ("planner", "reader"):
            self.server.run("keys", "generate", "--out", f"{agent}.jwk")
            self.server.run(
                "agent", "register", "--id", agent, "--jwk", f"{agent}.jwk",
                "--owner", "alice", "--risk-tier", "low",
            )
        answer = self.server.admin(
            "POST",
            "/v1/remits",
            {
                "agent": "planner",
                "sub": "alice",
                "grants": [{
                    "type": "remit_tool",
                    "tools": ["fs/read_file"],
                    "args": {"path": {"prefix": f"{self.files}/"}},
                }],
                "max_steps": 50,
                "ttl_secs": 600,
            },
        )
        self.root_chain = answer["remit"]
        self.url = f"{self.server.url}/mcp/fs"
        self.fs = fs
        self.delegated = None

    @property
    def log(self) -> Path:
        """The receipt log the calls of this transport go to."""
        if self.transport == "wrap":
            return self.server.data / "wrap" / "fs" / "log"
        return self.server.data / "log"

    def session(self, chain: str, agent: str):
        if self.transport == "http":
            return http_session(self.url, self.auth(chain, agent))
        remit_file = self.root / f"{agent}-{uuid.uuid4().hex}.remit"
        remit_file.write_text(chain)
        return stdio_session(
            str(self.server.binary),
            [
                "wrap", "--remit", str(remit_file), "--key", str(self.root / f"{agent}.jwk"),
                "--data", str(self.server.data), "--server", "fs",
                "--public-url", self.server.url, "--", str(self.fs), str(self.root),
            ],
            cwd=self.root,
        )

    def receipt(self, index: int) -> dict:
        return self.server.receipt(index, self.log)

    def key(self, agent: str) -> dict:
        return json.loads((self.root / f"{agent}.jwk").read_text())

    def auth(self, chain: str, agent: str) -> DpopAuth:
        return DpopAuth(chain, self.key(agent), self.url)

    def call(self, chain: str, agent: str, tool: str, args: dict):
        """Calls `tool` in a fresh session; returns the result or the MCPError."""

        async def go():
            with anyio.fail_after(60):
                async with self.session(chain, agent) as session:
                    try:
                        return await session.call_tool(tool, args)
                    except MCPError as error:
                        return error

        return anyio.run(go)

    def attempt(self, chain: str, agent: str, tool: str, args: dict):
        """Like `call`, but a session that cannot even start is returned as
        its exception instead of raised."""
        try:
            return self.call(chain, agent, tool, args)
        except Exception as error:  # noqa: BLE001 - any failure is the answer here
            return error

    def tools(self, chain: str, agent: str) -> list[str]:
        async def go():
            with anyio.fail_after(60):
                async with self.session(chain, agent) as session:
                    return [t.name for t in (await session.list_tools()).tools]

        return anyio.run(go)
