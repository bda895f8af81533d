#![no_main]
// Harness: veza_fuzz::config (fuzz/src/lib.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| veza_fuzz::config(data));
