#![no_main]
// Harness: veza_fuzz::otlp_trace (fuzz/src/lib.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| veza_fuzz::otlp_trace(data));
