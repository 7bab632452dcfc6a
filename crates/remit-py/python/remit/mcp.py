"""MCP through the Remit gateway with the official `mcp` SDK.

    async with remit.mcp.connect(url, chain, key) as session:
        result = await session.call_tool("read_file", {"path": "/data/q3.txt"})

`connect` yields an initialized `RemitSession`, a subclass of the SDK's
`ClientSession`: everything the SDK offers works unchanged, and a refusal
of the gateway is raised as a typed `remit.errors.Refusal` (`Denied`,
`InsufficientScope`, `ApprovalRequired` with `wait()`, ...) instead of a
bare `MCPError`.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Optional

from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from remit.auth import ChainLike, DPoPAuth, KeyLike
from remit.errors import DENIED, Unauthenticated, refusal_from_error

__all__ = ["RemitSession", "connect", "refusal_from_mcp_error"]

# What the SDK turns a non-JSON-RPC HTTP failure (such as a 401) into.
_HTTP_FAILURE = -32603


class _Rejections:
    """Keeps the gateway's last 401 (a JSON-RPC error body with the
    refusal's receipt id, and a `WWW-Authenticate` challenge), which the
    SDK reports only as "Server returned an error response"."""

    def __init__(self):
        self.last: Optional[Unauthenticated] = None

    async def on_response(self, response) -> None:
        if response.status_code != 401:
            return
        await response.aread()
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        self.last = Unauthenticated(
            error.get("code", DENIED),
            error.get("message") or "not authenticated",
            error.get("data"),
            challenge=response.headers.get("www-authenticate"),
        )

    def take(self) -> Optional[Unauthenticated]:
        last, self.last = self.last, None
        return last


def refusal_from_mcp_error(error: MCPError, retry=None):
    """The typed refusal for an `MCPError` the gateway sent, or `None`."""
    return refusal_from_error(error.code, error.message, error.data, retry)


class RemitSession(ClientSession):
    """The SDK's `ClientSession`, raising the gateway's refusals as typed
    exceptions (the original `MCPError` is their `__cause__`), a 401 as
    `Unauthenticated` when the session was opened by `connect`."""

    _rejections: Optional[_Rejections] = None

    def _unauthenticated(self, error: MCPError) -> Optional[Unauthenticated]:
        """The 401 behind `error`: the SDK reports it as a generic HTTP
        failure, or (the gateway's 401 body being a JSON-RPC error with
        `id: null`) as that error, whose rule is `gw-unauthenticated`."""
        if self._rejections is None:
            return None
        rules = error.data.get("policy_ids") if isinstance(error.data, dict) else None
        refused = isinstance(rules, list) and "gw-unauthenticated" in rules
        if error.code != _HTTP_FAILURE and not refused:
            return None
        return self._rejections.take()

    async def _refusing(self, send):
        """Sends with `send`; a refusal raises typed, its `wait()` sending again."""
        try:
            return await send()
        except MCPError as error:

            async def again():
                return await self._refusing(send)

            refusal = self._unauthenticated(error) or refusal_from_mcp_error(error, again)
            if refusal is None:
                raise
            raise refusal from error

    async def call_tool(self, name: str, arguments: Optional[dict[str, Any]] = None, *args: Any, **kwargs: Any):
        async def retry():
            return await ClientSession.call_tool(self, name, arguments, *args, **kwargs)

        return await self._refusing(retry)

    async def read_resource(self, uri: Any, *args: Any, **kwargs: Any):
        async def retry():
            return await ClientSession.read_resource(self, uri, *args, **kwargs)

        return await self._refusing(retry)

    async def get_prompt(self, name: str, *args: Any, **kwargs: Any):
        async def retry():
            return await ClientSession.get_prompt(self, name, *args, **kwargs)

        return await self._refusing(retry)


@asynccontextmanager
async def connect(
    url: str,
    chain: ChainLike,
    key: KeyLike,
    *,
    headers: Optional[dict[str, str]] = None,
    timeout: Any = None,
    bearer: bool = False,
) -> AsyncIterator[RemitSession]:
    """An initialized MCP session with the gateway endpoint `url`
    (`https://remit.example/mcp/<server>`) over streamable HTTP, every
    request carrying the chain and a fresh DPoP proof signed by `key`.
    Credentials the gateway refuses raise `Unauthenticated` (from
    `initialize`, inside the SDK's task group: catch it with
    `except* remit.Unauthenticated`)."""
    auth = DPoPAuth(chain, key, bearer=bearer)
    rejections = _Rejections()
    async with create_mcp_http_client(headers=headers, timeout=timeout, auth=auth) as client:
        client.event_hooks["response"].append(rejections.on_response)
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with RemitSession(read, write) as session:
                session._rejections = rejections
                try:
                    await session.initialize()
                except MCPError as error:
                    refused = session._unauthenticated(error)
                    if refused is None:
                        raise
                    raise refused from error
                yield session
