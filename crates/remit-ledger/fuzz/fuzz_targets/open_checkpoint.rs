//! Checkpoint and note parsing refuse garbage without panicking; a parsed
//! checkpoint's text round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remit_ledger::{Checkpoint, NoteVerifier};

const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cp) = Checkpoint::from_text(text) {
        assert_eq!(cp.to_text(), text);
    }
    if let Ok(v) = NoteVerifier::from_vkey(VKEY) {
        let _ = v.open(text);
        let _ = Checkpoint::open(text, &v);
    }
    let _ = NoteVerifier::from_vkey(text);
});
