"""`DPoPAuth`: an `httpx` (and `httpx2`) auth that presents a remit.

Each request gets `Authorization: DPoP <chain>` and a fresh DPoP proof
(RFC 9449) signed by the holder key, bound to the request's method, URL
and the chain's leaf. Works with any client built on `httpx2` or `httpx`:
the official MCP SDK's streamable HTTP client, the OpenAI and Anthropic
SDKs, or your own.
"""

from __future__ import annotations

import os
from typing import Iterable, Union

from remit._native import Chain, Key

_BASES: tuple = ()
try:  # the MCP, OpenAI and Anthropic SDKs' HTTP client
    import httpx2 as _httpx2

    _BASES += (_httpx2.Auth,)
except ImportError:  # pragma: no cover
    pass
try:  # the original httpx, for clients still on it
    import httpx as _httpx

    _BASES += (_httpx.Auth,)
except ImportError:
    pass
if not _BASES:  # pragma: no cover
    _BASES = (object,)


ChainLike = Union[Chain, str]
KeyLike = Union[Key, dict, str, "os.PathLike[str]"]


def as_chain(chain: ChainLike) -> Chain:
    """A `Chain` from a `Chain` or chain text."""
    return chain if isinstance(chain, Chain) else Chain.parse(str(chain))


def as_key(key: KeyLike) -> Key:
    """A `Key` from a `Key`, a private JWK dict or JSON text, or a JWK file path."""
    if isinstance(key, Key):
        return key
    if isinstance(key, dict):
        return Key.from_jwk(key)
    if isinstance(key, str) and key.lstrip().startswith("{"):
        return Key.from_jwk(key)
    return Key.load(os.fspath(key))


class DPoPAuth(*_BASES):  # type: ignore[misc]
    """Adds `Authorization: DPoP <chain>` and a fresh `DPoP` proof to every
    request. `bearer=True` sends `Authorization: Bearer <chain>` without a
    proof (only where the gateway allows bearer use). `drop_headers` are
    removed from each request (the Anthropic helper drops `x-api-key`, so
    the chain travels once)."""

    requires_request_body = False
    requires_response_body = False

    def __init__(self, chain: ChainLike, key: KeyLike, *, bearer: bool = False, drop_headers: Iterable[str] = ()):
        self.chain = as_chain(chain)
        self.key = as_key(key)
        self.bearer = bearer
        self.drop_headers = tuple(drop_headers)
        self._text = self.chain.text
        if not bearer and self.key.thumbprint != self.chain.holder:
            from remit.errors import InvalidKey

            raise InvalidKey(
                f"key {self.key.thumbprint} is not the chain's holder key {self.chain.holder}: "
                "the gateway would refuse every proof it signs",
                "not_holder",
            )

    def proof(self, method: str, url: str) -> str:
        """A fresh proof for one request."""
        return self.key.sign_proof(self.chain, method, url)

    def apply(self, request):
        """Sets the headers on an `httpx`/`httpx2` request and returns it."""
        for name in self.drop_headers:
            request.headers.pop(name, None)
        if self.bearer:
            request.headers["Authorization"] = f"Bearer {self._text}"
        else:
            request.headers["Authorization"] = f"DPoP {self._text}"
            request.headers["DPoP"] = self.proof(request.method, str(request.url))
        return request

    def auth_flow(self, request):
        yield self.apply(request)

    def __call__(self, request):
        return self.apply(request)

    def __repr__(self) -> str:
        return f"DPoPAuth(agent={self.chain.agent!r}, bearer={self.bearer})"
