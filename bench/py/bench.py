"""DPoP proof signing and chain verification from Python: the `remit`
package (the Rust core through PyO3) against PyJWT doing the same JWS
work, side by side in one run.

    python bench/py/bench.py [--seconds 1.0] [--repeat 5] [--json]

Each operation runs in a tight loop for about `--seconds`, `--repeat`
times, the two sides alternating so that a change in the machine's load
hits both alike; the speedup is the median of the per-round ratios, and
each side's best and median time per call are shown. See bench/py/README.md for what each side does.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import statistics
import time

import jwt
from jwt.algorithms import ECAlgorithm

import remit

URL = "https://gw.example/mcp/fs"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def fixture():
    """A root minted for `planner` and a child delegated to `reader`
    (both by the binding's own rules), the issuer JWKS, and the keys."""
    issuer, planner, reader = remit.Key.generate(kid="issuer-1"), remit.Key.generate(), remit.Key.generate()
    now = int(time.time())
    header = {"alg": "ES256", "typ": "remit+jwt", "kid": issuer.kid}
    jti = b64(os.urandom(16))
    claims = {
        "iss": "remit", "sub": "alice", "aud": "remit", "iat": now, "nbf": now, "exp": now + 3600,
        "jti": jti, "act": {"sub": "planner"},
        "authorization_details": [{"type": "remit_tool", "tools": ["fs/*"], "resources": ["/data/*"],
                                   "args": {"path": {"prefix": "/data/"}}}],
        "cnf": {"jkt": planner.thumbprint,
                "jwk": {k: planner.public_jwk[k] for k in ("kty", "crv", "x", "y")}},
        "max_steps": 50, "class": "CONFIDENTIAL", "root": jti, "depth": 0, "max_depth": 3,
    }
    issuer_key = ECAlgorithm.from_jwk(json.dumps(issuer.private_jwk()))
    root = jwt.encode(claims, issuer_key, algorithm="ES256", headers={"typ": "remit+jwt", "kid": issuer.kid})
    assert jwt.get_unverified_header(root) == header
    chain = remit.Chain.parse(root).delegate(planner, reader, "reader", tools=["fs/read_file"], ttl=600)
    return chain, remit.Jwks.from_json(issuer.jwks()), issuer, reader


def batch_size(fn, seconds: float) -> int:
    """Calls per batch so that a batch takes about a tenth of `seconds`."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - start > seconds / 10:
            return n
        n *= 2


def run_for(fn, n: int, seconds: float) -> float:
    """Microseconds per call over about `seconds` of batches of `n`."""
    start = time.perf_counter()
    deadline, count = start + seconds, 0
    while time.perf_counter() < deadline:
        for _ in range(n):
            fn()
        count += n
    return (time.perf_counter() - start) / count * 1e6


def measure(fn, seconds: float, repeat: int) -> tuple[float, float]:
    """(best, median) microseconds per call over `repeat` runs."""
    n = batch_size(fn, seconds)
    results = [run_for(fn, n, seconds) for _ in range(repeat)]
    return min(results), statistics.median(results)


def measure_pair(ours, theirs, seconds: float, repeat: int) -> dict:
    """Both sides in alternation (ours, theirs, ours, ...), so a change in
    the machine's load hits both alike; the speedup is the median of the
    per-round ratios."""
    n_ours, n_theirs = batch_size(ours, seconds), batch_size(theirs, seconds)
    rounds = [(run_for(ours, n_ours, seconds), run_for(theirs, n_theirs, seconds)) for _ in range(repeat)]
    mine, peer = [r for r, _ in rounds], [p for _, p in rounds]
    return {
        "remit_us": min(mine), "remit_median_us": statistics.median(mine),
        "pyjwt_us": min(peer), "pyjwt_median_us": statistics.median(peer),
        "speedup": statistics.median(p / r for r, p in rounds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", metavar="SIDE:OP", help="run one side of one operation --count times and "
                        "nothing else (for valgrind --tool=callgrind; OP is sign, verify or proof)")
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()

    chain, jwks, issuer, reader = fixture()
    text = chain.text
    root_text, leaf_text = text.split("~")

    # --- DPoP proof signing -------------------------------------------------
    reader_key = ECAlgorithm.from_jwk(json.dumps(reader.private_jwk()))
    reader_public = {k: reader.public_jwk[k] for k in ("kty", "crv", "x", "y")}

    def remit_sign():
        return reader.sign_proof(chain, "POST", URL)

    def pyjwt_sign():
        claims = {
            "jti": b64(os.urandom(16)), "htm": "POST", "htu": URL, "iat": int(time.time()),
            "ath": b64(hashlib.sha256(leaf_text.encode()).digest()),
        }
        return jwt.encode(claims, reader_key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": reader_public})

    # --- chain verification (root + one delegated link) ---------------------
    issuer_public = jwt.PyJWK(issuer.public_jwk, algorithm="ES256")

    def remit_verify():
        return remit.verify_chain(text, jwks)

    def pyjwt_verify():
        root_claims = jwt.decode(root_text, issuer_public.key, algorithms=["ES256"], audience="remit")
        holder = jwt.PyJWK(root_claims["cnf"]["jwk"], algorithm="ES256")
        child = jwt.decode(leaf_text, holder.key, algorithms=["ES256"], audience="remit")
        if child["prf"] != b64(hashlib.sha256(root_text.encode()).digest()):
            raise ValueError("prf")
        return child

    # --- proof verification (the gateway's per-call check) ------------------
    verified = remit.verify_chain(text, jwks)
    proof = remit_sign()
    ath = b64(hashlib.sha256(leaf_text.encode()).digest())

    def remit_verify_proof():
        return verified.verify_proof(proof, "POST", URL)

    def pyjwt_verify_proof():
        header = jwt.get_unverified_header(proof)
        key = jwt.PyJWK(header["jwk"], algorithm="ES256")
        claims = jwt.decode(proof, key.key, algorithms=["ES256"], options={"verify_iat": False})
        if claims["htm"] != "POST" or claims["htu"] != URL or claims["ath"] != ath:
            raise ValueError("proof")
        return claims

    # Both sides agree before they are timed.
    assert pyjwt_verify()["jti"] == verified.jti
    assert jwt.decode(pyjwt_sign(), jwt.PyJWK(reader_public, algorithm="ES256").key, algorithms=["ES256"])
    assert verified.verify_proof(pyjwt_sign(), "POST", URL)
    assert pyjwt_verify_proof()["htu"] == URL

    ops = {
        "sign": (remit_sign, pyjwt_sign), "verify": (remit_verify, pyjwt_verify),
        "proof": (remit_verify_proof, pyjwt_verify_proof),
    }
    if args.only:
        side, op = args.only.split(":")
        fn = ops[op][0 if side == "remit" else 1]
        for _ in range(args.count):
            fn()
        return

    rows = []
    for name, ours, theirs in (
        ("DPoP proof: sign", remit_sign, pyjwt_sign),
        ("chain (2 links): verify", remit_verify, pyjwt_verify),
        ("DPoP proof: verify", remit_verify_proof, pyjwt_verify_proof),
    ):
        rows.append({"operation": name, **measure_pair(ours, theirs, args.seconds, args.repeat)})

    # The gateway's chain cache from Python: the same chain again. PyJWT has
    # no counterpart, so this is shown apart, not as a ratio.
    verifier = remit.Verifier(jwks)
    cached_best, cached_med = measure(lambda: verifier.verify(text), args.seconds, args.repeat)

    env = {
        "python": platform.python_version(), "pyjwt": jwt.__version__,
        "cryptography": __import__("cryptography").__version__, "machine": platform.machine(),
        "cpus": os.cpu_count(), "load": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps({"env": env, "rows": rows, "cached_verify_us": cached_best}, indent=2))
        return
    print(f"python {env['python']}, PyJWT {env['pyjwt']}, cryptography {env['cryptography']}, "
          f"{env['cpus']} cpus, load {env['load']:.1f}")
    print(f"{'operation':<26} {'remit µs':>10} {'PyJWT µs':>10} {'speedup':>8}   (median remit / PyJWT)")
    for r in rows:
        print(f"{r['operation']:<26} {r['remit_us']:>10.1f} {r['pyjwt_us']:>10.1f} {r['speedup']:>7.1f}×"
              f"   ({r['remit_median_us']:.1f} / {r['pyjwt_median_us']:.1f})")
    print(f"{'chain: remit.Verifier hit':<26} {cached_best:>10.1f} {'-':>10} {'':>8}   ({cached_med:.1f})")


if __name__ == "__main__":
    main()
