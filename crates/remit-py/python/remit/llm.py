"""The OpenAI and Anthropic SDKs pointed at Remit's LLM egress guard
(`/llm/{route}/v1/...`), which scans prompts before they leave and
answers before they return.

Two ways to present the remit:

- the remit as the API key (`key=None`): the SDK sends it as a bearer
  token (`Authorization: Bearer <chain>`; older Anthropic SDKs send
  `x-api-key`);
- a DPoP-signing HTTP client (`key=` the holder key): every request
  carries `Authorization: DPoP <chain>` and a fresh proof, so a stolen
  chain is useless without the key. Prefer this.

The SDKs are imported when a helper is called; install `openai` or
`anthropic` yourself. Extra keyword arguments go to the SDK's client.
"""

from __future__ import annotations

from typing import Any, Optional

from remit.auth import ChainLike, DPoPAuth, KeyLike, as_chain

__all__ = [
    "egress_url",
    "openai_client",
    "async_openai_client",
    "anthropic_client",
    "async_anthropic_client",
]


def egress_url(gateway: str, route: str) -> str:
    """`{gateway}/llm/{route}`: the guard's root for one route (the
    upstream model provider the operator configured under that name)."""
    if not route or "/" in route:
        raise ValueError(f"route {route!r} must be one non-empty path segment")
    return f"{gateway.rstrip('/')}/llm/{route}"


def _http_client(chain: ChainLike, key: Optional[KeyLike], asynchronous: bool, drop: tuple = ()):
    if key is None:
        return None
    import httpx2

    auth = DPoPAuth(chain, key, drop_headers=drop)
    return httpx2.AsyncClient(auth=auth) if asynchronous else httpx2.Client(auth=auth)


def _openai(cls_name: str, gateway: str, route: str, chain: ChainLike, key: Optional[KeyLike], asynchronous: bool, kwargs: dict) -> Any:
    import openai

    text = as_chain(chain).text
    http_client = _http_client(chain, key, asynchronous)
    if http_client is not None:
        kwargs.setdefault("http_client", http_client)
    cls = getattr(openai, cls_name)
    return cls(base_url=egress_url(gateway, route) + "/v1", api_key=text, **kwargs)


def openai_client(gateway: str, route: str, chain: ChainLike, key: Optional[KeyLike] = None, **kwargs: Any):
    """An `openai.OpenAI` whose base URL is `{gateway}/llm/{route}/v1`."""
    return _openai("OpenAI", gateway, route, chain, key, False, kwargs)


def async_openai_client(gateway: str, route: str, chain: ChainLike, key: Optional[KeyLike] = None, **kwargs: Any):
    """An `openai.AsyncOpenAI` whose base URL is `{gateway}/llm/{route}/v1`."""
    return _openai("AsyncOpenAI", gateway, route, chain, key, True, kwargs)


def _anthropic(cls_name: str, gateway: str, route: str, chain: ChainLike, key: Optional[KeyLike], asynchronous: bool, kwargs: dict) -> Any:
    import anthropic

    text = as_chain(chain).text
    # With DPoP the chain travels in Authorization; an SDK that sends the key
    # as x-api-key would repeat it there.
    http_client = _http_client(chain, key, asynchronous, drop=("x-api-key",))
    if http_client is not None:
        kwargs.setdefault("http_client", http_client)
    cls = getattr(anthropic, cls_name)
    # The SDK appends /v1/messages itself.
    return cls(base_url=egress_url(gateway, route), api_key=text, **kwargs)


def anthropic_client(gateway: str, route: str, chain: ChainLike, key: Optional[KeyLike] = None, **kwargs: Any):
    """An `anthropic.Anthropic` sending to `{gateway}/llm/{route}/v1/messages`."""
    return _anthropic("Anthropic", gateway, route, chain, key, False, kwargs)


def async_anthropic_client(gateway: str, route: str, chain: ChainLike, key: Optional[KeyLike] = None, **kwargs: Any):
    """An `anthropic.AsyncAnthropic` sending to `{gateway}/llm/{route}/v1/messages`."""
    return _anthropic("AsyncAnthropic", gateway, route, chain, key, True, kwargs)
