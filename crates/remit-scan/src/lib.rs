//! Deterministic PII and secret scanning for Remit: normalization that
//! attackers cannot hide behind, a one-pass prefilter, checksum validators,
//! classification and redaction. Pure: no I/O, no clock, no threads.
//!
//! # Model
//!
//! [`Scanner::scan`] takes the bytes of a tool argument, a tool result or a
//! prompt and returns a [`ScanReport`]: a list of [`Finding`]s and the
//! highest [`Classification`] among them. The gateway compares that
//! classification with the destination's clearance and denies, redacts or
//! allows; the receipt records the findings. A finding never holds the value
//! it matched: only its type, its byte span in the original input, the JSON
//! path of the value when the input is JSON, what the validator established,
//! the normalization steps that revealed it, and what the configured
//! [`Redaction`] yields (a mask, a keyed HMAC, or nothing).
//!
//! The pipeline:
//!
//! 1. **Read.** JSON input (auto-detected, or forced) is walked once to learn
//!    the span and path of every string and number. Invalid UTF-8 is scanned
//!    as bytes (invalid bytes become spaces) and flagged with a warning.
//!    Input over [`ScanConfig::max_bytes`] is refused, never truncated.
//! 2. **Normalize** what a downstream reader would see, keeping a map from
//!    every normalized byte to the original bytes: JSON string escapes
//!    (`\u0034` is `4`), NFKC (full-width digits, ligatures), removal of
//!    zero-width, bidi and other `Cf` characters and combining marks,
//!    homoglyph folding (Cyrillic and Greek look-alikes, the digits of
//!    every Unicode `Nd` block, Unicode dashes and spaces); in text, `\n`,
//!    `\t` and `\r` escapes read as the whitespace they stand for. Plain
//!    ASCII without escapes is scanned in place: no copy, no map.
//! 3. **Recognize** behind cheap prefilters: patterns that start with a
//!    literal or a narrow byte class (`AKIA`, `ghp_`, `@`, digits) use the
//!    `regex` crate's literal prefilters and skip clean text at memchr
//!    speed; patterns that start with letters (IBAN, NINO, codice fiscale)
//!    run only in windows around digits; keyword-anchored patterns run only
//!    in windows around their keywords, found for all recognizers in one
//!    Aho-Corasick pass. Every candidate goes through its validator (Luhn
//!    and the IIN table, IBAN mod-97, national-ID checksums, base58check,
//!    bech32, entropy for generic secrets; documentation placeholders such
//!    as `AKIA` + `XXXX…` or `…EXAMPLE` are not secrets). Any separator
//!    class between digit groups (space, dash, dot, slash, underscore, ` - `,
//!    two spaces, in any grouping) is part of the patterns and skipped by
//!    the validators, so a checksum decides; dotted quads, UUID groups and
//!    written dates are not joined into identifiers. Formats that are only
//!    personal data next to a label (BIC, dates of birth, passports, bare
//!    9-digit SSNs, BSN, NHS, phone numbers with no `+`, trunk `0` or
//!    area code in parentheses) need a keyword within 48 bytes before the
//!    value (which may span a line break, as in a CSV header), or after it
//!    for phones (`9388 4482 office`). PESEL and Steuer-ID, whose checks
//!    pass for under 1 % of random 11-digit runs, are found without one
//!    when the number stands alone and no nearby word labels it as an
//!    order, invoice, tracking or phone number; BSN only in its own
//!    `dddd.dd.ddd` form (its 11-test alone passes 1 number in 11).
//! 4. **Decode** percent-encoding (each run of `%XX` that is UTF-8), base64
//!    and hex blobs into new segments
//!    (at most two layers, each blob at most 256 KiB, all decoded output of a
//!    scan within [`ScanConfig::max_decoded_bytes`]) and recognize again.
//! 5. **Resolve** duplicates (the same value seen through two layers) and
//!    matches contained in a larger one (an email inside a database URL),
//!    then classify through a configurable [`ClassMap`].
//!
//! # Threat model
//!
//! The adversary controls the text (a prompt-injected agent exfiltrating
//! data, or a careless one) and wants personal data or a secret to pass
//! unseen. Normalization defeats zero-width characters, width tricks,
//! homoglyph substitution, JSON escaping, separators inside numbers, and
//! percent/base64/hex wrapping up to two layers. The `regex` crate runs in
//! time linear in the input, so no input can make the scanner slow; all
//! decoding is capped, so no input can make it large.
//!
//! Out of scope, by design: a value split across JSON fields or across
//! separate calls (`{"a":"4111 1111","b":"1111 1111"}`), values spelled out
//! in words or any encoding beyond the ones above (rot13, encryption,
//! compression), free-text names and addresses (this is not an NER model),
//! and values that need a context keyword but come without one. A scanner is
//! a seat belt against leaks, not a proof that none can happen: the
//! capability model (what a remit lets an agent call at all) is the first
//! line.
//!
//! # Example
//!
//! ```
//! use remit_scan::{Classification, FindingType, ScanConfig, Scanner};
//!
//! let scanner = Scanner::new(ScanConfig::default());
//! let input = br#"{"params":{"arguments":{"body":"card 4111 1111 1111 1111"}}}"#;
//! let report = scanner.scan(input).unwrap();
//! let card = &report.findings[0];
//! assert_eq!(card.kind, FindingType::CreditCard);
//! assert_eq!(card.path.as_deref(), Some("$.params.arguments.body"));
//! assert_eq!(card.redacted.as_deref(), Some("************1111"));
//! assert_eq!(report.classification, Classification::Restricted);
//! ```

mod classify;
mod decode;
mod error;
mod finding;
mod json;
mod normalize;
mod recognize;
mod redact;
mod scanner;
mod validate;

pub use classify::{ClassMap, Classification};
pub use error::ScanError;
pub use finding::{Confidence, Finding, FindingType, Transforms, Validation};
pub use redact::{HmacKey, Redaction};
pub use scanner::{scan, InputFormat, ScanConfig, ScanReport, Scanner, Warning};

#[cfg(test)]
mod tests;
