"""Auditing a running control plane: the same checks as
`remit audit verify --server URL`, with the transport in Python and every
rule in the Rust core (`remit.audit_leaves`)."""

from __future__ import annotations

from typing import Optional

from remit._native import AuditReport, Jwks, audit_leaves

__all__ = ["audit_server", "fetch_leaf"]


def _client(server: str, admin_token: str):
    import httpx2

    return httpx2.Client(base_url=server.rstrip("/"), headers={"Authorization": f"Bearer {admin_token}"}, timeout=30)


def fetch_leaf(server: str, admin_token: str, index: int) -> str:
    """Leaf `index` as the server stores it (`GET /v1/receipts`)."""
    with _client(server, admin_token) as http:
        page = http.get("/v1/receipts", params={"from": index, "limit": 1})
        page.raise_for_status()
        leaves = page.json()["leaves"]
    if not leaves:
        raise LookupError(f"the server holds no receipt {index}")
    return leaves[0]


def audit_server(
    server: str,
    admin_token: str,
    *,
    jwks: Optional[Jwks] = None,
    note_key: Optional[str] = None,
    earlier: Optional[str] = None,
    receipts: bool = False,
) -> AuditReport:
    """Pages through `/v1/receipts` and checks every leaf and the latest
    signed checkpoint. Pin `jwks` (receipt keys) and `note_key`: without
    them the keys the server publishes are used, which proves consistency,
    not authenticity. The checkpoint is read first, so receipts appended
    meanwhile count as unsealed, never as a failure."""
    with _client(server, admin_token) as http:
        head = http.get("/v1/checkpoints/latest")
        head.raise_for_status()
        head = head.json()
        leaves: list[str] = []
        while True:
            page = http.get("/v1/receipts", params={"from": len(leaves), "limit": 1000})
            page.raise_for_status()
            batch = page.json()["leaves"]
            if not batch:
                break
            leaves.extend(batch)
    keys = jwks if jwks is not None else Jwks.from_json(head["receipt_jwks"])
    return audit_leaves(
        leaves,
        keys,
        head["checkpoint"],
        note_key if note_key is not None else head["note_verifier"],
        earlier=earlier,
        receipts=receipts,
    )
