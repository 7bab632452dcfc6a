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
from remit.errors import refusal_from_error

__all__ = ["RemitSession", "connect", "refusal_from_mcp_error"]


def refusal_from_mcp_error(error: MCPError, retry=None):
    """The typed refusal for an `MCPError` the gateway sent, or `None`."""
    return refusal_from_error(error.code, error.message, error.data, retry)


class RemitSession(ClientSession):
    """The SDK's `ClientSession`, raising the gateway's refusals as typed
    exceptions (the original `MCPError` is their `__cause__`)."""

    async def _refusing(self, send):
        """Sends with `send`; a refusal raises typed, its `wait()` sending again."""
        try:
            return await send()
        except MCPError as error:

            async def again():
                return await self._refusing(send)

            refusal = refusal_from_mcp_error(error, again)
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
    request carrying the chain and a fresh DPoP proof signed by `key`."""
    auth = DPoPAuth(chain, key, bearer=bearer)
    async with create_mcp_http_client(headers=headers, timeout=timeout, auth=auth) as client:
        async with streamable_http_client(url, http_client=client) as (read, write):
            async with RemitSession(read, write) as session:
                await session.initialize()
                yield session
