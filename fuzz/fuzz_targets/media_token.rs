#![no_main]
// Harness: veza_fuzz::media_token (fuzz/src/lib.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| veza_fuzz::media_token(data));
