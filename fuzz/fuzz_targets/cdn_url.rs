#![no_main]
// Harness: veza_fuzz::cdn_url (fuzz/src/lib.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| veza_fuzz::cdn_url(data));
