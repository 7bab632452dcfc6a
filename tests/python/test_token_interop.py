"""Remits minted by the `remit` CLI verify in an independent JOSE stack.

PyJWT (with `cryptography` for ES256) checks the leaf against the JWKS that
`remit keys jwks` publishes, selecting the key by `kid`, exactly as a third
party would. Thumbprints (RFC 7638) and chain hashes (`prf`) are recomputed
here from their definitions, not taken from Remit. Negative cases first.
"""

import base64
import hashlib
import hmac
import json

import jwt
import pytest

AUD = "mcp-gateway"


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk: dict) -> str:
    """RFC 7638 §3.2: required EC members, sorted, no whitespace."""
    canonical = json.dumps(
        {k: jwk[k] for k in ("crv", "kty", "x", "y")},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


def key_for(token: str, jwks: dict) -> jwt.PyJWK:
    kid = jwt.get_unverified_header(token)["kid"]
    matches = [k for k in jwks["keys"] if k.get("kid") == kid]
    assert len(matches) == 1, f"kid {kid!r} not exactly once in {jwks}"
    return jwt.PyJWK(matches[0], algorithm="ES256")


def decode(token: str, key: jwt.PyJWK, audience: str = AUD) -> dict:
    return jwt.decode(
        token,
        key=key.key,
        algorithms=["ES256"],
        audience=audience,
        options={"require": ["exp", "iat", "nbf", "sub", "jti", "aud", "iss"]},
    )


@pytest.fixture
def minted(remit):
    """An issuer key, a holder key, and a root remit minted by the CLI."""
    remit.keygen("issuer.jwk")
    holder = remit.keygen("holder.jwk")
    token = remit.run(
        "token", "mint",
        "--issuer-key", "issuer.jwk",
        "--sub", "alice@example.com",
        "--agent", "research-agent",
        "--holder-jwk", "holder.jwk",
        "--tool", "read_file",
        "--resource", "/data/**",
        "--ttl", "300s",
        "--class", "CONFIDENTIAL",
        "--max-steps", "7",
        "--aud", AUD,
        "--amr", "click",
    ).stdout.strip()
    return {"token": token, "holder": holder, "jwks": remit.jwks("issuer.jwk")}


# --- negative cases -------------------------------------------------------


def test_tampered_payload_is_refused(minted):
    token = minted["token"]
    header, payload, sig = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["authorization_details"][0]["tools"] = ["*"]
    forged = ".".join([header, b64url(json.dumps(claims).encode()), sig])
    with pytest.raises(jwt.InvalidSignatureError):
        decode(forged, key_for(forged, minted["jwks"]))


def test_other_issuer_key_is_refused(remit, minted):
    remit.keygen("other.jwk")
    other = remit.jwks("other.jwk")["keys"][0]
    with pytest.raises(jwt.InvalidSignatureError):
        decode(minted["token"], jwt.PyJWK(other, algorithm="ES256"))


def test_wrong_audience_is_refused(minted):
    with pytest.raises(jwt.InvalidAudienceError):
        decode(minted["token"], key_for(minted["token"], minted["jwks"]), "elsewhere")


def test_remit_refuses_hs256_signed_with_the_public_key(remit, minted):
    """Key confusion: HMAC keyed with the published public key's bytes."""
    jwks_file = remit.path("jwks.json")
    jwks_file.write_text(json.dumps(minted["jwks"]))
    _, payload, _ = minted["token"].split(".")
    kid = jwt.get_unverified_header(minted["token"])["kid"]
    header = b64url(json.dumps({"alg": "HS256", "typ": "remit+jwt", "kid": kid}).encode())
    secret = json.dumps(minted["jwks"]["keys"][0]).encode()
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{b64url(mac)}"
    remit.run("token", "verify", "--jwks", "jwks.json", "--aud", AUD, forged, expect=1)


def test_remit_refuses_alg_none(remit, minted):
    jwks_file = remit.path("jwks.json")
    jwks_file.write_text(json.dumps(minted["jwks"]))
    _, payload, _ = minted["token"].split(".")
    header = b64url(json.dumps({"alg": "none", "typ": "remit+jwt"}).encode())
    remit.run("token", "verify", "--jwks", "jwks.json", "--aud", AUD, f"{header}.{payload}.", expect=1)


# --- positive cases -------------------------------------------------------


def test_leaf_verifies_with_pyjwt_against_published_jwks(minted):
    token = minted["token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    assert header["typ"] == "remit+jwt"
    assert minted["jwks"]["keys"][0]["kid"] == header["kid"]
    # JWS ES256 signatures are the raw 64-byte r || s (RFC 7518 §3.4).
    assert len(b64url_decode(token.split(".")[2])) == 64

    claims = decode(token, key_for(token, minted["jwks"]))
    assert claims["sub"] == "alice@example.com"
    assert claims["aud"] == AUD
    assert claims["act"]["sub"] == "research-agent"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] <= claims["iat"] < claims["exp"]
    assert claims["class"] == "CONFIDENTIAL"
    assert claims["max_steps"] == 7
    assert claims["amr"] == ["click"]
    assert claims["depth"] == 0
    assert claims["root"] == claims["jti"]
    assert "prf" not in claims
    (grant,) = claims["authorization_details"]
    assert grant["type"] == "remit_tool"
    assert grant["tools"] == ["read_file"]
    assert grant["resources"] == ["/data/**"]
    # Holder binding: cnf.jkt is the RFC 7638 thumbprint of the holder key.
    assert claims["cnf"]["jkt"] == thumbprint(minted["holder"])


def test_remit_verifies_a_remit_signed_by_pyjwt(remit, minted):
    """The other direction: Remit accepts the same claims signed elsewhere."""
    jwks_file = remit.path("jwks.json")
    jwks_file.write_text(json.dumps(minted["jwks"]))
    issuer = json.loads(remit.path("issuer.jwk").read_text())
    claims = json.loads(b64url_decode(minted["token"].split(".")[1]))
    resigned = jwt.encode(
        claims,
        jwt.PyJWK(issuer, algorithm="ES256").key,
        algorithm="ES256",
        headers={"typ": "remit+jwt", "kid": minted["jwks"]["keys"][0]["kid"]},
    )
    assert resigned != minted["token"]
    out = remit.run("token", "verify", "--jwks", "jwks.json", "--aud", AUD, "--json", resigned)
    assert json.loads(out.stdout)["valid"] is True


def test_delegated_leaf_verifies_under_the_parent_holder_key(remit, minted):
    """A child is signed by its parent's holder key, found in the parent's cnf."""
    remit.keygen("sub.jwk")
    chain = remit.run(
        "token", "delegate",
        "--parent", minted["token"],
        "--holder-key", "holder.jwk",
        "--to-jwk", "sub.jwk",
        "--agent", "summarizer",
        "--tool", "read_file",
        "--resource", "/data/reports/*",
        "--ttl", "30s",
    ).stdout.strip()
    root, leaf = chain.split("~")
    assert root == minted["token"]

    root_claims = decode(root, key_for(root, minted["jwks"]))
    holder = jwt.PyJWK(root_claims["cnf"]["jwk"], algorithm="ES256")
    assert thumbprint(root_claims["cnf"]["jwk"]) == root_claims["cnf"]["jkt"]
    child = decode(leaf, holder)
    assert jwt.get_unverified_header(leaf)["typ"] == "remit+jwt"
    assert child["prf"] == b64url(hashlib.sha256(root.encode()).digest())
    assert child["sub"] == root_claims["sub"]
    assert child["act"] == {"sub": "summarizer", "act": root_claims["act"]}
    assert child["depth"] == 1 and child["root"] == root_claims["jti"]
    assert child["exp"] <= root_claims["exp"]
    assert child["authorization_details"][0]["resources"] == ["/data/reports/*"]

    # The leaf does not verify under the issuer key: it was not issued there.
    with pytest.raises(jwt.InvalidSignatureError):
        decode(leaf, jwt.PyJWK(minted["jwks"]["keys"][0], algorithm="ES256"))
