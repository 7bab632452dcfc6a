"""Labelled corpus (seeded Faker) -> remit scan and Presidio -> per-type P/R/F1.

Every document is built from a template (prose, JSON, log line, CSV) around
zero or more labelled values; offsets are UTF-8 byte spans. A prediction is a
true positive when its type matches a label of that type and the spans
overlap. Negatives (order numbers, timestamps, UUIDs, Luhn-invalid 16-digit
numbers, version strings) carry no labels, so anything found there counts
against precision. Evasion variants (zero-width, full-width, split with
separators, JSON-escaped, base64) are scored separately.
"""

import argparse
import base64
import hashlib
import json
import os
import random
import string
import subprocess
import sys
import time
from collections import defaultdict

from faker import Faker

# ---------------------------------------------------------------- generators

def luhn_digit(body):
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def nhs(rng):
    while True:
        d = [rng.randint(0, 9) for _ in range(9)]
        check = 11 - sum(x * (10 - i) for i, x in enumerate(d)) % 11
        check = 0 if check == 11 else check
        if check != 10:
            s = "".join(map(str, d)) + str(check)
            return f"{s[:3]} {s[3:6]} {s[6:]}"


def steuer_id(rng):
    while True:
        digits = rng.sample(range(10), 9)
        if digits[0] == 0:
            continue
        digits.insert(rng.randint(1, 9), digits[rng.randint(0, 8)])
        product = 10
        for x in digits:
            s = (x + product) % 10 or 10
            product = (s * 2) % 11
        check = (11 - product) % 10
        return "".join(map(str, digits)) + str(check)


def nino(rng):
    first = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
        return nino(rng)
    d = "".join(rng.choice(string.digits) for _ in range(6))
    return f"{first}{second} {d[:2]} {d[2:4]} {d[4:]} {rng.choice('ABCD')}"


def b58check(payload):
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = alphabet[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def rand_token(rng, n, chars=string.ascii_letters + string.digits):
    return "".join(rng.choice(chars) for _ in range(n))


def jwt(rng):
    enc = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()
    return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc({'sub': rand_token(rng, 8), 'iat': 1700000000})}.{rand_token(rng, 43, string.ascii_letters + string.digits + '-_')}"


def card(fake, rng):
    kind = rng.choice(["visa16", "mastercard", "amex", "discover", "jcb16", "diners"])
    number = fake.credit_card_number(card_type=kind)
    # Faker draws JCB numbers from all of 35xx; only 3528-3589 are JCB IINs.
    while kind == "jcb16" and not 3528 <= int(number[:4]) <= 3589:
        number = fake.credit_card_number(card_type=kind)
    style = rng.choice(["plain", "space", "dash"])
    if style == "plain" or len(number) != 16:
        return number
    sep = " " if style == "space" else "-"
    return sep.join(number[i:i + 4] for i in range(0, 16, 4))


def make_value(kind, fakes, rng):
    f = fakes
    if kind == "CREDIT_CARD":
        return "card number", card(f["en_US"], rng)
    if kind == "IBAN":
        iban = f[rng.choice(["de_DE", "fr_FR", "en_GB", "nl_NL", "es_ES", "it_IT"])].iban()
        if rng.random() < 0.5:
            iban = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
        return "IBAN", iban
    if kind == "US_SSN":
        return "SSN", f["en_US"].ssn()
    if kind == "US_ITIN":
        return "ITIN", f["en_US"].itin()
    if kind == "UK_NINO":
        return "National Insurance number", nino(rng)
    if kind == "UK_NHS":
        return "NHS number", nhs(rng)
    if kind == "DE_STEUER_ID":
        return "Steuer-ID", steuer_id(rng)
    if kind == "FR_NIR":
        return "numéro de sécurité sociale (NIR)", f["fr_FR"].ssn()
    if kind == "ES_DNI":
        return "DNI/NIE", rng.choice([f["es_ES"].nif(), f["es_ES"].nie()])
    if kind == "IT_CODICE_FISCALE":
        return "codice fiscale", f["it_IT"].ssn()
    if kind == "NL_BSN":
        return "BSN", f["nl_NL"].ssn()
    if kind == "PL_PESEL":
        return "PESEL", f["pl_PL"].pesel()
    if kind == "SE_PERSONNUMMER":
        return "personnummer", f["sv_SE"].ssn()
    if kind == "EMAIL":
        return "email", f[rng.choice(list(f))].email()
    if kind == "PHONE":
        return "phone", f[rng.choice(["en_US", "en_GB", "fr_FR", "de_DE"])].phone_number()
    if kind == "IPV4":
        return "client ip", f["en_US"].ipv4_public()
    if kind == "IPV6":
        return "client ip", f["en_US"].ipv6()
    if kind == "MAC_ADDRESS":
        return "mac", f["en_US"].mac_address()
    if kind == "DATE_OF_BIRTH":
        d = f["en_US"].date_of_birth()
        return "date of birth", rng.choice([d.isoformat(), d.strftime("%d/%m/%Y"), d.strftime("%B %d, %Y")])
    if kind == "PASSPORT":
        return "passport number", f["en_US"].passport_number()
    if kind == "AWS_ACCESS_KEY_ID":
        return "aws key", "AKIA" + rand_token(rng, 16, string.ascii_uppercase + "234567")
    if kind == "GITHUB_TOKEN":
        return "github token", "ghp_" + rand_token(rng, 36)
    if kind == "STRIPE_KEY":
        return "stripe", "sk_live_" + rand_token(rng, 24)
    if kind == "GOOGLE_API_KEY":
        return "google key", "AIza" + rand_token(rng, 35, string.ascii_letters + string.digits + "-_")
    if kind == "SLACK_TOKEN":
        return "slack", f"xoxb-{rng.randint(10**11, 10**12)}-{rand_token(rng, 24)}"
    if kind == "JWT":
        return "authorization", jwt(rng)
    if kind == "DATABASE_URL":
        return "db", f"postgres://{f['en_US'].user_name()}:{rand_token(rng, 14)}@{f['en_US'].domain_name()}:5432/app"
    if kind == "BITCOIN_ADDRESS":
        return "btc wallet", b58check(b"\x00" + bytes(rng.getrandbits(8) for _ in range(20)))
    if kind == "ETHEREUM_ADDRESS":
        return "eth wallet", "0x" + "".join(rng.choice("0123456789abcdef") for _ in range(40))
    raise ValueError(kind)


TYPES = [
    "CREDIT_CARD", "IBAN", "US_SSN", "US_ITIN", "UK_NINO", "UK_NHS", "DE_STEUER_ID", "FR_NIR",
    "ES_DNI", "IT_CODICE_FISCALE", "NL_BSN", "PL_PESEL", "SE_PERSONNUMMER", "EMAIL", "PHONE",
    "IPV4", "IPV6", "MAC_ADDRESS", "DATE_OF_BIRTH", "PASSPORT", "AWS_ACCESS_KEY_ID",
    "GITHUB_TOKEN", "STRIPE_KEY", "GOOGLE_API_KEY", "SLACK_TOKEN", "JWT", "DATABASE_URL",
    "BITCOIN_ADDRESS", "ETHEREUM_ADDRESS",
]

NEGATIVES = [
    lambda rng, f: f"order ORD-{rng.randint(2020, 2026)}-{rng.randint(0, 999999):06d} shipped",
    lambda rng, f: f"at {f.iso8601()} the job finished",
    lambda rng, f: f"request id {f.uuid4()}",
    lambda rng, f: "ref " + (lambda b: b[:-1] + str((int(luhn_digit(b[:-1])) + 1) % 10))(
        f.credit_card_number(card_type="visa16")),
    lambda rng, f: f"version {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}.{rng.randint(0, 999)}.{rng.randint(1, 9)}",
    lambda rng, f: f"invoice {rng.randint(10**8, 10**9 - 1)} total {rng.randint(1, 999)}.{rng.randint(0, 99):02d} EUR",
    lambda rng, f: f"build {rng.randint(10**10, 10**11)} took {rng.randint(1, 60)}s",
]

# ---------------------------------------------------------------- templates

def render(template, name, label, value):
    """Returns (text, byte_start, byte_end) of value inside the rendered doc."""
    if template == "prose":
        before = f"Hi team, please update the record for {name}: their {label} is "
        after = ". Thanks!"
    elif template == "json":
        before = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"crm.update","arguments":{"customer":' + json.dumps(name) + ',"note":' + json.dumps(f"{label}: ")[:-1]
        after = '"}}}'
        value = json.dumps(value)[1:-1]
    elif template == "log":
        before = f"2026-11-25T10:00:00Z INFO user={name.replace(' ', '_')} {label.replace(' ', '_')}="
        after = " status=ok"
    else:
        before = f"name,{label}\n{name},"
        after = "\n"
    text = before + value + after
    start = len(before.encode())
    return text, start, start + len(value.encode())


EVASIONS = ["zero_width", "full_width", "split", "json_escape", "base64"]


def evade(kind, value, how, rng):
    """Returns the evasive text standing for value (None if not applicable)."""
    if how == "zero_width":
        chars = list(value)
        for _ in range(3):
            chars.insert(rng.randint(1, len(chars) - 1), rng.choice(["\u200b", "\u200c", "\u2060", "\ufeff"]))
        return "".join(chars)
    if how == "full_width":
        return "".join(chr(ord(c) - 0x21 + 0xFF01) if "!" <= c <= "~" else c for c in value)
    if how == "split":
        digits = value.replace(" ", "").replace("-", "")
        if not digits.isdigit() or len(digits) < 12:
            return None
        return " ".join(digits[i:i + 4] for i in range(0, len(digits), 4)) if rng.random() < 0.5 else ".".join(digits[i:i + 4] for i in range(0, len(digits), 4))
    if how == "json_escape":
        return "".join(f"\\u{ord(c):04x}" if c.isalnum() and rng.random() < 0.5 else c for c in value)
    if how == "base64":
        return base64.b64encode(value.encode()).decode()
    return None


EVASION_TYPES = ["CREDIT_CARD", "EMAIL", "US_SSN", "IBAN", "UK_NINO", "AWS_ACCESS_KEY_ID", "GITHUB_TOKEN"]


def corpus(n_per_type, seed):
    rng = random.Random(seed)
    locales = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "sv_SE"]
    fakes = {}
    for i, loc in enumerate(locales):
        fakes[loc] = Faker(loc)
        fakes[loc].seed_instance(seed + i)
    docs = []
    templates = ["prose", "json", "log", "csv"]
    for kind in TYPES:
        for i in range(n_per_type):
            label, value = make_value(kind, fakes, rng)
            name = fakes[rng.choice(locales)].name()
            text, s, e = render(templates[i % 4], name, label, value)
            docs.append({"set": "typed", "text": text, "labels": [(kind, s, e)]})
    for i in range(n_per_type * 3):
        text = NEGATIVES[i % len(NEGATIVES)](rng, fakes["en_US"])
        docs.append({"set": "negative", "text": text, "labels": []})
    for kind in EVASION_TYPES:
        for how in EVASIONS:
            for i in range(max(4, n_per_type // 5)):
                label, value = make_value(kind, fakes, rng)
                ev = evade(kind, value, how, rng)
                if ev is None:
                    continue
                tmpl = "json" if how == "json_escape" else templates[i % 4]
                if how == "json_escape":
                    before = '{"arguments":{"note":"' + label + ': '
                    text = before + ev + '"}}'
                    s = len(before.encode())
                    e = s + len(ev.encode())
                else:
                    text, s, e = render(tmpl, "A. Person", label, ev)
                docs.append({"set": f"evasion:{how}", "text": text, "labels": [(kind, s, e)]})
    return docs

# ---------------------------------------------------------------- engines

def run_remit(docs, binary):
    if os.environ.get("REMIT_SCAN_JSONL"):
        # In-process scanner (crates/remit-scan/examples/scan_jsonl.rs): no
        # process start per document, no whole-workspace build.
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from eval_ext import run_remit as run_jsonl
        return run_jsonl(docs)
    preds, elapsed = [], 0.0
    for d in docs:
        t = time.perf_counter()
        out = subprocess.run([binary, "scan", "--json", "--redact", "drop", "-"], input=d["text"].encode(),
                             capture_output=True, check=False)
        elapsed += time.perf_counter() - t
        if out.returncode != 0:
            raise SystemExit(f"remit failed: {out.stderr.decode()}")
        report = json.loads(out.stdout)
        preds.append([(f["type"], f["start"], f["end"]) for f in report["findings"]])
    return preds, elapsed / len(docs)


PRESIDIO_MAP = {
    "CREDIT_CARD": "CREDIT_CARD", "IBAN_CODE": "IBAN", "US_SSN": "US_SSN", "US_ITIN": "US_ITIN",
    "UK_NINO": "UK_NINO", "UK_NHS": "UK_NHS", "DE_TAX_ID": "DE_STEUER_ID", "ES_NIF": "ES_DNI",
    "ES_NIE": "ES_DNI", "IT_FISCAL_CODE": "IT_CODICE_FISCALE", "PL_PESEL": "PL_PESEL",
    "SE_PERSONNUMMER": "SE_PERSONNUMMER", "EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE",
    "MAC_ADDRESS": "MAC_ADDRESS", "DATE_TIME": "DATE_OF_BIRTH", "US_PASSPORT": "PASSPORT",
    "UK_PASSPORT": "PASSPORT", "CRYPTO": "BITCOIN_ADDRESS",
}


def presidio_engine():
    import spacy
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry
    from presidio_analyzer import predefined_recognizers as pr
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class BlankSpacy(SpacyNlpEngine):
        def __init__(self):
            super().__init__(models=[{"lang_code": "en", "model_name": "blank"}])

        def load(self):
            self.nlp = {"en": spacy.blank("en")}

    engine = BlankSpacy()
    engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    skip = ("Url", "Spacy", "Stanza", "Transformers", "GLiNER", "HuggingFace", "Azure", "Ahds", "LangExtract", "Medical")
    for name in dir(pr):
        cls = getattr(pr, name)
        if not isinstance(cls, type) or not issubclass(cls, EntityRecognizer) or any(s.lower() in name.lower() for s in skip):
            continue
        try:
            registry.add_recognizer(cls(supported_language="en"))
        except Exception:
            pass
    return AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])


def run_presidio(docs):
    analyzer = presidio_engine()
    preds, elapsed = [], 0.0
    for d in docs:
        text = d["text"]
        t = time.perf_counter()
        results = analyzer.analyze(text=text, language="en")
        elapsed += time.perf_counter() - t
        out = []
        for r in results:
            kind = PRESIDIO_MAP.get(r.entity_type)
            if kind is None and r.entity_type == "IP_ADDRESS":
                kind = "IPV6" if ":" in text[r.start:r.end] else "IPV4"
            if kind is None:
                continue
            s = len(text[:r.start].encode())
            e = len(text[:r.end].encode())
            out.append((kind, s, e))
        preds.append(out)
    return preds, elapsed / len(docs)

# ---------------------------------------------------------------- scoring

def score(docs, preds, subset):
    tp, fp, fn = defaultdict(int), defaultdict(int), defaultdict(int)
    for d, p in zip(docs, preds):
        if not subset(d):
            continue
        matched = set()
        for kind, s, e in d["labels"]:
            hit = [i for i, (k, ps, pe) in enumerate(p) if k == kind and ps < e and s < pe]
            if hit:
                tp[kind] += 1
                matched.update(hit)
            else:
                fn[kind] += 1
        for i, (k, _, _) in enumerate(p):
            if i not in matched:
                fp[k] += 1
    return tp, fp, fn


def prf(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=40, help="documents per type")
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--no-presidio", action="store_true", help="score Remit only")
    args = ap.parse_args()
    docs = corpus(args.docs, args.seed)
    os.makedirs(os.path.join(os.path.dirname(__file__), "out"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "out", "corpus.jsonl"), "w") as fh:
        for d in docs:
            fh.write(json.dumps(d) + "\n")
    remit, remit_t = run_remit(docs, os.environ.get("REMIT_BIN"))
    pres, pres_t = ([[] for _ in docs], 0.0) if args.no_presidio else run_presidio(docs)

    def not_evasion(d):
        return not d["set"].startswith("evasion")

    r_tp, r_fp, r_fn = score(docs, remit, not_evasion)
    p_tp, p_fp, p_fn = score(docs, pres, not_evasion)
    print(f"corpus: {len(docs)} documents, seed {args.seed}, {args.docs} per type\n")
    print("| type | Remit P | Remit R | Remit F1 | Presidio P | Presidio R | Presidio F1 |")
    print("|---|---|---|---|---|---|---|")
    totals = [0] * 6
    for kind in TYPES:
        rp, rr, rf = prf(r_tp[kind], r_fp[kind], r_fn[kind])
        pp, prr, pf = prf(p_tp[kind], p_fp[kind], p_fn[kind])
        print(f"| {kind} | {rp:.3f} | {rr:.3f} | {rf:.3f} | {pp:.3f} | {prr:.3f} | {pf:.3f} |")
        for i, v in enumerate((r_tp[kind], r_fp[kind], r_fn[kind], p_tp[kind], p_fp[kind], p_fn[kind])):
            totals[i] += v
    rp, rr, rf = prf(*totals[:3])
    pp, prr, pf = prf(*totals[3:])
    print(f"| **micro average** | {rp:.3f} | {rr:.3f} | {rf:.3f} | {pp:.3f} | {prr:.3f} | {pf:.3f} |")
    extra = {k: v for k, v in r_fp.items() if k not in TYPES}
    if extra:
        print(f"\nRemit findings of other types (counted against precision above only when typed): {extra}")
    print("\n| evasion | Remit recall | Presidio recall |")
    print("|---|---|---|")
    for how in EVASIONS:
        sub = lambda d, how=how: d["set"] == f"evasion:{how}"
        a = score(docs, remit, sub)
        b = score(docs, pres, sub)
        ra = sum(a[0].values()) / max(1, sum(a[0].values()) + sum(a[2].values()))
        rb = sum(b[0].values()) / max(1, sum(b[0].values()) + sum(b[2].values()))
        print(f"| {how} | {ra:.3f} | {rb:.3f} |")
    how = "in-process scanner" if os.environ.get("REMIT_SCAN_JSONL") else "CLI, includes process start"
    print(f"\ntime per document: Remit {remit_t * 1e3:.2f} ms ({how}), Presidio {pres_t * 1e3:.2f} ms (in-process)")
    misses = [(d["set"], d["labels"][0][0], d["text"][:120]) for d, p in zip(docs, remit)
              if d["labels"] and not any(k == d["labels"][0][0] for k, _, _ in p)]
    with open(os.path.join(os.path.dirname(__file__), "out", "remit-misses.txt"), "w") as fh:
        for m in misses:
            fh.write(repr(m) + "\n")
    print(f"Remit misses written to out/remit-misses.txt ({len(misses)})")


if __name__ == "__main__":
    main()
