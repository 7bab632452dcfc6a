"""The `remit` Python package, holder side: keys, chains, offline
delegation and DPoP proofs, checked against the Rust CLI both ways, and
the token crate's attack catalogue (crates/remit-token/tests/
jwt_attacks.rs and chain_escalation.rs) run through the binding: every
forgery is refused naming the same link and rule.

Forgeries are signed with `cryptography` (tests/python/sdk_forge.py), not
with Remit, as an attacker would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat

import jwt
import pytest

import remit
from remit import (
    Chain, ChainInvalid, DelegationRefused, Grant, InvalidKey, Jwks, Key,
    NotAuthorized, ProofInvalid, verify_chain,
)
from sdk_forge import NOW, b64, b64d, compact_json, forge, forge_raw, mint

# --- fixtures ------------------------------------------------------------


class Fixture:
    """common.rs's fixture: issuer, holders a, b, c; a root for a
    (`planner`) and its honest child for b (`reader`), made by the binding."""

    def __init__(self):
        self.issuer = Key.generate(kid="issuer-1")
        self.a, self.b, self.c = Key.generate(), Key.generate(), Key.generate()
        self.jwks = Jwks.from_json(self.issuer.jwks())
        self.root = mint(self.issuer, self.a)
        self.chain = Chain.parse(self.root).delegate(
            self.a, self.b, "reader",
            grants=[Grant(["fs.read"], ["/tmp/a/*"], ["read"],
                          {"path": {"prefix": "/tmp/a/"}, "n": {"range": {"min": 0, "max": 10}}})],
            ttl=600, now=NOW,
        )
        self.child = self.chain.links[1]

    def verify(self, *links: str, **kwargs):
        kwargs.setdefault("now", NOW)
        return remit.verify_chain("~".join(links), self.jwks, **kwargs)

    def refused(self, *links: str, **kwargs) -> ChainInvalid:
        with pytest.raises(ChainInvalid) as caught:
            self.verify(*links, **kwargs)
        return caught.value

    def tampered_child(self, mutate) -> str:
        """The child's claims changed by `mutate`, re-signed by the parent holder."""
        claims = self.child.claims
        mutate(claims)
        return forge(claims, self.a.thumbprint, self.a.private_jwk())

    def child_refused(self, mutate) -> str:
        err = self.refused(self.root, self.tampered_child(mutate))
        assert err.link == 1, err
        return err.rule


@pytest.fixture
def f() -> Fixture:
    return Fixture()


# --- JWS envelope attacks (jwt_attacks.rs) ---------------------------------


def test_the_honest_chain_verifies(f):
    verified = f.verify(f.root, f.child.compact)
    assert verified.agents == ["planner", "reader"]
    assert verified.authorize("fs.read", {"path": "/tmp/a/x", "n": 3}, resource="/tmp/a/x", action="read") == 0


@pytest.mark.parametrize("alg", ["none", "NONE", "nOnE"])
def test_refuses_alg_none_without_signature(f, alg):
    claims = Chain.parse(f.root).claims
    token = f"{b64(compact_json({'alg': alg, 'typ': 'remit+jwt', 'kid': f.issuer.kid}))}.{b64(compact_json(claims))}."
    err = f.refused(token)
    assert (err.rule, err.link) == ("malformed", 0)
    assert alg in err.message


def test_refuses_hs256_signed_with_the_public_key_as_secret(f):
    header = b64(compact_json({"alg": "HS256", "typ": "remit+jwt", "kid": f.issuer.kid}))
    signing_input = f"{header}.{f.root.split('.')[1]}"
    secret = json.dumps(f.issuer.public_jwk).encode()
    token = f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
    err = f.refused(token)
    assert (err.rule, err.link) == ("malformed", 0)
    assert "HS256" in err.message


@pytest.mark.parametrize("kid", ["../../../../dev/null", "/etc/passwd", "x' UNION SELECT 'secret' --", "' OR '1'='1"])
def test_refuses_kid_path_and_sql_injection(f, kid):
    claims = Chain.parse(f.root).claims
    assert f.refused(forge(claims, kid, f.issuer.private_jwk())).rule == "unknown_issuer_key"


def test_refuses_a_kid_with_control_characters(f):
    claims = Chain.parse(f.root).claims
    assert f.refused(forge(claims, "k\u0000id", f.issuer.private_jwk())).rule == "malformed"


@pytest.mark.parametrize("member", ["jku", "x5u", "jwk", "crit", "b64"])
def test_refuses_attacker_keys_and_unknown_processing_headers(f, member):
    attacker = Key.generate()
    values = {
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "jwk": {k: attacker.public_jwk[k] for k in ("kty", "crv", "x", "y")},
        "crit": ["exp_v2"],
        "b64": False,
    }
    header = {"alg": "ES256", "typ": "remit+jwt", "kid": f.issuer.kid, member: values[member]}
    signer = attacker if member in ("jku", "x5u", "jwk") else f.issuer
    token = forge_raw(compact_json(header), compact_json(Chain.parse(f.root).claims), signer.private_jwk())
    err = f.refused(token)
    assert err.rule == "malformed" and member in err.message, err


N = bytes.fromhex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")


@pytest.mark.parametrize("name", ["r=0,s=0", "r=0", "s=0", "r=n", "s=n", "r=n+1", "r=s=ff"])
def test_refuses_psychic_signatures_r_or_s_zero_or_at_least_n(f, name):
    signing_input, sig = f.root.rsplit(".", 1)
    r, s = b64d(sig)[:32], b64d(sig)[32:]
    zero, n_plus_1 = bytes(32), N[:31] + bytes([(N[31] + 1) % 256])
    bad = {
        "r=0,s=0": zero + zero, "r=0": zero + s, "s=0": r + zero, "r=n": N + s,
        "s=n": r + N, "r=n+1": n_plus_1 + s, "r=s=ff": b"\xff" * 64,
    }[name]
    assert f.refused(f"{signing_input}.{b64(bad)}").rule == "signature"


def test_refuses_expired_and_not_yet_valid_and_honours_leeway(f):
    exp = Chain.parse(f.root).claims["exp"]
    assert f.refused(f.root, now=exp).rule == "expired"
    assert f.refused(f.root, now=NOW - 1).rule == "not_yet_valid"
    f.verify(f.root, now=NOW - 5, leeway=5)


def test_refuses_wrong_audience(f):
    assert f.refused(f.root, audience="billing-gateway").rule == "audience"


def test_refuses_duplicate_claims_at_any_depth(f):
    text = compact_json(Chain.parse(f.root).claims)
    header = compact_json({"alg": "ES256", "typ": "remit+jwt", "kid": f.issuer.kid})
    for forged in (
        text.replace('"sub":"alice"', '"sub":"alice","sub":"mallory"', 1),
        text.replace('"path":{"prefix":"/tmp/"}', '"path":{"prefix":"/tmp/"},"path":{"prefix":"/"}', 1),
        text.replace('"cnf":{', '"cnf":{"jkt":"x",', 1),
    ):
        assert forged != text
        assert f.refused(forge_raw(header, forged, f.issuer.private_jwk())).rule == "malformed"
    dup_header = '{"alg":"ES256","typ":"remit+jwt","kid":"a","kid":"b"}'
    assert f.refused(forge_raw(dup_header, text, f.issuer.private_jwk())).rule == "malformed"


def test_refuses_unknown_claims(f):
    claims = Chain.parse(f.root).claims | {"admin": True}
    assert f.refused(forge(claims, f.issuer.kid, f.issuer.private_jwk())).rule == "malformed"


def test_refuses_truncated_padded_or_non_url_safe_base64(f):
    h, p, s = f.root.split(".")
    for bad in (
        f"{h}=.{p}.{s}", f"{h}.{p}==.{s}", f"{h}.{p}.{s}=", f"{h}.{p}.{s[:-1]}",
        f"{h}.{p[:-1]}.{s}", f"{h}.{p}.+{s[1:]}", f"{h}.{p}./{s[1:]}", f"{h}.{p}", f" {h}.{p}.{s}x",
    ):
        err = f.refused(bad)
        assert err.rule == "malformed", (bad, err)


def test_refuses_non_canonical_trailing_bits_in_the_signature(f):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(f.root[-1]) ^ 1]
    assert f.refused(f.root[:-1] + twin).rule == "malformed"


def test_refuses_oversized_links_too_many_links_and_nothing(f):
    claims = Chain.parse(f.root).claims | {"policy": "p" * 16 * 1024}
    assert f.refused(forge(claims, f.issuer.kid, f.issuer.private_jwk())).rule == "malformed"
    assert f.refused(*[f.root] * 17).rule == "too_many_links"
    assert f.refused("  ").rule == "empty"


def test_refuses_a_root_signed_by_a_key_outside_the_jwks(f):
    attacker = Key.generate()
    claims = Chain.parse(f.root).claims
    assert f.refused(forge(claims, f.issuer.kid, attacker.private_jwk())).rule == "signature"


def test_refuses_an_uncompilable_regex_only_after_the_signature(f):
    claims = Chain.parse(f.root).claims
    claims["authorization_details"][0]["args"]["path"] = {"regex": "(unclosed"}
    assert f.refused(forge(claims, f.issuer.kid, Key.generate().private_jwk())).rule == "signature"
    assert f.refused(forge(claims, f.issuer.kid, f.issuer.private_jwk())).rule == "invalid_grant"


# --- delegation attacks (chain_escalation.rs) ------------------------------


def grant0(c):
    return c["authorization_details"][0]


@pytest.mark.parametrize("mutate, rule", [
    (lambda c: grant0(c).update(tools=["*"]), "grant_widened"),
    (lambda c: c["authorization_details"].append({"type": "remit_tool", "tools": ["shell.exec"]}), "grant_widened"),
    (lambda c: grant0(c).update(resources=["/etc/*"]), "grant_widened"),
    (lambda c: grant0(c).pop("resources"), "grant_widened"),
    (lambda c: grant0(c).update(actions=["read", "delete"]), "grant_widened"),
    (lambda c: grant0(c)["args"].update(path={"prefix": "/"}), "grant_widened"),
    (lambda c: grant0(c)["args"].update(n={"range": {"min": 0, "max": 1000}}), "grant_widened"),
    (lambda c: grant0(c)["args"].pop("path"), "grant_widened"),
    (lambda c: c.update(exp=NOW + 3601), "exp_extended"),
    (lambda c: c.update(nbf=NOW - 100), "nbf_earlier"),
    (lambda c: c.update({"class": "RESTRICTED"}), "class_raised"),
    (lambda c: c.update(max_steps=11), "steps_raised"),
    (lambda c: c.pop("max_steps"), "steps_raised"),
    (lambda c: c.update(max_depth=9), "max_depth_raised"),
    (lambda c: c.update(sub="mallory"), "sub_changed"),
    (lambda c: c.update(amr=["step_up_totp"]), "approval_changed"),
    (lambda c: c.update(aud="other"), "aud_changed"),
    (lambda c: c["act"].update(sub="planner"), "actor_cycle"),
    (lambda c: c.update(act={"sub": "reader"}), "act_not_nested"),
], ids=[
    "tools", "extra_grant", "resources", "resources_dropped", "actions", "arg_prefix", "arg_range",
    "arg_dropped", "exp", "nbf", "class", "steps", "steps_dropped", "max_depth", "sub", "amr", "aud",
    "cycle", "act",
])
def test_refuses_a_child_holding_more_than_its_parent(f, mutate, rule):
    assert f.child_refused(mutate) == rule


def test_refuses_a_skipped_link(f):
    grandchild = f.chain.delegate(f.b, f.c, "summarizer", tools=["fs.read"], now=NOW).links[2].compact
    err = f.refused(f.root, grandchild)
    assert err.link == 1 and err.rule in ("wrong_signing_key", "prf_mismatch")
    f.verify(f.root, f.child.compact, grandchild)


def test_refuses_reparenting_and_splicing_under_another_chain(f):
    other_root = mint(f.issuer, f.a)
    err = f.refused(other_root, f.child.compact)
    assert (err.link, err.rule) == (1, "prf_mismatch")
    other = Chain.parse(other_root).delegate(f.a, f.b, "reader", tools=["fs.read"], ttl=600, now=NOW)
    grandchild = other.delegate(f.b, f.c, "summarizer", tools=["fs.read"], now=NOW).links[2]
    err = f.refused(f.root, f.child.compact, grandchild.compact)
    assert (err.link, err.rule) == (2, "prf_mismatch")
    claims = grandchild.claims | {"prf": f.child.hash}
    err = f.refused(f.root, f.child.compact, forge(claims, f.b.thumbprint, f.b.private_jwk()))
    assert (err.link, err.rule) == (2, "root_mismatch")


def test_refuses_a_child_signed_with_the_wrong_key(f):
    claims = f.child.claims
    err = f.refused(f.root, forge(claims, f.a.thumbprint, f.c.private_jwk()))
    assert (err.link, err.rule) == (1, "signature")
    err = f.refused(f.root, forge(claims, f.c.thumbprint, f.c.private_jwk()))
    assert (err.link, err.rule) == (1, "wrong_signing_key")
    with pytest.raises(DelegationRefused) as caught:
        Chain.parse(f.root).delegate(f.c, f.b, "x", tools=["fs.read"], now=NOW)
    assert caught.value.rule == "not_holder"


def test_refuses_a_holder_key_reused_down_the_chain(f):
    with pytest.raises(DelegationRefused) as caught:
        f.chain.delegate(f.b, f.a, "helper", tools=["fs.read"], now=NOW)
    assert caught.value.rule == "holder_key_reused"
    honest = f.chain.delegate(f.b, f.c, "helper", tools=["fs.read"], now=NOW).links[2].claims
    honest["cnf"] = Chain.parse(f.root).claims["cnf"]
    err = f.refused(f.root, f.child.compact, forge(honest, f.b.thumbprint, f.b.private_jwk()))
    assert (err.link, err.rule) == (2, "holder_key_reused")


def test_refuses_exceeding_max_depth(f):
    keys = [Key.generate() for _ in range(5)]
    chain = Chain.parse(mint(f.issuer, keys[0]))
    for i in range(1, 4):
        chain = chain.delegate(keys[i - 1], keys[i], f"agent{i}", tools=["fs.read"], now=NOW)
    assert len(f.verify(chain.text)) == 4
    with pytest.raises(DelegationRefused) as caught:
        chain.delegate(keys[3], keys[4], "agent4", tools=["fs.read"], now=NOW)
    assert caught.value.rule == "depth_exceeded"


def test_refuses_a_child_presented_as_a_root(f):
    err = f.refused(f.child.compact)
    assert (err.link, err.rule) == (0, "unknown_issuer_key")


# --- delegation in Python: narrowing only ----------------------------------


@pytest.mark.parametrize("kwargs, rule", [
    ({"tools": ["shell.exec"]}, "grant_widened"),
    ({"tools": ["fs.read"], "resources": ["/etc/*"]}, "grant_widened"),
    ({"tools": ["fs.read"], "classification": "RESTRICTED"}, "class_raised"),
    ({"tools": ["fs.read"], "max_steps": 11}, "steps_raised"),
    ({"tools": ["fs.read"], "max_depth": 9}, "max_depth_raised"),
    ({"grants": [Grant(["fs.read"], ["/tmp/*"], None)]}, "grant_widened"),
    ({"tools": ["fs.read"], "ttl": 0}, "ttl"),
])
def test_widening_in_python_raises_delegation_refused_and_signs_nothing(f, kwargs, rule):
    with pytest.raises(DelegationRefused) as caught:
        Chain.parse(f.root).delegate(f.a, f.b, "reader", now=NOW, **kwargs)
    assert caught.value.rule == rule, caught.value


def test_a_delegation_inherits_the_parents_constraints_and_is_cut_to_its_expiry(f):
    child = Chain.parse(f.root).delegate(f.a, f.b, "reader", tools=["fs.read"], ttl=24 * 3600, now=NOW)
    assert child.expires_at == Chain.parse(f.root).expires_at
    [grant] = child.grants
    assert grant.tools == ["fs.read"] and grant.resources == ["/tmp/**"]
    assert grant.args == {"path": {"prefix": "/tmp/"}, "n": {"range": {"min": 0, "max": 100}}}
    assert (child.steps, child.classification, child.depth) == (10, "CONFIDENTIAL", 1)
    verified = f.verify(child.text)
    with pytest.raises(NotAuthorized):
        verified.authorize("fs.read", {"path": "/etc/passwd", "n": 1})
    with pytest.raises(NotAuthorized):
        verified.authorize("fs.write", {"path": "/tmp/x", "n": 1})


# --- the Rust CLI and the binding agree, both ways -------------------------


@pytest.fixture
def cli_root(remit):
    remit.keygen("issuer.jwk")
    remit.keygen("planner.jwk")
    remit.keygen("reader.jwk")
    remit.path("jwks.json").write_text(json.dumps(remit.jwks("issuer.jwk")))
    return remit.run(
        "token", "mint", "--issuer-key", "issuer.jwk", "--sub", "alice", "--agent", "planner",
        "--holder-jwk", "planner.jwk", "--tool", "read_file", "--tool", "list_dir",
        "--resource", "/data/reports/**", "--ttl", "10m", "--max-steps", "20", "--class", "CONFIDENTIAL",
    ).stdout.strip()


def test_a_delegation_made_in_python_verifies_with_the_rust_cli(remit, cli_root):
    planner = Key.load(remit.path("planner.jwk"))
    reader = json.loads(remit.path("reader.jwk").read_text())
    chain = Chain.parse(cli_root).delegate(
        planner, reader, "reader", tools=["read_file"], resources=["/data/reports/2026/*"],
        ttl=300, classification="INTERNAL",
    )
    out = remit.run(
        "token", "verify", "--jwks", "jwks.json", chain.text, "--tool", "read_file",
        "--resource", "/data/reports/2026/q3.txt", "--json",
    )
    answer = json.loads(out.stdout)
    assert answer["valid"] and answer["call"]["allowed"], answer
    assert answer["authority"]["actors"] == ["reader", "planner"]
    assert answer["authority"]["class"] == "INTERNAL"
    remit.run("token", "verify", "--jwks", "jwks.json", chain.text, "--tool", "list_dir",
              "--resource", "/data/reports/2026/q3.txt", expect=1)
    # A link tampered in Python is refused by the CLI at that link.
    h, p, s = chain.links[1].compact.split(".")
    claims = json.loads(b64d(p)) | {"class": "RESTRICTED"}
    tampered = f"{chain.links[0].compact}~{h}.{b64(compact_json(claims))}.{s}"
    out = remit.run("token", "verify", "--jwks", "jwks.json", tampered, "--json", expect=1)
    assert json.loads(out.stdout)["link"] == 1


def test_a_cli_delegation_verifies_in_python(remit, cli_root):
    text = remit.run(
        "token", "delegate", "--parent", cli_root, "--holder-key", "planner.jwk", "--to-jwk", "reader.jwk",
        "--agent", "reader", "--tool", "read_file", "--resource", "/data/reports/2026/*", "--ttl", "5m",
    ).stdout.strip()
    verified = verify_chain(text, Jwks.load(remit.path("jwks.json")))
    assert verified.agents == ["planner", "reader"] and verified.steps == 20
    assert verified.authorize("read_file", resource="/data/reports/2026/q3.txt") == 0
    with pytest.raises(NotAuthorized):
        verified.authorize("read_file", resource="/data/hr/salaries.csv")
    with pytest.raises(ChainInvalid) as caught:
        verify_chain(text, Jwks.from_json(Key.generate(kid="other").jwks()))
    assert (caught.value.rule, caught.value.link) == ("unknown_issuer_key", 0)


def test_the_cli_and_the_binding_refuse_the_same_widening(remit, cli_root):
    remit.run(
        "token", "delegate", "--parent", cli_root, "--holder-key", "planner.jwk", "--to-jwk", "reader.jwk",
        "--agent", "reader", "--tool", "write_file", expect=2,
    )
    with pytest.raises(DelegationRefused) as caught:
        Chain.parse(cli_root).delegate(Key.load(remit.path("planner.jwk")), Key.load(remit.path("reader.jwk")),
                                       "reader", tools=["write_file"])
    assert caught.value.rule == "grant_widened"


# --- DPoP proofs and keys --------------------------------------------------


def test_a_proof_signed_in_python_verifies_in_rust_and_in_pyjwt(f):
    url = "https://gw.example/mcp/fs"
    proof = f.b.sign_proof(f.chain, "POST", url + "?session=1#x", now=NOW)
    verified = f.verify(f.chain.text)
    assert verified.verify_proof(proof, "POST", url, now=NOW)
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt" and "d" not in header["jwk"]
    claims = jwt.decode(proof, jwt.PyJWK(header["jwk"], algorithm="ES256").key, algorithms=["ES256"],
                        options={"verify_iat": False})
    assert claims["htu"] == url and claims["htm"] == "POST"
    assert claims["ath"] == b64(hashlib.sha256(f.child.compact.encode()).digest())
    for args, rule in (
        (("GET", url), "htm"),
        (("POST", "https://gw.example/mcp/other"), "htu"),
    ):
        with pytest.raises(ProofInvalid) as caught:
            verified.verify_proof(proof, *args, now=NOW)
        assert caught.value.rule == rule
    with pytest.raises(ProofInvalid) as caught:
        verified.verify_proof(proof, "POST", url, now=NOW + 600)
    assert caught.value.rule == "stale"
    stolen = f.a.sign_proof(f.chain, "POST", url, now=NOW)
    with pytest.raises(ProofInvalid) as caught:
        verified.verify_proof(stolen, "POST", url, now=NOW)
    assert caught.value.rule == "not_holder"


def test_keys_load_save_and_refuse_what_cannot_sign(tmp_path):
    key = Key.generate(kid="agent-1")
    path = tmp_path / "agent.jwk"
    key.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(FileExistsError):
        key.save(path)
    again = Key.load(path)
    assert (again.kid, again.thumbprint) == ("agent-1", key.thumbprint)
    with pytest.raises(InvalidKey) as caught:
        Key.from_jwk(key.public_jwk)
    assert caught.value.rule == "public_only"
    with pytest.raises(InvalidKey) as caught:
        Key.from_jwk({"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQAB"})
    assert isinstance(caught.value, ValueError)


def test_a_chain_is_inspected_without_being_trusted(f):
    chain = f.chain
    assert isinstance(chain, Chain) and not isinstance(chain, remit.VerifiedChain)
    assert (chain.subject, chain.agent, chain.agents) == ("alice", "reader", ["planner", "reader"])
    assert chain.steps == 10 and chain.classification == "CONFIDENTIAL"
    assert chain.expires_at.timestamp() == NOW + 600 and chain.expires_at.tzinfo is not None
    assert [g.to_dict()["tools"] for g in chain.grants] == [["fs.read"]]
    assert chain.holder == f.b.thumbprint and chain.root_jti == chain.links[0].jti
    assert "UNVERIFIED" in repr(chain)


def test_the_cached_verifier_refuses_what_verify_chain_refuses_and_forgets_on_revocation(f):
    verifier = remit.Verifier(f.jwks)
    first = verifier.verify(f.chain.text, now=NOW)
    again = verifier.verify(f.chain, now=NOW)
    assert first.jtis == again.jtis and len(verifier) == 1
    grandchild = f.chain.delegate(f.b, f.c, "summarizer", tools=["fs.read"], now=NOW)
    assert verifier.verify(grandchild, now=NOW).agents == ["planner", "reader", "summarizer"]
    tampered = f"{f.root}~{f.tampered_child(lambda c: c.update({'class': 'RESTRICTED'}))}"
    with pytest.raises(ChainInvalid) as caught:
        verifier.verify(tampered, now=NOW)
    assert (caught.value.link, caught.value.rule) == (1, "class_raised")
    with pytest.raises(ChainInvalid) as caught:
        verifier.verify(f.chain, now=NOW + 600)
    assert caught.value.rule == "expired"
    verifier.revoked()
    assert verifier.verify(f.chain, now=NOW).agents == ["planner", "reader"]
    with pytest.raises(ChainInvalid):
        remit.Verifier(f.jwks, audience="billing").verify(f.chain, now=NOW)
