"""The attacker's tools for the SDK tests, independent of Remit: JWS
signing of arbitrary header and payload text with `cryptography` (what
crates/remit-token/tests/common/mod.rs does with `forge_raw`), and the
root remit of that module's fixture, signed the same way."""

from __future__ import annotations

import base64
import json
import secrets

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

# The fixed "now" of the Rust fixtures, so no test reads the clock.
NOW = 1_800_000_000


def b64(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact_json(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def es256(private_jwk: dict, message: bytes) -> bytes:
    """A raw `r || s` ES256 signature by the private JWK."""
    d = int.from_bytes(b64d(private_jwk["d"]), "big")
    key = ec.derive_private_key(d, ec.SECP256R1())
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def forge_raw(header: str, payload: str, private_jwk: dict) -> str:
    signing_input = f"{b64(header)}.{b64(payload)}"
    return f"{signing_input}.{b64(es256(private_jwk, signing_input.encode()))}"


def forge(claims: dict, kid: str, private_jwk: dict) -> str:
    header = compact_json({"alg": "ES256", "typ": "remit+jwt", "kid": kid})
    return forge_raw(header, compact_json(claims), private_jwk)


def bare(public_jwk: dict) -> dict:
    return {k: public_jwk[k] for k in ("kty", "crv", "x", "y")}


def root_claims(holder, **changes) -> dict:
    """common::root: fs.* and net.get under /tmp/ with a path prefix and a
    range on n, read and write, 10 steps, CONFIDENTIAL, one hour."""
    jti = b64(secrets.token_bytes(16))
    claims = {
        "iss": "remit", "sub": "alice", "aud": "remit",
        "iat": NOW, "nbf": NOW, "exp": NOW + 3600, "jti": jti,
        "act": {"sub": "planner"},
        "authorization_details": [{
            "type": "remit_tool", "tools": ["fs.*", "net.get"], "resources": ["/tmp/**"],
            "actions": ["read", "write"],
            "args": {"path": {"prefix": "/tmp/"}, "n": {"range": {"min": 0, "max": 100}}},
        }],
        "cnf": {"jkt": holder.thumbprint, "jwk": bare(holder.public_jwk)},
        "max_steps": 10, "class": "CONFIDENTIAL", "amr": ["click"],
        "root": jti, "depth": 0, "max_depth": 3,
    }
    claims.update(changes)
    return claims


def mint(issuer, holder, **changes) -> str:
    """A root signed by the issuer key, as the control plane would."""
    return forge(root_claims(holder, **changes), issuer.kid, issuer.private_jwk())
