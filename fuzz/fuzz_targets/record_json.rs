//! Stored-record decoding and the decode → encode → decode round trip.
#![no_main]

#[path = "../checks/record_json.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
