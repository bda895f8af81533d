#![no_main]
// Harness: veza_fuzz::n1_trace (fuzz/src/lib.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| veza_fuzz::n1_trace(data));
