"""The exceptions of the `remit` package.

Every exception is a `RemitError` with a stable, machine-readable `rule`
(the name the Rust core gives the rule that was broken, e.g.
`grant_widened`, `prf_mismatch`, `bad_signature`), so code can branch on
it without parsing messages.

Two families:

- raised by the local checks (`ChainInvalid`, `DelegationRefused`,
  `NotAuthorized`, `ProofInvalid`, `AuditFailed`, `InvalidKey`);
- raised when the gateway refuses a call (`Refusal` and its subclasses),
  carrying the JSON-RPC code, the reason, the receipt id of the refusal
  and, for a held call, the approval id with `wait()`.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from typing import Any, Callable, Optional

# The gateway's JSON-RPC refusal codes (crates/remit-server/src/gateway/mod.rs).
DENIED = -32041
APPROVAL_REQUIRED = -32042
INSUFFICIENT_SCOPE = -32043
UPSTREAM_FAILED = -32044
LIMIT_EXCEEDED = -32045


class RemitError(Exception):
    """Base of every error of this package. `rule` names the rule broken."""

    def __init__(self, message: str, rule: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.rule = rule


class InvalidKey(RemitError, ValueError):
    """A key or key set did not load (`rule`: `malformed`, `unsupported`,
    `public_only`, `malformed_jwks`, ...)."""


class ChainInvalid(RemitError):
    """A chain did not parse or verify; `link` is the offending link
    (0 = root) when one link is to blame, `rule` the rule it broke
    (`signature`, `prf_mismatch`, `grant_widened`, `expired`, ...)."""

    def __init__(self, message: str, rule: str, link: Optional[int] = None):
        super().__init__(message, rule)
        self.link = link


class DelegationRefused(RemitError):
    """A delegation would widen the parent or break a chain rule; nothing
    was signed. `rule` is the chain rule it would break (`grant_widened`,
    `class_raised`, `steps_raised`, `depth_exceeded`, `not_holder`, ...)."""


class NotAuthorized(RemitError):
    """A call is outside the verified chain's authority."""


class ProofInvalid(RemitError):
    """A DPoP proof was refused (`rule`: `signature`, `htm`, `htu`,
    `stale`, `ath`, `not_holder`, ...)."""


class AuditFailed(RemitError):
    """A receipt, proof, checkpoint or log failed its check; `code` (also
    `rule`) is the same code `remit audit verify --json` prints and
    `index` the first receipt it implicates."""

    def __init__(self, message: str, code: str, index: Optional[int] = None):
        super().__init__(message, code)
        self.code = code
        self.index = index


class Refusal(RemitError):
    """The gateway refused a call. `code` is the JSON-RPC error code,
    `reason` says why, `receipt_id` is the index of the refusal's receipt
    in the log, `policy_ids` the policies (or the gateway's own rule, e.g.
    `gw-approval-rejected`) that decided; `rule` is the first of them."""

    def __init__(self, code: int, reason: str, data: Optional[dict] = None):
        data = data if isinstance(data, dict) else {}
        policy_ids = [str(p) for p in data.get("policy_ids") or []]
        super().__init__(data.get("reason") or reason, policy_ids[0] if policy_ids else None)
        self.code = code
        self.reason = data.get("reason") or reason
        self.receipt_id: Optional[int] = data.get("receipt_id")
        self.policy_ids = policy_ids
        self.data = data

    def __str__(self) -> str:
        receipt = f" (receipt {self.receipt_id})" if self.receipt_id is not None else ""
        return f"{self.reason}{receipt}"


class Denied(Refusal):
    """Refused by the policy, the scanner, a budget, a pin or a limit (-32041)."""


class Unauthenticated(Denied):
    """The gateway did not accept the credentials (HTTP 401): a chain it
    does not verify, revoked or expired, or a bad proof. `error` is the
    `WWW-Authenticate` challenge's error code (`invalid_token`,
    `invalid_dpop_proof`, ...), `challenge` the whole header; `rule` is
    `gw-unauthenticated` and `receipt_id` the refusal's receipt."""

    def __init__(self, code: int, reason: str, data: Optional[dict] = None, challenge: Optional[str] = None):
        super().__init__(code, reason, data)
        self.challenge = challenge
        match = re.search(r'error="([^"]*)"', challenge or "")
        self.error = match.group(1) if match else None


class InsufficientScope(Refusal):
    """The remit does not cover the call (-32043); `scope` is what would."""

    @property
    def scope(self) -> Any:
        return self.data.get("scope")


class UpstreamFailed(Refusal):
    """The upstream server failed or timed out (-32044)."""


class LimitExceeded(Refusal):
    """The message is over a size or depth limit (-32045)."""


class ApprovalRequired(Refusal):
    """The call is held for a human (-32042); `approval_id` names the
    approval. `wait()` retries the very same request until a human
    decides: it returns the call's result once approved, and raises the
    refusal (a `Denied` with rule `gw-approval-rejected`) otherwise. A
    retry while the approval is pending uses no step of the remit (the
    gateway checks the hold before the budget) but writes an `escalate`
    receipt, so the interval grows up to `max_interval`.

    From an async session (`remit.mcp`), `await refusal.wait()`; from a
    synchronous client, `refusal.wait()`."""

    def __init__(self, code: int, reason: str, data: Optional[dict] = None, retry: Optional[Callable[[], Any]] = None):
        super().__init__(code, reason, data)
        self.approval_id: Optional[str] = self.data.get("approval_id")
        self._retry = retry

    def wait(self, timeout: float = 600.0, interval: float = 1.0, max_interval: float = 15.0):
        if self._retry is None:
            raise RuntimeError(
                "this refusal was not raised by a remit session, so it cannot retry the call; "
                "send the same request again once approval " + str(self.approval_id) + " is decided"
            )
        if inspect.iscoroutinefunction(self._retry):
            return self._wait_async(timeout, interval, max_interval)
        deadline = time.monotonic() + timeout
        while True:
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            try:
                return self._retry()
            except ApprovalRequired:
                if time.monotonic() >= deadline:
                    raise
                interval = min(interval * 2, max_interval)

    async def _wait_async(self, timeout: float, interval: float, max_interval: float):
        deadline = time.monotonic() + timeout
        while True:
            await _sleep(min(interval, max(0.0, deadline - time.monotonic())))
            try:
                return await self._retry()
            except ApprovalRequired:
                if time.monotonic() >= deadline:
                    raise
                interval = min(interval * 2, max_interval)


async def _sleep(seconds: float) -> None:
    # anyio when present (trio or asyncio, as the MCP SDK runs), else asyncio.
    try:
        import anyio

        await anyio.sleep(seconds)
    except ImportError:  # pragma: no cover - anyio comes with the MCP SDK
        await asyncio.sleep(seconds)


_BY_CODE = {
    DENIED: Denied,
    APPROVAL_REQUIRED: ApprovalRequired,
    INSUFFICIENT_SCOPE: InsufficientScope,
    UPSTREAM_FAILED: UpstreamFailed,
    LIMIT_EXCEEDED: LimitExceeded,
}


def refusal_from_error(code: int, message: str, data: Any = None, retry: Optional[Callable[[], Any]] = None) -> Optional[Refusal]:
    """The typed refusal for a JSON-RPC error from the gateway, or `None`
    when the code is not one of the gateway's refusals."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return None
    # A 401's body is a JSON-RPC error too (its `id` is null): the rule
    # says the credentials were refused, whatever the code.
    rules = data.get("policy_ids") if isinstance(data, dict) else None
    if isinstance(rules, list) and "gw-unauthenticated" in rules:
        return Unauthenticated(code, message, data)
    if cls is ApprovalRequired:
        return ApprovalRequired(code, message, data, retry)
    return cls(code, message, data)
