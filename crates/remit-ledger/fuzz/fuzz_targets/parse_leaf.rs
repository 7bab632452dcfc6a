//! A leaf parses or is refused, never panics; what parses re-serializes to
//! the bytes that were signed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remit_ledger::SignedReceipt;

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = SignedReceipt::parse(data) {
        assert_eq!(signed.receipt.canonical().ok().as_deref(), Some(signed.payload()));
    }
});
