//! Arbitrary text as a value and as patterns: canonicalization must never
//! panic, must be idempotent, must never keep a `..` segment or a control
//! character, and `Pattern::covers` must be sound (whenever `wide` covers
//! `narrow`, a name `narrow` matches is matched by `wide`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use remit_token::{canonicalize, Pattern};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let (value, wide, narrow) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    if let Ok(canon) = canonicalize(value) {
        let again = canonicalize(canon.as_str()).expect("a canonical value canonicalizes");
        assert_eq!(again.as_str(), canon.as_str(), "canonicalization is idempotent");
        assert!(!canon.as_str().split('/').any(|s| s == ".."), "no .. survives");
        assert!(!canon.as_str().chars().any(char::is_control), "no control survives");
    }
    if let (Ok(wide), Ok(narrow)) = (Pattern::try_from(wide), Pattern::try_from(narrow)) {
        if wide.covers(&narrow) && narrow.matches(value) {
            assert!(wide.matches(value), "{wide} covers {narrow} but not {value:?}");
        }
    }
});
