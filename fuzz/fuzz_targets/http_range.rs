#![no_main]
// Harness: veza_fuzz::http_range (fuzz/src/lib.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| veza_fuzz::http_range(data));
