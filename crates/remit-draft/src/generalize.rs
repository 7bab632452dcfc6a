//! Generalization: the values one argument took, turned into the narrowest
//! readable constraint that still admits the same pattern of calls.
//!
//! | kind | observed | drafted constraint |
//! | --- | --- | --- |
//! | path | parent directories | their longest common directory per root group (`/repo/acme/*`), never shallower than [`Limits::min_path_depth`] nor above a floor the remit sets |
//! | URL | hosts, schemes | the host set; `*.example.com` once three subdomains of it are seen |
//! | email | domains | the domain set, generalized the same way |
//! | token | values (or keyed hashes), shapes | a small repeated set is kept as an enumeration (hashed when sensitive), otherwise the shape and prefix classes |
//! | text | lengths | at most twice the longest, rounded up to 1-2-5 |
//! | number | values | 0 (or the rounded-down minimum when negative) up to the maximum rounded up to 1-2-5 |
//! | list | lengths, folded elements | the count bound, and the elements' constraint |
//! | flag | values | the set |

use std::collections::{BTreeMap, BTreeSet};

use crate::facts::{Decimal4, ValueKind};

/// Tuning of the generalizers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most distinct values kept as an enumeration.
    pub max_enum: usize,
    /// An enumeration needs this many calls per distinct value (values
    /// must repeat before they are taken for a closed set).
    pub enum_repeat: usize,
    /// Distinct subdomains of one domain before `*.domain` is drafted.
    pub wildcard_subdomains: usize,
    /// Components an absolute drafted directory keeps at least (`/repo/acme/` is 2).
    pub min_path_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_enum: 8,
            enum_repeat: 3,
            wildcard_subdomains: 3,
            min_path_depth: 2,
        }
    }
}

/// What the values of one kind of one key were generalized to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindConstraint {
    /// Directories: the value's directory lies under one of these.
    Under(BTreeSet<String>),
    /// Hosts (or email domains): one of `exact`, or a subdomain of one of
    /// `suffixes`; URLs also name their schemes.
    Hosts {
        /// Hosts or domains admitted as they are.
        exact: BTreeSet<String>,
        /// Domains whose subdomains are admitted.
        suffixes: BTreeSet<String>,
        /// URL schemes admitted (empty for emails).
        schemes: BTreeSet<String>,
    },
    /// One of these values (tokens, flags).
    OneOf(BTreeSet<String>),
    /// One of these keyed hashes (sensitive tokens).
    OneOfHashed(BTreeSet<String>),
    /// Tokens of these shapes, and of these prefixes when given.
    Pattern {
        /// Shape classes (`A-9`, `uuid`).
        shapes: BTreeSet<String>,
        /// Literal prefixes (`TICK`), when few.
        prefixes: Option<BTreeSet<String>>,
    },
    /// Free text of at most this many characters.
    MaxLen(Decimal4),
    /// Numbers within `lo..=hi`.
    Range {
        /// Lower bound.
        lo: Decimal4,
        /// Upper bound.
        hi: Decimal4,
    },
    /// A list of at most this many elements.
    MaxCount(Decimal4),
    /// An object: its members are keys of their own.
    Object,
}

/// The values one key took, per kind, gathered over a cluster's calls.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Directories (`K#dir`).
    pub dirs: Vec<String>,
    /// URL hosts and schemes, email domains.
    pub hosts: Vec<String>,
    /// URL schemes.
    pub schemes: BTreeSet<String>,
    /// Raw token or flag values, when every one was kept.
    pub raw: Vec<Option<String>>,
    /// Keyed hashes of tokens.
    pub hashes: Vec<String>,
    /// Token shapes and prefixes.
    pub shapes: BTreeSet<String>,
    /// Token prefixes.
    pub prefixes: BTreeSet<String>,
    /// Numbers (values, text lengths, list counts), with the minimum of
    /// folded number lists.
    pub numbers: Vec<Decimal4>,
}

/// Generalizes what one key of one kind took.
pub fn generalize(
    kind: ValueKind,
    seen: &Seen,
    floor: Option<&str>,
    limits: &Limits,
) -> KindConstraint {
    match kind {
        ValueKind::Path => KindConstraint::Under(directories(&seen.dirs, floor, limits)),
        ValueKind::Url | ValueKind::Email => {
            let (exact, suffixes) = hosts(&seen.hosts, limits);
            KindConstraint::Hosts {
                exact,
                suffixes,
                schemes: seen.schemes.clone(),
            }
        }
        ValueKind::Flag => KindConstraint::OneOf(seen.raw.iter().flatten().cloned().collect()),
        ValueKind::Token => token(seen, limits),
        ValueKind::Text => KindConstraint::MaxLen(nice_up(max(&seen.numbers).0.saturating_mul(2))),
        ValueKind::Number => {
            let lo = min(&seen.numbers);
            let lo = if lo.0 >= 0 {
                Decimal4(0)
            } else {
                Decimal4(-nice_up(-lo.0).0)
            };
            KindConstraint::Range {
                lo,
                hi: nice_up(max(&seen.numbers).0),
            }
        }
        ValueKind::List => KindConstraint::MaxCount(nice_up(max(&seen.numbers).0)),
        ValueKind::Object => KindConstraint::Object,
    }
}

fn max(v: &[Decimal4]) -> Decimal4 {
    v.iter().copied().max().unwrap_or(Decimal4(0))
}

fn min(v: &[Decimal4]) -> Decimal4 {
    v.iter().copied().min().unwrap_or(Decimal4(0))
}

/// The smallest 1, 2, 2.5 or 5 × 10^k (k ≥ 0, in whole units) at or above
/// `scaled` (a value × 10 000); 0 stays 0.
pub fn nice_up(scaled: i64) -> Decimal4 {
    if scaled <= 0 {
        return Decimal4(0);
    }
    let unit = crate::facts::NUMBER_SCALE;
    let mut base = unit;
    loop {
        for m in [10, 20, 25, 50] {
            let candidate = base.saturating_mul(m) / 10;
            if candidate >= scaled {
                return Decimal4(candidate);
            }
        }
        if base > i64::MAX / 100 {
            return Decimal4(i64::MAX / 10);
        }
        base *= 10;
    }
}

fn token(seen: &Seen, limits: &Limits) -> KindConstraint {
    let distinct: BTreeSet<&String> = seen.hashes.iter().collect();
    let repeated = seen.hashes.len() >= limits.enum_repeat * distinct.len();
    if distinct.len() <= limits.max_enum && repeated {
        let raw: Option<BTreeSet<String>> = seen.raw.iter().cloned().collect();
        return match raw {
            Some(values) => KindConstraint::OneOf(values),
            None => KindConstraint::OneOfHashed(distinct.into_iter().cloned().collect()),
        };
    }
    let prefixes = (seen.prefixes.len() <= 4).then(|| seen.prefixes.clone());
    KindConstraint::Pattern {
        shapes: seen.shapes.clone(),
        prefixes,
    }
}

/// Number of components of a `/`-terminated directory below its root.
fn depth(dir: &str) -> usize {
    dir.trim_start_matches(['/', '.', '~'])
        .split('/')
        .filter(|s| !s.is_empty())
        .count()
}

/// The first `n` components of a directory (with its root), `/`-terminated.
fn truncate(dir: &str, n: usize) -> String {
    let root_len = dir.len() - dir.trim_start_matches(['/', '.', '~']).len();
    let mut out = dir[..root_len].to_owned();
    for part in dir[root_len..].split('/').filter(|s| !s.is_empty()).take(n) {
        out.push_str(part);
        out.push('/');
    }
    out
}

/// Groups directories by their first `min_path_depth` components (one for
/// relative and home paths) and drafts each group's longest common
/// directory; a floor (the remit's own constraint) is never generalized
/// above: a group whose common directory lies above it keeps the floor for
/// what lies under it and its directories as they are for the rest.
pub fn directories(dirs: &[String], floor: Option<&str>, limits: &Limits) -> BTreeSet<String> {
    let mut groups: BTreeMap<String, String> = BTreeMap::new();
    for d in dirs {
        let keep = if d.starts_with('/') {
            limits.min_path_depth
        } else {
            1
        };
        let group = truncate(d, keep);
        groups
            .entry(group)
            .and_modify(|lcd| *lcd = crate::facts::common_dir(lcd, d))
            .or_insert_with(|| d.clone());
    }
    let mut out = BTreeSet::new();
    for lcd in groups.into_values() {
        match floor {
            Some(f) if !lcd.starts_with(f) => {
                // Above the floor: what lies under it is drafted as the
                // floor, the rest exactly.
                for d in dirs.iter().filter(|d| d.starts_with(lcd.as_str())) {
                    out.insert(if d.starts_with(f) {
                        f.to_owned()
                    } else {
                        d.clone()
                    });
                }
            }
            _ => {
                out.insert(lcd);
            }
        }
    }
    // Drop directories already under another one kept.
    let all: Vec<String> = out.iter().cloned().collect();
    out.retain(|d| !all.iter().any(|o| o != d && d.starts_with(o.as_str())));
    debug_assert!(out.iter().all(|d| depth(d) <= 64));
    out
}

/// The registrable domain of a host, approximately: its last two labels
/// (three under a two-letter second-level label such as `co.uk`).
pub fn registrable(host: &str) -> &str {
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    let keep = if n >= 3 && labels[n - 2].len() <= 3 && labels[n - 1].len() == 2 {
        3
    } else {
        2
    };
    if n <= keep {
        return host;
    }
    let cut: usize = labels[..n - keep].iter().map(|l| l.len() + 1).sum();
    &host[cut..]
}

/// Hosts kept exactly, and domains whose subdomains are all admitted once
/// [`Limits::wildcard_subdomains`] distinct subdomains of them were seen.
pub fn hosts(seen: &[String], limits: &Limits) -> (BTreeSet<String>, BTreeSet<String>) {
    let distinct: BTreeSet<&str> = seen.iter().map(String::as_str).collect();
    let mut by_domain: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for h in &distinct {
        let d = registrable(h);
        if d != *h {
            by_domain.entry(d).or_default().insert(h);
        }
    }
    let suffixes: BTreeSet<String> = by_domain
        .iter()
        .filter(|(_, subs)| subs.len() >= limits.wildcard_subdomains)
        .map(|(d, _)| (*d).to_owned())
        .collect();
    let exact = distinct
        .into_iter()
        .filter(|h| !suffixes.iter().any(|s| h.ends_with(&format!(".{s}"))))
        .map(str::to_owned)
        .collect();
    (exact, suffixes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn directories_meet_at_their_common_root_per_group() {
        let d = directories(
            &s(&[
                "/repo/acme/src/",
                "/repo/acme/tests/",
                "/repo/acme/",
                "/tmp/build/x/",
            ]),
            None,
            &Limits::default(),
        );
        assert_eq!(d, ["/repo/acme/", "/tmp/build/x/"].map(String::from).into());
    }

    #[test]
    fn directories_never_generalize_above_the_minimum_depth() {
        let d = directories(&s(&["/repo/a/", "/repo/b/"]), None, &Limits::default());
        assert_eq!(d, ["/repo/a/", "/repo/b/"].map(String::from).into());
    }

    #[test]
    fn directories_never_generalize_above_the_remits_floor() {
        let d = directories(
            &s(&["/repo/acme/src/a/", "/repo/acme/src/b/", "/repo/acme/docs/"]),
            Some("/repo/acme/src/"),
            &Limits::default(),
        );
        assert_eq!(
            d,
            ["/repo/acme/docs/", "/repo/acme/src/"]
                .map(String::from)
                .into()
        );
    }

    #[test]
    fn subdomains_generalize_only_past_the_threshold() {
        let (e, w) = hosts(&s(&["a.ex.com", "b.ex.com", "docs.rs"]), &Limits::default());
        assert!(w.is_empty());
        assert_eq!(e.len(), 3);
        let (e, w) = hosts(
            &s(&["a.ex.com", "b.ex.com", "c.ex.com", "docs.rs"]),
            &Limits::default(),
        );
        assert_eq!(w, ["ex.com".to_owned()].into());
        assert_eq!(e, ["docs.rs".to_owned()].into());
        assert_eq!(registrable("www.bbc.co.uk"), "bbc.co.uk");
    }

    #[test]
    fn numbers_round_up_to_one_two_five() {
        let w = |n| Decimal4::whole(n).unwrap();
        assert_eq!(nice_up(w(4870).0), w(5000));
        assert_eq!(nice_up(w(101).0), w(200));
        assert_eq!(nice_up(w(2).0), w(2));
        assert_eq!(nice_up(Decimal4::from_f64(0.4).unwrap().0), w(1));
    }
}
