//! A small JSON walker that finds every string and number with its path.
//!
//! It does not build a tree: it records the byte span of each scalar (the
//! inside of string literals), the JSON path that leads to it
//! (`$.params.arguments.body`, `$.items[2]`), and whether the literal holds
//! escapes or non-ASCII bytes (and so needs normalization). Object keys are
//! recorded too, with the path of the member they name. Anything that is not
//! well-formed JSON, or nests deeper than [`MAX_DEPTH`], is scanned as text.

use std::sync::Arc;

use crate::normalize::{needs_normalization, normalize};

/// Nesting beyond this is scanned as text (keeps path building linear).
pub(crate) const MAX_DEPTH: usize = 128;

/// One scalar of a JSON document.
#[derive(Debug, Clone)]
pub(crate) struct JsonScalar {
    /// Start of the content (after the opening quote for strings).
    pub(crate) start: usize,
    /// End of the content (before the closing quote for strings).
    pub(crate) end: usize,
    /// Path of the value.
    pub(crate) path: Arc<str>,
    /// Holds escapes or non-ASCII bytes.
    pub(crate) needs_normalization: bool,
}

#[derive(Debug)]
enum Frame {
    Object { key: Option<String> },
    Array { index: usize },
}

/// Whether the input looks like JSON (first non-space byte is `{` or `[`).
pub(crate) fn looks_like_json(input: &[u8]) -> bool {
    matches!(
        input.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

fn path_of(stack: &[Frame]) -> String {
    let mut p = String::from("$");
    for frame in stack {
        match frame {
            Frame::Object { key: Some(k) } => {
                let simple = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if simple {
                    p.push('.');
                    p.push_str(k);
                } else {
                    p.push_str("[\"");
                    for c in k.chars() {
                        if c == '"' || c == '\\' {
                            p.push('\\');
                        }
                        p.push(c);
                    }
                    p.push_str("\"]");
                }
            }
            Frame::Object { key: None } => {}
            Frame::Array { index } => {
                p.push('[');
                p.push_str(&index.to_string());
                p.push(']');
            }
        }
    }
    p
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// Finds the end of a string literal whose opening quote is at `i`:
/// returns the index of the closing quote.
fn string_end(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        let k = j + memchr::memchr2(b'"', b'\\', s.get(j..)?)?;
        if s[k] == b'"' {
            return Some(k);
        }
        j = k + 2;
    }
}

/// Walks a JSON document; `None` if it is not well-formed or too deep.
pub(crate) fn scalars(s: &[u8]) -> Option<Vec<JsonScalar>> {
    let mut out = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = skip_ws(s, 0);
    // Expecting a value (true) or a separator/closer (false).
    let mut want_value = true;
    loop {
        i = skip_ws(s, i);
        if i >= s.len() {
            return (stack.is_empty() && !want_value).then_some(out);
        }
        if !want_value {
            match (s[i], stack.last_mut()) {
                (b',', Some(Frame::Array { index })) => {
                    *index += 1;
                    want_value = true;
                    i += 1;
                }
                (b',', Some(Frame::Object { key })) => {
                    *key = None;
                    i = read_key(s, i + 1, &mut stack, &mut out)?;
                    want_value = true;
                }
                (b']', Some(Frame::Array { .. })) | (b'}', Some(Frame::Object { .. })) => {
                    stack.pop();
                    i += 1;
                }
                _ => return None,
            }
            continue;
        }
        match s[i] {
            b'{' => {
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                stack.push(Frame::Object { key: None });
                let j = skip_ws(s, i + 1);
                if s.get(j) == Some(&b'}') {
                    stack.pop();
                    i = j + 1;
                    want_value = false;
                } else {
                    i = read_key(s, i + 1, &mut stack, &mut out)?;
                }
            }
            b'[' => {
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                stack.push(Frame::Array { index: 0 });
                let j = skip_ws(s, i + 1);
                if s.get(j) == Some(&b']') {
                    stack.pop();
                    i = j + 1;
                    want_value = false;
                } else {
                    i += 1;
                }
            }
            b'"' => {
                let end = string_end(s, i)?;
                let content = &s[i + 1..end];
                out.push(JsonScalar {
                    start: i + 1,
                    end,
                    path: Arc::from(path_of(&stack)),
                    needs_normalization: needs_normalization(content, true),
                });
                i = end + 1;
                want_value = false;
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => {
                let mut j = i;
                while j < s.len()
                    && matches!(s[j], b'-' | b'+' | b'.' | b'0'..=b'9' | b'e' | b'E' | b'a'..=b'z')
                {
                    j += 1;
                }
                let word = &s[i..j];
                let ok = matches!(word, b"true" | b"false" | b"null")
                    || word
                        .first()
                        .is_some_and(|b| *b == b'-' || b.is_ascii_digit());
                if !ok {
                    return None;
                }
                if word[0] == b'-' || word[0].is_ascii_digit() {
                    out.push(JsonScalar {
                        start: i,
                        end: j,
                        path: Arc::from(path_of(&stack)),
                        needs_normalization: false,
                    });
                }
                i = j;
                want_value = false;
            }
            _ => return None,
        }
        if stack.is_empty() && !want_value {
            let rest = skip_ws(s, i);
            return (rest == s.len()).then_some(out);
        }
    }
}

/// Reads `"key" :` starting at or after `i`, records the key as a scalar
/// and sets it on the top frame; returns the index after the colon.
fn read_key(s: &[u8], i: usize, stack: &mut [Frame], out: &mut Vec<JsonScalar>) -> Option<usize> {
    let i = skip_ws(s, i);
    if s.get(i) != Some(&b'"') {
        return None;
    }
    let end = string_end(s, i)?;
    let raw = &s[i + 1..end];
    let needs = needs_normalization(raw, true);
    let key = if needs {
        String::from_utf8_lossy(&normalize(raw, 0, true).text).into_owned()
    } else {
        String::from_utf8_lossy(raw).into_owned()
    };
    if let Some(Frame::Object { key: slot }) = stack.last_mut() {
        *slot = Some(key);
    }
    out.push(JsonScalar {
        start: i + 1,
        end,
        path: Arc::from(path_of(stack)),
        needs_normalization: needs,
    });
    let j = skip_ws(s, end + 1);
    (s.get(j) == Some(&b':')).then_some(j + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(doc: &str) -> Vec<(String, String)> {
        scalars(doc.as_bytes())
            .unwrap()
            .into_iter()
            .map(|s| (s.path.to_string(), doc[s.start..s.end].to_string()))
            .collect()
    }

    #[test]
    fn paths_name_members_and_indexes() {
        let got = paths(r#"{"params":{"arguments":{"body":"hi","n":[1,"x"]}}}"#);
        assert!(got.contains(&("$.params.arguments.body".into(), "hi".into())));
        assert!(got.contains(&("$.params.arguments.n[0]".into(), "1".into())));
        assert!(got.contains(&("$.params.arguments.n[1]".into(), "x".into())));
        assert!(got.contains(&("$.params.arguments.body".into(), "body".into())));
    }

    #[test]
    fn odd_keys_are_quoted_in_paths() {
        let got = paths(r#"{"a b":"v","q\"":"w"}"#);
        assert!(got.contains(&("$[\"a b\"]".into(), "v".into())));
        assert!(got.contains(&("$[\"q\\\"\"]".into(), "w".into())));
    }

    #[test]
    fn malformed_or_trailing_input_is_not_json() {
        for bad in [
            r#"{"a":}"#,
            r#"{"a":1"#,
            r#"[1,2]x"#,
            r#"{"a" 1}"#,
            r#"["unterminated]"#,
            "[tru]",
        ] {
            assert!(scalars(bad.as_bytes()).is_none(), "{bad}");
        }
        assert!(scalars(b"[]").is_some());
        assert!(scalars(b" {} ").is_some());
    }

    #[test]
    fn deep_nesting_falls_back_to_text() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(scalars(deep.as_bytes()).is_none());
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(scalars(ok.as_bytes()).is_some());
    }

    #[test]
    fn escapes_mark_a_string_for_normalization() {
        let s = scalars(br#"{"a":"\u0034","b":"plain"}"#).unwrap();
        assert!(s.iter().any(|x| x.needs_normalization));
        assert_eq!(s.iter().filter(|x| x.needs_normalization).count(), 1);
    }
}
