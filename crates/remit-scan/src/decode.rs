//! Bounded decoding of percent-encoding, base64 and hex blobs.
//!
//! A decoded blob becomes a new segment whose bytes map back to the encoded
//! characters they came from. Decoding is kept only when the result is
//! text (valid UTF-8 without control characters), nested at most
//! [`crate::ScanConfig::decode_depth`] layers deep, each blob at most
//! [`MAX_BLOB`] bytes, and all decoded output of a scan within a budget.

use std::borrow::Cow;

use crate::finding::Transforms;
use crate::normalize::{needs_normalization, normalize, OffsetMap, Segment};

/// Shortest run of base64/hex characters worth decoding.
pub(crate) const MIN_BLOB: usize = 12;
/// Longest blob decoded (bytes of encoded text).
pub(crate) const MAX_BLOB: usize = 256 * 1024;

/// Bytes of the parent text before a blob carried into its decoded segment.
const CONTEXT: usize = 56;

/// Decoded bytes and, for each, the range of encoded bytes it came from.
type Decoded = (Vec<u8>, Vec<(usize, usize)>);

const fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

fn b64_value(b: u8) -> Option<u32> {
    Some(match b {
        b'A'..=b'Z' => u32::from(b - b'A'),
        b'a'..=b'z' => u32::from(b - b'a') + 26,
        b'0'..=b'9' => u32::from(b - b'0') + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    })
}

fn is_text(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| {
        s.chars()
            .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
    })
}

/// Decodes base64 (standard or URL-safe, padding optional); each output
/// byte carries the index range of the encoded characters it came from.
fn base64(run: &[u8]) -> Option<Decoded> {
    let mut out = Vec::with_capacity(run.len() * 3 / 4);
    let mut src = Vec::with_capacity(out.capacity());
    let mut acc = 0u32;
    let mut bits = 0;
    for (i, &b) in run.iter().enumerate() {
        let v = b64_value(b)?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xFF) as u8);
            let group = i / 4 * 4;
            src.push((group, (group + 4).min(run.len())));
        }
    }
    Some((out, src))
}

fn hex(run: &[u8]) -> Option<Decoded> {
    if run.len() % 2 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(run.len() / 2);
    let mut src = Vec::with_capacity(run.len() / 2);
    for (i, pair) in run.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out.push((hi * 16 + lo) as u8);
        src.push((2 * i, 2 * i + 2));
    }
    Some((out, src))
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let hi = (*pair.first()? as char).to_digit(16)?;
    let lo = (*pair.get(1)? as char).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}

/// Percent-decodes `text`. Each run of consecutive `%XX` escapes is decoded
/// when its bytes are UTF-8 and kept as written otherwise, so one stray
/// `%FF` or a literal `50%` does not hide the rest of the text.
fn percent(text: &[u8]) -> Option<Decoded> {
    let mut out = Vec::with_capacity(text.len());
    let mut src = Vec::with_capacity(text.len());
    let mut i = 0;
    let mut decoded_any = false;
    let mut run = Vec::new();
    while i < text.len() {
        let start = i;
        run.clear();
        while text.get(i) == Some(&b'%') {
            match text.get(i + 1..i + 3).and_then(hex_byte) {
                Some(byte) => {
                    run.push(byte);
                    i += 3;
                }
                None => break,
            }
        }
        if run.is_empty() {
            out.push(text[i]);
            src.push((i, i + 1));
            i += 1;
        } else if std::str::from_utf8(&run).is_ok() {
            decoded_any = true;
            out.extend_from_slice(&run);
            src.extend((0..run.len()).map(|k| (start + 3 * k, start + 3 * k + 3)));
        } else {
            out.extend_from_slice(&text[start..i]);
            src.extend((start..i).map(|k| (k, k + 1)));
        }
    }
    decoded_any.then_some((out, src))
}

/// Builds a child segment from decoded bytes whose `src` ranges index
/// into `parent_text[offset..]`.
fn child(
    parent: &Segment<'_>,
    offset: usize,
    decoded: Vec<u8>,
    src: &[(usize, usize)],
    step: Transforms,
) -> Segment<'static> {
    let mut starts = Vec::with_capacity(decoded.len());
    let mut ends = Vec::with_capacity(decoded.len());
    for &(a, b) in src {
        let (s, e) = parent.map.span(offset + a, offset + b);
        // INVARIANT: inputs are capped well below 4 GiB by the scanner.
        starts.push(s as u32);
        ends.push(e as u32);
    }
    let mut transforms = parent.transforms | step;
    let (text, starts, ends) = if needs_normalization(&decoded, true) {
        let n = normalize(&decoded, 0, false);
        transforms |= n.transforms;
        let s2 = n.starts.iter().map(|&i| starts[i as usize]).collect();
        let e2 = n.ends.iter().map(|&i| ends[i as usize - 1]).collect();
        (n.text, s2, e2)
    } else {
        (decoded, starts, ends)
    };
    Segment {
        text: Cow::Owned(text),
        map: OffsetMap::Table { starts, ends },
        transforms,
        depth: parent.depth + 1,
        path: parent.path.clone(),
    }
}

/// Decodes the blobs of one segment into child segments, spending at most
/// `budget` decoded bytes.
pub(crate) fn decode(parent: &Segment<'_>, budget: &mut usize, out: &mut Vec<Segment<'static>>) {
    let text: &[u8] = &parent.text;
    if memchr::memchr(b'%', text).is_some() && text.len() <= *budget {
        if let Some((bytes, src)) = percent(text) {
            *budget -= bytes.len();
            out.push(child(parent, 0, bytes, &src, Transforms::PERCENT));
        }
    }
    for (start, end) in blob_runs(text) {
        try_blob(parent, start, end, budget, out);
    }
}

/// The runs of [`MIN_BLOB`] or more base64-alphabet bytes, in order.
///
/// Samples one byte in every `MIN_BLOB`: a run that long covers at least
/// one sampled byte, so only the runs around sampled alphabet bytes are
/// measured, and most of clean text is never looked at twice or at all.
fn blob_runs(text: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let is = |i: usize| B64[usize::from(text[i])];
    // INVARIANT: `next` is one past a byte outside the alphabet (or 0), so
    // a run starting at or after it covers `next + MIN_BLOB - 1`.
    let mut next = 0usize;
    std::iter::from_fn(move || loop {
        let j = next + MIN_BLOB - 1;
        if j >= text.len() {
            return None;
        }
        if !is(j) {
            next = j + 1;
            continue;
        }
        let mut a = j;
        while a > next && is(a - 1) {
            a -= 1;
        }
        let mut b = j + 1;
        while b < text.len() && is(b) {
            b += 1;
        }
        next = b + 1;
        if b - a >= MIN_BLOB {
            return Some((a, b));
        }
    })
}

/// Bytes of the base64 alphabets (standard and URL-safe).
static B64: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = is_b64(b as u8);
        b += 1;
    }
    t
};

fn try_blob(
    parent: &Segment<'_>,
    start: usize,
    end: usize,
    budget: &mut usize,
    out: &mut Vec<Segment<'static>>,
) {
    let run = &parent.text[start..end];
    if run.len() > MAX_BLOB || run.len() > *budget {
        return;
    }
    let all_hex = run.iter().all(u8::is_ascii_hexdigit);
    let attempt = if all_hex {
        hex(run)
            .filter(|(b, _)| is_text(b))
            .map(|(b, s)| (b, s, Transforms::HEX))
    } else {
        None
    };
    let attempt = attempt.or_else(|| {
        base64(run)
            .filter(|(b, _)| is_text(b))
            .map(|(b, s)| (b, s, Transforms::BASE64))
    });
    if let Some((bytes, src, step)) = attempt {
        // The decoded value keeps the words written before its blob
        // (`BSN: <base64>`), so keyword-anchored recognizers still see
        // their keyword; at most the blob's own length, so decoding stays
        // within twice the blob.
        let ctx = CONTEXT.min(run.len()).min(start);
        let mut text = Vec::with_capacity(ctx + bytes.len());
        text.extend_from_slice(&parent.text[start - ctx..start]);
        text.extend_from_slice(&bytes);
        let spans: Vec<(usize, usize)> = (0..ctx)
            .map(|i| (i, i + 1))
            .chain(src.iter().map(|&(a, b)| (a + ctx, b + ctx)))
            .collect();
        *budget = budget.saturating_sub(text.len());
        out.push(child(parent, start - ctx, text, &spans, step));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(s: &str) -> Segment<'_> {
        Segment {
            text: Cow::Borrowed(s.as_bytes()),
            map: OffsetMap::Identity { base: 100 },
            transforms: Transforms::empty(),
            depth: 0,
            path: None,
        }
    }

    #[test]
    fn base64_blob_decodes_with_spans_over_its_quads() {
        // "4111111111111111" in base64.
        let s = seg("x NDExMTExMTExMTExMTExMQ== y");
        let mut out = Vec::new();
        let mut budget = 1000;
        decode(&s, &mut budget, &mut out);
        assert_eq!(out.len(), 1);
        // The two bytes before the blob come along as context.
        assert_eq!(&*out[0].text, b"x 4111111111111111");
        assert!(out[0].transforms.contains(Transforms::BASE64));
        assert_eq!(out[0].map.span(2, 18), (102, 124));
        assert_eq!(out[0].map.span(0, 1), (100, 101));
    }

    #[test]
    fn hex_and_percent_decode() {
        let mut out = Vec::new();
        let mut budget = 1000;
        decode(&seg("3431313131313131"), &mut budget, &mut out);
        assert_eq!(&*out[0].text, b"41111111");
        out.clear();
        decode(&seg("a%40b%2Ec"), &mut budget, &mut out);
        assert_eq!(&*out[0].text, b"a@b.c");
        assert_eq!(out[0].map.span(1, 2), (101, 104));
    }

    #[test]
    fn binary_blobs_and_short_runs_are_not_decoded() {
        let mut out = Vec::new();
        let mut budget = 1000;
        decode(
            &seg("internationalization AAECAwQFBgcICQoLDA0ODw== abc"),
            &mut budget,
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn sampled_run_finder_matches_a_linear_scan() {
        let linear = |t: &[u8]| {
            let mut runs = Vec::new();
            let mut run = 0;
            for (i, &b) in t.iter().enumerate() {
                if B64[usize::from(b)] {
                    run += 1;
                    continue;
                }
                if run >= MIN_BLOB {
                    runs.push((i - run, i));
                }
                run = 0;
            }
            if run >= MIN_BLOB {
                runs.push((t.len() - run, t.len()));
            }
            runs
        };
        let mut seed = 7u64;
        for len in 0..400 {
            let t: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    // Mostly alphabet bytes with gaps, runs of every length.
                    if (seed >> 33) % 9 == 0 {
                        b' '
                    } else {
                        b'a'
                    }
                })
                .collect();
            assert_eq!(blob_runs(&t).collect::<Vec<_>>(), linear(&t), "{len}");
            let long: Vec<u8> = t
                .iter()
                .map(|&b| {
                    if b == b' ' && (seed >> 40) % 3 == 0 {
                        b'x'
                    } else {
                        b
                    }
                })
                .collect();
            assert_eq!(blob_runs(&long).collect::<Vec<_>>(), linear(&long));
        }
    }

    #[test]
    fn budget_caps_decoded_output() {
        let mut out = Vec::new();
        let mut budget = 4;
        decode(&seg("NDExMTExMTExMTExMTExMQ=="), &mut budget, &mut out);
        assert!(out.is_empty());
    }
}
