#![no_main]
// Harness: veza_fuzz::sql_normalize (fuzz/src/lib.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| veza_fuzz::sql_normalize(data));
