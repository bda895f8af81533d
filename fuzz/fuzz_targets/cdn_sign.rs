#![no_main]
// Harness: veza_fuzz::cdn_sign (fuzz/src/lib.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| veza_fuzz::cdn_sign(data));
