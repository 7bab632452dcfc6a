"""Type stubs of the native module (crates/remit-py/src). Every function
raises a `remit.errors.RemitError` subclass with a stable `rule`."""

from __future__ import annotations

import datetime
import os
from typing import Any, Iterable, Optional, Union

JsonLike = Union[str, bytes, dict[str, Any]]
JwksLike = Union["Jwks", str, bytes, dict[str, Any]]
ChainLike = Union["Chain", str]
PathLike = Union[str, "os.PathLike[str]"]

class Key:
    """A P-256 private key (a holder key, or an issuer's)."""

    @staticmethod
    def generate(kid: Optional[str] = None) -> Key: ...
    @staticmethod
    def from_jwk(jwk: JsonLike) -> Key:
        """A private JWK; a public-only JWK raises `InvalidKey(rule="public_only")`."""
    @staticmethod
    def load(path: PathLike) -> Key: ...
    def save(self, path: PathLike) -> None:
        """Writes a new 0600 file; never overwrites."""
    @property
    def kid(self) -> str: ...
    @property
    def thumbprint(self) -> str:
        """RFC 7638 thumbprint: what `cnf.jkt` names."""
    @property
    def public_jwk(self) -> dict[str, Any]: ...
    def private_jwk(self) -> dict[str, Any]: ...
    def jwks(self) -> dict[str, Any]:
        """`{"keys": [public_jwk]}`."""
    def sign_proof(self, chain: ChainLike, method: str, url: str, now: Optional[int] = None) -> str:
        """A fresh DPoP proof (RFC 9449) for one request, bound to the chain's leaf."""

class Jwks:
    """Issuer keys (chains) and receipt keys (audits), by `kid`."""

    @staticmethod
    def from_json(jwks: JsonLike) -> Jwks: ...
    @staticmethod
    def load(path: PathLike) -> Jwks: ...
    def __len__(self) -> int: ...

class Grant:
    """One grant: tools, resource patterns, actions, argument constraints."""

    def __init__(
        self,
        tools: list[str],
        resources: Optional[list[str]] = None,
        actions: Optional[list[str]] = None,
        args: Optional[dict[str, Any]] = None,
    ) -> None: ...
    @property
    def tools(self) -> list[str]: ...
    @property
    def resources(self) -> Optional[list[str]]: ...
    @property
    def actions(self) -> Optional[list[str]]: ...
    @property
    def args(self) -> dict[str, Any]: ...
    def to_dict(self) -> dict[str, Any]: ...

class Link:
    """One link of a chain (parsed, not verified on its own)."""

    @property
    def compact(self) -> str: ...
    @property
    def kid(self) -> str: ...
    @property
    def hash(self) -> str: ...
    @property
    def jti(self) -> str: ...
    @property
    def agent(self) -> str: ...
    @property
    def claims(self) -> dict[str, Any]: ...

class Chain:
    """A chain `root~...~leaf`, parsed strictly but NOT verified."""

    @staticmethod
    def parse(text: str) -> Chain: ...
    @staticmethod
    def load(path: PathLike) -> Chain: ...
    @property
    def text(self) -> str: ...
    @property
    def links(self) -> list[Link]: ...
    @property
    def grants(self) -> list[Grant]:
        """The leaf's grants: the effective authority."""
    @property
    def steps(self) -> Optional[int]:
        """Tool calls allowed (`max_steps`); None when unlimited."""
    @property
    def expires_at(self) -> datetime.datetime: ...
    @property
    def not_before(self) -> datetime.datetime: ...
    @property
    def subject(self) -> str: ...
    @property
    def agent(self) -> str: ...
    @property
    def agents(self) -> list[str]: ...
    @property
    def audience(self) -> str: ...
    @property
    def classification(self) -> str: ...
    @property
    def depth(self) -> int: ...
    @property
    def max_depth(self) -> int: ...
    @property
    def holder(self) -> str: ...
    @property
    def jti(self) -> str: ...
    @property
    def root_jti(self) -> str: ...
    @property
    def claims(self) -> dict[str, Any]: ...
    def delegate(
        self,
        key: Key,
        to: Union[Key, JsonLike],
        agent: str,
        *,
        tools: Optional[list[str]] = None,
        resources: Optional[list[str]] = None,
        grants: Optional[list[Grant]] = None,
        ttl: int = 30,
        classification: Optional[str] = None,
        max_steps: Optional[int] = None,
        max_depth: Optional[int] = None,
        now: Optional[int] = None,
    ) -> Chain:
        """Signs a narrower child offline; raises `DelegationRefused`."""
    def verify(
        self,
        jwks: JwksLike,
        *,
        audience: str = "remit",
        issuer: Optional[str] = None,
        leeway: int = 0,
        now: Optional[int] = None,
    ) -> VerifiedChain:
        """Raises `ChainInvalid(rule, link)`."""
    def __len__(self) -> int: ...

class VerifiedChain(Chain):
    """A chain whose every link and rule verified."""

    def authorize(
        self,
        tool: str,
        args: Optional[dict[str, Any]] = None,
        *,
        resource: Optional[str] = None,
        action: Optional[str] = None,
    ) -> int:
        """The admitting grant's index; raises `NotAuthorized`."""
    def verify_proof(
        self, proof: str, method: str, url: str, *, now: Optional[int] = None, max_skew: int = 60
    ) -> str:
        """The proof's `jti`; raises `ProofInvalid`."""
    @property
    def authority(self) -> dict[str, Any]: ...
    @property
    def jtis(self) -> list[str]: ...

def verify_chain(
    chain: ChainLike,
    jwks: JwksLike,
    *,
    audience: str = "remit",
    issuer: Optional[str] = None,
    leeway: int = 0,
    now: Optional[int] = None,
) -> VerifiedChain: ...

class Verifier:
    """verify_chain behind remit-token's ChainCache (the gateway's)."""

    def __init__(
        self,
        jwks: JwksLike,
        *,
        audience: str = "remit",
        issuer: Optional[str] = None,
        leeway: int = 0,
        capacity: int = 10_000,
    ) -> None: ...
    def verify(self, chain: ChainLike, *, now: Optional[int] = None) -> VerifiedChain: ...
    def revoked(self) -> None:
        """Forget every cached verification (a revocation landed)."""
    def __len__(self) -> int: ...

class Receipt:
    """A signed receipt whose signature verified."""

    @property
    def index(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def time_ms(self) -> int: ...
    @property
    def tool(self) -> Optional[str]: ...
    @property
    def actors(self) -> list[tuple[str, str]]: ...
    @property
    def root_jti(self) -> Optional[str]: ...
    @property
    def leaf_jti(self) -> Optional[str]: ...
    @property
    def decision(self) -> Optional[dict[str, Any]]: ...
    @property
    def findings(self) -> dict[str, int]: ...
    @property
    def kid(self) -> str: ...
    @property
    def receipt_hash(self) -> str: ...
    @property
    def leaf_hash(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...

class Checkpoint:
    """A signed tree head (C2SP checkpoint), verified."""

    @property
    def origin(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def root(self) -> str: ...
    @property
    def note(self) -> str: ...

class AuditReport:
    @property
    def ok(self) -> bool: ...
    @property
    def size(self) -> int: ...
    @property
    def root(self) -> str: ...
    @property
    def checkpoint(self) -> Checkpoint: ...
    @property
    def unsealed(self) -> int: ...
    @property
    def earlier_size(self) -> Optional[int]: ...
    @property
    def signers(self) -> dict[str, int]: ...
    @property
    def torn_tail_bytes(self) -> int: ...
    @property
    def note_key_pinned(self) -> bool: ...
    @property
    def receipts(self) -> list[Receipt]: ...

def verify_receipt(leaf: Union[str, bytes], jwks: JwksLike) -> Receipt: ...
def verify_checkpoint(note: str, note_key: str) -> Checkpoint: ...
def verify_inclusion_proof(leaf: Union[str, bytes], index: int, proof: list[str], checkpoint: Checkpoint) -> None: ...
def verify_consistency_proof(earlier: Checkpoint, current: Checkpoint, proof: list[str]) -> None: ...
def inclusion_proof(log: PathLike, index: int) -> dict[str, Any]: ...
def audit_log(
    log: PathLike,
    jwks: JwksLike,
    *,
    note_key: Optional[str] = None,
    earlier: Optional[str] = None,
    receipts: bool = False,
) -> AuditReport: ...
def audit_leaves(
    leaves: Iterable[Union[str, bytes]],
    jwks: JwksLike,
    checkpoint: str,
    note_key: str,
    *,
    earlier: Optional[str] = None,
    receipts: bool = False,
) -> AuditReport: ...
