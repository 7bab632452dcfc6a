//! The projection of a call's JSON arguments into the facts a draft reads.
//!
//! One function, [`ArgFacts::project`], turns arguments into two maps of
//! *facts*: text facts and number facts, keyed by the argument's flattened
//! name plus a suffix naming what was derived (`path#dir`, `url#host`).
//! The same projection serves both ends: observations store its output (so
//! raw values are dropped at the door), and the gateway passes it to Cedar
//! at decision time as the tags of two entities (`context.args_text`,
//! `context.args_number`), so a drafted rule reads exactly what was learned.
//!
//! Every key also gets `K#kind` (`path`, `url`, `email`, `token`, `text`,
//! `number`, `flag`, `list`, `object`), so a rule can tell a key's presence
//! and kind apart from its value, and the keys below the top level are
//! listed with their kinds in one `#nested` fact. What each kind of value
//! leaves behind:
//!
//! | value | facts | raw value kept? |
//! | --- | --- | --- |
//! | path (`/a/b/c.rs`, `src/x`) | `K#dir`: the lexically normalized parent directory, `/`-terminated | no (the file name is dropped) |
//! | URL | `K#host`, `K#scheme` | no |
//! | email | `K#domain` | no |
//! | short token (`open`, `TICK-12`) | `K#shape`, `K#prefix`, `K#h` (keyed hash), `K#len`, and `K` itself unless it looks sensitive | only short, non-sensitive tokens |
//! | free text | `K#len` (characters) | no |
//! | number | `K` (decimal, 4 places) | yes: ranges need it |
//! | boolean, null | `K` | yes |
//! | array | `K#count`, and its elements' facts folded under `K[]` | as for the elements |
//!
//! Object keys are percent-escaped (`#`, `.`, `[`, `]`, `%`) before they are
//! joined, so an argument *named* `path#dir` cannot forge the derived fact of
//! another argument. A path that climbs above its root (`/a/../../etc`) is
//! refused a `#dir` (it gets `K#invalid` instead), so it matches no drafted
//! directory.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Tokens longer than this many characters are treated as free text.
pub const MAX_TOKEN_CHARS: usize = 64;
/// A run of this many digits makes a token sensitive (accounts, cards,
/// phone numbers): only its keyed hash and shape are kept.
pub const SENSITIVE_DIGITS: usize = 5;
/// Deepest nesting projected; a deeper value is of kind `deep`, which no
/// drafted rule admits.
pub const MAX_DEPTH: usize = 6;
/// Scale of number facts: Cedar decimals carry four fractional digits.
pub const NUMBER_SCALE: i64 = 10_000;

/// The secret key of the keyed hashes that stand in for sensitive values.
///
/// The store keeps one per deployment; without it a stored hash cannot be
/// tested against guessed values.
#[derive(Clone)]
pub struct HashKey(aws_lc_rs::hmac::Key);

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(..)")
    }
}

impl HashKey {
    /// A key from secret bytes (at least 16).
    pub fn new(secret: &[u8]) -> Result<Self, crate::DraftError> {
        if secret.len() < 16 {
            return Err(crate::DraftError::WeakKey { len: secret.len() });
        }
        Ok(Self(aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            secret,
        )))
    }

    /// The keyed hash of a value: 64 bits of HMAC-SHA256, hex, prefixed `h:`.
    pub fn hash(&self, value: &str) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.0, value.as_bytes());
        format!("h:{}", hex::encode(&tag.as_ref()[..8]))
    }
}

/// A number fact: a decimal with four fractional digits, as Cedar's
/// `decimal` holds it (value × 10 000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Decimal4(pub i64);

impl Decimal4 {
    /// The decimal nearest to `x`, when Cedar can hold it.
    pub fn from_f64(x: f64) -> Option<Self> {
        let scaled = (x * NUMBER_SCALE as f64).round();
        // Cedar decimals are i64 × 10^-4; keep a margin for range arithmetic.
        (scaled.is_finite() && scaled.abs() < 9.0e17).then_some(Decimal4(scaled as i64))
    }

    /// A whole number as a decimal.
    pub fn whole(n: i64) -> Option<Self> {
        n.checked_mul(NUMBER_SCALE).map(Decimal4)
    }

    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / NUMBER_SCALE as f64
    }

    /// Cedar's literal form: `decimal("12.5")`.
    pub fn cedar(self) -> String {
        format!("decimal(\"{self}\")")
    }
}

impl std::fmt::Display for Decimal4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let int = abs / NUMBER_SCALE as u64;
        let frac = format!("{:04}", abs % NUMBER_SCALE as u64);
        let frac = frac.trim_end_matches('0');
        let frac = if frac.is_empty() { "0" } else { frac };
        write!(f, "{sign}{int}.{frac}")
    }
}

/// The facts projected from one call's arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgFacts {
    /// Top-level argument names (what `context.arg_names` holds).
    pub names: BTreeSet<String>,
    /// Text facts by key.
    pub text: BTreeMap<String, String>,
    /// Number facts by key.
    pub number: BTreeMap<String, Decimal4>,
}

/// The kind of a string value, as the projection sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    /// A file-system path.
    Path,
    /// A URL with a host.
    Url,
    /// An email address.
    Email,
    /// A short token: an identifier, a name, an enumeration member.
    Token,
    /// Free text.
    Text,
    /// A number.
    Number,
    /// A boolean or null.
    Flag,
    /// An array.
    List,
    /// A JSON object (its members are keys of their own).
    Object,
}

impl ArgFacts {
    /// Projects tool arguments. Anything that is not an object projects to
    /// no facts (the gateway refuses such calls before this).
    pub fn project(args: &Value, key: &HashKey) -> Self {
        let mut facts = ArgFacts::default();
        if let Value::Object(map) = args {
            for (name, value) in map {
                facts.names.insert(name.clone());
                let mut p = Projector {
                    facts: &mut facts,
                    key,
                };
                p.value(&escape_key(name), value, 1);
            }
        }
        facts.sign_nested();
        facts
    }

    /// The kind of the value projected under `key` (its `K#kind` fact).
    pub fn kind_of(&self, key: &str) -> Option<ValueKind> {
        let code = self.text.get(&format!("{key}#kind"))?;
        ValueKind::ALL.into_iter().find(|k| k.as_str() == code)
    }

    /// The signature of the nested keys (below the top level) with their
    /// kinds, sorted: `opts.limit:number,opts.path:path`.
    pub fn nested_signature(&self) -> &str {
        self.text.get(NESTED).map(String::as_str).unwrap_or("")
    }

    fn sign_nested(&mut self) {
        let sig: Vec<String> = self
            .text
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_suffix("#kind")?;
                (key.contains('.') || key.contains('[')).then(|| format!("{key}:{v}"))
            })
            .collect();
        // Always present (empty when flat), so a rule can pin it.
        self.text.insert(NESTED.into(), sig.join(","));
    }
}

/// The text fact holding the nested-key signature.
pub const NESTED: &str = "#nested";

impl ValueKind {
    /// Every kind.
    pub const ALL: [ValueKind; 9] = [
        ValueKind::Path,
        ValueKind::Url,
        ValueKind::Email,
        ValueKind::Token,
        ValueKind::Text,
        ValueKind::Number,
        ValueKind::Flag,
        ValueKind::List,
        ValueKind::Object,
    ];

    /// The kind's name, as the `K#kind` fact holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::Path => "path",
            ValueKind::Url => "url",
            ValueKind::Email => "email",
            ValueKind::Token => "token",
            ValueKind::Text => "text",
            ValueKind::Number => "number",
            ValueKind::Flag => "flag",
            ValueKind::List => "list",
            ValueKind::Object => "object",
        }
    }
}

/// Escapes the characters the projection uses as separators.
pub fn escape_key(k: &str) -> String {
    let mut out = String::with_capacity(k.len());
    for c in k.chars() {
        match c {
            '%' | '#' | '.' | '[' | ']' => out.push_str(&format!("%{:02X}", c as u32)),
            _ => out.push(c),
        }
    }
    out
}

struct Projector<'a> {
    facts: &'a mut ArgFacts,
    key: &'a HashKey,
}

impl Projector<'_> {
    fn value(&mut self, k: &str, v: &Value, depth: usize) {
        if depth > MAX_DEPTH {
            // Too deep to look into: a kind no rule admits.
            self.facts.text.insert(format!("{k}#kind"), "deep".into());
            return;
        }
        let kind = match v {
            Value::Null | Value::Bool(_) => ValueKind::Flag,
            Value::Number(_) => ValueKind::Number,
            Value::String(s) => classify(s),
            Value::Array(_) => ValueKind::List,
            Value::Object(_) => ValueKind::Object,
        };
        self.facts
            .text
            .insert(format!("{k}#kind"), kind.as_str().to_owned());
        match v {
            Value::Null => self.flag(k, "null"),
            Value::Bool(b) => self.flag(k, if *b { "true" } else { "false" }),
            Value::Number(n) => {
                if let Some(d) = n.as_f64().and_then(Decimal4::from_f64) {
                    self.facts.number.insert(k.to_owned(), d);
                } else {
                    self.facts
                        .text
                        .insert(format!("{k}#invalid"), "number".into());
                }
            }
            Value::String(s) => self.string(k, s),
            Value::Array(items) => self.array(k, items, depth),
            Value::Object(map) => {
                for (name, inner) in map {
                    self.value(&format!("{k}.{}", escape_key(name)), inner, depth + 1);
                }
            }
        }
    }

    fn flag(&mut self, k: &str, v: &str) {
        self.facts.text.insert(k.to_owned(), v.to_owned());
    }

    fn string(&mut self, k: &str, s: &str) {
        let text = &mut self.facts.text;
        match classify(s) {
            ValueKind::Url => {
                if let Some((scheme, host)) = url_host(s) {
                    text.insert(format!("{k}#host"), host);
                    text.insert(format!("{k}#scheme"), scheme);
                }
            }
            ValueKind::Email => {
                let domain = s.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
                text.insert(format!("{k}#domain"), domain.to_ascii_lowercase());
            }
            ValueKind::Path => match parent_dir(s) {
                Some(dir) => {
                    text.insert(format!("{k}#dir"), dir);
                }
                None => {
                    text.insert(format!("{k}#invalid"), "path".into());
                }
            },
            ValueKind::Token => {
                // a token is also text: free-text rules read its length
                if let Some(d) = Decimal4::whole(s.chars().count() as i64) {
                    self.facts.number.insert(format!("{k}#len"), d);
                }
                text.insert(format!("{k}#shape"), shape(s));
                text.insert(format!("{k}#prefix"), prefix(s));
                text.insert(format!("{k}#h"), self.key.hash(s));
                if !is_sensitive(s) {
                    text.insert(k.to_owned(), s.to_owned());
                }
            }
            _ => {
                let len = s.chars().count() as i64;
                if let Some(d) = Decimal4::whole(len) {
                    self.facts.number.insert(format!("{k}#len"), d);
                }
            }
        }
    }

    /// Folds the elements' facts under `K[]`: directories to their longest
    /// common directory, numbers to their maximum (`K[]`) and minimum
    /// (`K[]#min`), any other text fact to its value when all elements
    /// agree and to `*mixed*` when they do not.
    fn array(&mut self, k: &str, items: &[Value], depth: usize) {
        if let Some(d) = Decimal4::whole(items.len() as i64) {
            self.facts.number.insert(format!("{k}#count"), d);
        }
        let elem = format!("{k}[]");
        let mut folded = ArgFacts::default();
        for item in items {
            let mut one = ArgFacts::default();
            Projector {
                facts: &mut one,
                key: self.key,
            }
            .value(&elem, item, depth + 1);
            fold(&mut folded, one, &elem);
        }
        self.facts.text.extend(folded.text);
        self.facts.number.extend(folded.number);
    }
}

fn fold(acc: &mut ArgFacts, one: ArgFacts, elem: &str) {
    for (k, v) in one.text {
        match acc.text.get_mut(&k) {
            None => {
                acc.text.insert(k, v);
            }
            Some(cur) if k.ends_with("#dir") => *cur = common_dir(cur, &v),
            Some(cur) if *cur != v => *cur = "*mixed*".into(),
            Some(_) => {}
        }
    }
    for (k, v) in one.number {
        let min_key = format!("{k}#min");
        if k == elem {
            let lo = acc.number.get(&min_key).copied().unwrap_or(v).min(v);
            acc.number.insert(min_key, lo);
        }
        let cur = acc.number.entry(k).or_insert(v);
        *cur = (*cur).max(v);
    }
}

/// The kind of a string value.
pub fn classify(s: &str) -> ValueKind {
    if s.contains("://") && url_host(s).is_some() {
        return ValueKind::Url;
    }
    let no_space = !s.chars().any(char::is_whitespace);
    if no_space && is_email(s) {
        return ValueKind::Email;
    }
    if no_space && is_path(s) {
        return ValueKind::Path;
    }
    if no_space && !s.is_empty() && s.chars().count() <= MAX_TOKEN_CHARS {
        return ValueKind::Token;
    }
    ValueKind::Text
}

fn url_host(s: &str) -> Option<(String, String)> {
    let u = url::Url::parse(s).ok()?;
    let host = u.host_str()?.to_ascii_lowercase();
    Some((u.scheme().to_owned(), host.trim_end_matches('.').to_owned()))
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn is_path(s: &str) -> bool {
    s.starts_with('/')
        || s.starts_with("./")
        || s.starts_with("../")
        || s.starts_with("~/")
        || (s.contains('/') && !s.contains(':'))
}

/// The lexically normalized parent directory of a path, ending in `/`;
/// `None` when `..` climbs above the path's root. Relative paths are
/// anchored at `./`, home paths at `~/`.
pub fn parent_dir(path: &str) -> Option<String> {
    let (root, rest) = if let Some(r) = path.strip_prefix('/') {
        ("/", r)
    } else if let Some(r) = path.strip_prefix("~/") {
        ("~/", r)
    } else {
        ("./", path)
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    // A trailing slash names a directory: it is its own parent.
    if !path.ends_with('/') {
        parts.pop();
    }
    let mut dir = root.to_owned();
    for p in parts {
        dir.push_str(p);
        dir.push('/');
    }
    Some(dir)
}

/// The longest common directory of two `/`-terminated directories.
pub fn common_dir(a: &str, b: &str) -> String {
    let mut end = 0;
    for ((i, x), y) in a.char_indices().zip(b.chars()) {
        if x != y {
            break;
        }
        if x == '/' {
            end = i + 1;
        }
    }
    a[..end].to_owned()
}

/// The pattern class of a token: letter runs as `a`/`A`, digit runs as `9`,
/// hex runs of 8 or more as `x`, other characters kept; a UUID is `uuid`.
pub fn shape(s: &str) -> String {
    if is_uuid(s) {
        return "uuid".into();
    }
    if s.len() >= 16 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        return "hex".into();
    }
    let mut out = String::new();
    let mut last = None;
    for c in s.chars() {
        let class = if c.is_ascii_digit() {
            '9'
        } else if c.is_uppercase() {
            'A'
        } else if c.is_alphabetic() {
            'a'
        } else {
            c
        };
        let run = matches!(class, '9' | 'A' | 'a');
        if !(run && last == Some(class)) {
            out.push(class);
        }
        last = Some(class);
    }
    out
}

/// The leading letters of a token when a digit or separator follows them
/// (`TICK` of `TICK-12`); empty otherwise.
pub fn prefix(s: &str) -> String {
    let letters: String = s.chars().take_while(|c| c.is_alphabetic()).collect();
    if letters.len() < s.len() {
        letters
    } else {
        String::new()
    }
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A token is sensitive when it holds a long run of digits.
pub fn is_sensitive(s: &str) -> bool {
    let mut run = 0;
    for c in s.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run >= SENSITIVE_DIGITS {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> HashKey {
        HashKey::new(&[7; 32]).unwrap()
    }

    #[test]
    fn paths_keep_only_their_normalized_directory() {
        let f = ArgFacts::project(&json!({"path": "/repo/acme/src/../lib/x.rs"}), &key());
        assert_eq!(f.text["path#dir"], "/repo/acme/lib/");
        assert!(!f.text.values().any(|v| v.contains("x.rs")));
    }

    #[test]
    fn path_traversal_above_the_root_has_no_directory() {
        let f = ArgFacts::project(&json!({"path": "/repo/../../etc/passwd"}), &key());
        assert!(!f.text.contains_key("path#dir"));
        assert_eq!(f.kind_of("path"), Some(ValueKind::Path));
    }

    #[test]
    fn urls_and_emails_keep_their_host_or_domain_only() {
        let f = ArgFacts::project(
            &json!({"url": "https://Docs.RS/serde?q=secret", "to": "ann@Example.com"}),
            &key(),
        );
        assert_eq!(f.text["url#host"], "docs.rs");
        assert_eq!(f.text["to#domain"], "example.com");
        assert!(!f
            .text
            .values()
            .any(|v| v.contains("secret") || v.contains("ann")));
    }

    #[test]
    fn sensitive_tokens_are_kept_as_keyed_hashes_only() {
        let f = ArgFacts::project(
            &json!({"account": "ACC-00123456", "status": "open"}),
            &key(),
        );
        assert!(!f.text.contains_key("account"));
        assert!(f.text["account#h"].starts_with("h:"));
        assert_eq!(f.text["account#shape"], "A-9");
        assert_eq!(f.text["status"], "open");
    }

    #[test]
    fn fact_key_smuggling_through_argument_names_is_escaped() {
        let f = ArgFacts::project(
            &json!({"path": "/etc/passwd", "path#dir": "/repo/acme/"}),
            &key(),
        );
        assert_eq!(f.text["path#dir"], "/etc/");
        assert!(f.text.contains_key("path%23dir#dir"));
    }

    #[test]
    fn arrays_fold_to_common_facts() {
        let f = ArgFacts::project(
            &json!({"files": ["/r/a/x", "/r/b/y"], "to": ["a@x.com", "b@y.com"], "n": [3, 9]}),
            &key(),
        );
        assert_eq!(f.text["files[]#dir"], "/r/");
        assert_eq!(f.text["to[]#domain"], "*mixed*");
        assert_eq!(f.number["n[]"], Decimal4::whole(9).unwrap());
        assert_eq!(f.number["n[]#min"], Decimal4::whole(3).unwrap());
        assert_eq!(f.number["files#count"], Decimal4::whole(2).unwrap());
    }

    #[test]
    fn decimals_print_as_cedar_reads_them() {
        assert_eq!(Decimal4::from_f64(12.5).unwrap().to_string(), "12.5");
        assert_eq!(Decimal4::from_f64(-0.25).unwrap().to_string(), "-0.25");
        assert_eq!(Decimal4::whole(3).unwrap().cedar(), "decimal(\"3.0\")");
    }

    #[test]
    fn shapes_class_identifiers() {
        assert_eq!(shape("TICK-1234"), "A-9");
        assert_eq!(shape("550e8400-e29b-41d4-a716-446655440000"), "uuid");
        assert_eq!(prefix("TICK-1234"), "TICK");
        assert_eq!(prefix("open"), "");
    }
}
