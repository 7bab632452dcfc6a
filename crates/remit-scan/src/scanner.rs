//! The scanner: configuration, the pipeline, and the report.

use std::borrow::Cow;

use serde::Serialize;

use crate::classify::{ClassMap, Classification};
use crate::decode;
use crate::error::ScanError;
use crate::finding::{Finding, FindingType, Transforms};
use crate::json;
use crate::normalize::{
    has_text_escape, needs_normalization, normalize, Normalized, OffsetMap, Segment,
};
use crate::recognize::{Candidate, Catalog};
use crate::redact::Redaction;

/// How to read the input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InputFormat {
    /// JSON when it parses as a JSON object or array, text otherwise.
    #[default]
    Auto,
    /// JSON; falls back to text (with a warning) when it does not parse.
    Json,
    /// Plain text.
    Text,
}

/// Scanner settings. The defaults are the secure ones.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// Largest input accepted, in bytes; larger input is an error, never truncated.
    pub max_bytes: usize,
    /// How to read the input.
    pub format: InputFormat,
    /// Decoding layers (percent, base64, hex) to peel; clamped to 2.
    pub decode_depth: u8,
    /// Most decoded bytes produced per scan, across all layers.
    pub max_decoded_bytes: usize,
    /// Per-type classification.
    pub classes: ClassMap,
    /// What findings carry in place of the value.
    pub redaction: Redaction,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
            format: InputFormat::Auto,
            decode_depth: 2,
            max_decoded_bytes: 4 * 1024 * 1024,
            classes: ClassMap::default(),
            redaction: Redaction::Mask,
        }
    }
}

/// Something the caller should know about how the input was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Warning {
    /// The input is not valid UTF-8; invalid bytes were treated as spaces.
    InvalidUtf8,
    /// JSON was requested but the input does not parse; it was scanned as text.
    NotJson,
    /// The decoding budget ran out; some blobs were not decoded.
    DecodeBudgetExhausted,
}

/// The result of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanReport {
    /// Findings ordered by position.
    pub findings: Vec<Finding>,
    /// The highest classification among findings (`PUBLIC` when none).
    pub classification: Classification,
    /// Whether the input was read as JSON.
    pub json: bool,
    /// How the input was read, when not cleanly.
    pub warnings: Vec<Warning>,
    /// Bytes scanned, summed over the input and every decoded layer.
    pub bytes_scanned: usize,
}

/// A compiled scanner: build once, share across threads, scan many inputs.
#[derive(Debug)]
pub struct Scanner {
    catalog: Catalog,
    config: ScanConfig,
}

fn identity(input: &[u8]) -> Segment<'_> {
    Segment {
        text: Cow::Borrowed(input),
        map: OffsetMap::Identity { base: 0 },
        transforms: Transforms::empty(),
        depth: 0,
        path: None,
    }
}

fn from_normalized(n: Normalized) -> Segment<'static> {
    Segment {
        text: Cow::Owned(n.text),
        map: OffsetMap::Table {
            starts: n.starts,
            ends: n.ends,
        },
        transforms: n.transforms,
        depth: 0,
        path: None,
    }
}

/// Normalizes a JSON document: string contents are unescaped and folded,
/// the structure between them is copied as is.
fn normalize_json(input: &[u8], scalars: &[json::JsonScalar]) -> Normalized {
    let mut out = Normalized {
        text: Vec::with_capacity(input.len()),
        starts: Vec::with_capacity(input.len()),
        ends: Vec::with_capacity(input.len()),
        transforms: Transforms::empty(),
        invalid_utf8: false,
    };
    let copy = |out: &mut Normalized, from: usize, to: usize| {
        out.text.extend_from_slice(&input[from..to]);
        for i in from..to {
            out.starts.push(i as u32);
            out.ends.push(i as u32 + 1);
        }
    };
    let mut pos = 0;
    for s in scalars.iter().filter(|s| s.needs_normalization) {
        copy(&mut out, pos, s.start);
        let n = normalize(&input[s.start..s.end], s.start, true);
        out.text.extend_from_slice(&n.text);
        out.starts.extend_from_slice(&n.starts);
        out.ends.extend_from_slice(&n.ends);
        out.transforms |= n.transforms;
        out.invalid_utf8 |= n.invalid_utf8;
        pos = s.end;
    }
    copy(&mut out, pos, input.len());
    out
}

impl Scanner {
    /// Compiles the recognizers with the given settings.
    pub fn new(config: ScanConfig) -> Self {
        Self {
            catalog: Catalog::new(),
            config,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &ScanConfig {
        &self.config
    }

    /// Scans `input` and reports every finding with its span in `input`.
    pub fn scan(&self, input: &[u8]) -> Result<ScanReport, ScanError> {
        if input.len() > self.config.max_bytes {
            return Err(ScanError::InputTooLarge {
                size: input.len(),
                limit: self.config.max_bytes,
            });
        }
        let mut warnings = Vec::new();
        let scalars = match self.config.format {
            InputFormat::Text => None,
            InputFormat::Auto => json::looks_like_json(input)
                .then(|| json::scalars(input))
                .flatten(),
            InputFormat::Json => {
                let s = json::scalars(input);
                if s.is_none() {
                    warnings.push(Warning::NotJson);
                }
                s
            }
        };
        let mut invalid_utf8 = std::str::from_utf8(input).is_err();
        let base = match &scalars {
            Some(sc) if sc.iter().any(|s| s.needs_normalization) => {
                let n = normalize_json(input, sc);
                invalid_utf8 |= n.invalid_utf8;
                from_normalized(n)
            }
            Some(_) => identity(input),
            None if needs_normalization(input, has_text_escape(input)) => {
                from_normalized(normalize(input, 0, false))
            }
            None => identity(input),
        };
        if invalid_utf8 {
            warnings.push(Warning::InvalidUtf8);
        }

        let depth = self.config.decode_depth.min(2);
        let mut budget = self.config.max_decoded_bytes;
        let mut raw: Vec<(usize, usize, Candidate, Transforms, Option<String>)> = Vec::new();
        let mut candidates = Vec::new();
        let mut queue: Vec<Segment<'_>> = vec![base];
        let mut bytes_scanned = 0;
        while let Some(seg) = queue.pop() {
            bytes_scanned += seg.text.len();
            candidates.clear();
            self.catalog.scan(&seg.text, &mut candidates);
            for c in &candidates {
                let (start, end) = seg.map.span(c.start, c.end);
                let value = &seg.text[c.start..c.end];
                let mut transforms = seg.transforms;
                // Per-finding transforms: what changed inside this value's span.
                if let OffsetMap::Table { .. } = seg.map {
                    if end - start == c.end - c.start
                        && seg.depth == 0
                        && &input[start..end] == value
                    {
                        transforms = Transforms::empty();
                    }
                }
                if value.iter().any(|&b| crate::recognize::is_sep(b))
                    && value.iter().filter(|b| b.is_ascii_digit()).count() * 2 > value.len()
                {
                    transforms |= Transforms::SEPARATORS;
                }
                let redacted = self.config.redaction.apply(c.hit.kind, value);
                raw.push((start, end, *c, transforms, redacted));
            }
            if seg.depth < depth {
                let before = budget;
                let mut children = Vec::new();
                decode::decode(&seg, &mut budget, &mut children);
                if budget == 0 && before > 0 && !warnings.contains(&Warning::DecodeBudgetExhausted)
                {
                    warnings.push(Warning::DecodeBudgetExhausted);
                }
                queue.extend(children);
            }
        }

        let findings = self.resolve(raw, scalars.as_deref());
        let classification = findings
            .iter()
            .map(|f| f.class)
            .max()
            .unwrap_or(Classification::Public);
        Ok(ScanReport {
            findings,
            classification,
            json: scalars.is_some(),
            warnings,
            bytes_scanned,
        })
    }

    /// Deduplicates, drops matches contained in a larger one, assigns paths.
    fn resolve(
        &self,
        mut raw: Vec<(usize, usize, Candidate, Transforms, Option<String>)>,
        scalars: Option<&[json::JsonScalar]>,
    ) -> Vec<Finding> {
        // A generic `secret=` match yields to any specific type it overlaps
        // (a GitHub token assigned to `token:` is a GitHub token).
        let specific: Vec<(usize, usize)> = raw
            .iter()
            .filter(|r| r.2.hit.kind != FindingType::GenericSecret)
            .map(|r| (r.0, r.1))
            .collect();
        raw.retain(|r| {
            r.2.hit.kind != FindingType::GenericSecret
                || !specific.iter().any(|&(s, e)| s < r.1 && r.0 < e)
        });
        // Longest first at each start; same span: catalog order, fewest transforms.
        raw.sort_by(|a, b| {
            (
                a.0,
                std::cmp::Reverse(a.1),
                a.2.hit.kind,
                a.3.names().len(),
                std::cmp::Reverse(a.2.hit.confidence),
            )
                .cmp(&(
                    b.0,
                    std::cmp::Reverse(b.1),
                    b.2.hit.kind,
                    b.3.names().len(),
                    std::cmp::Reverse(b.2.hit.confidence),
                ))
        });
        // Sorted by start, so the kept match reaching furthest contains `r`
        // exactly when it reaches past `r`'s end.
        let mut kept: Vec<(usize, usize, Candidate, Transforms, Option<String>)> = Vec::new();
        let mut reach = 0usize;
        for r in raw {
            if !kept.is_empty() && r.1 <= reach {
                continue;
            }
            reach = reach.max(r.1);
            kept.push(r);
        }
        kept.into_iter()
            .map(|(start, end, c, transforms, redacted)| Finding {
                kind: c.hit.kind,
                start,
                end,
                path: scalars.and_then(|s| path_at(s, start)),
                validation: c.hit.validation,
                confidence: c.hit.confidence,
                transforms,
                class: self.config.classes.get(c.hit.kind),
                redacted,
            })
            .collect()
    }
}

/// The path of the scalar holding byte `pos`, if any.
fn path_at(scalars: &[json::JsonScalar], pos: usize) -> Option<String> {
    let idx = scalars.partition_point(|s| s.start <= pos);
    let s = scalars.get(idx.checked_sub(1)?)?;
    (pos < s.end.max(s.start + 1)).then(|| s.path.to_string())
}

/// Convenience for one-off scans with the default settings.
pub fn scan(input: &[u8]) -> Result<ScanReport, ScanError> {
    Scanner::new(ScanConfig::default()).scan(input)
}

impl ScanReport {
    /// Types found, without repetition, in catalog order.
    pub fn types(&self) -> Vec<FindingType> {
        let mut t: Vec<FindingType> = self.findings.iter().map(|f| f.kind).collect();
        t.sort();
        t.dedup();
        t
    }

    /// A copy of `input` with every finding's span replaced by
    /// `[TYPE]` (drop), its mask, or its hash.
    pub fn redact_input(&self, input: &[u8]) -> Vec<u8> {
        let mut spans: Vec<&Finding> = self.findings.iter().collect();
        spans.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
        let mut out = Vec::with_capacity(input.len());
        let mut pos = 0;
        for f in spans {
            if f.start < pos {
                continue;
            }
            out.extend_from_slice(&input[pos..f.start]);
            match &f.redacted {
                Some(r) => out.extend_from_slice(r.as_bytes()),
                None => {
                    out.push(b'[');
                    out.extend_from_slice(f.kind.name().as_bytes());
                    out.push(b']');
                }
            }
            pos = f.end;
        }
        out.extend_from_slice(&input[pos.min(input.len())..]);
        out
    }
}
